"""Training and held-out samples from ../shared/data, with their guidance class rasters (for training/ and
evaluation/ alike).

Split, fixed by region so no held-out pixel is ever seen in training:

| split    | Dubai land cover (full 6-class maps) | OpenAerialMap + OSM buildings (partial maps) | NEON plots (tree boxes) |
|----------|--------------------------------------|----------------------------------------------|-------------------------|
| train    | tile_1, tile_2, tile_3, tile_4, tile_6 | zanzibar_tz (all zooms)                     | HARV, TEAK              |
| heldout  | tile_7, tile_8                       | catanduanes_ph (all zooms)                   |                         |
| transfer |                                      |                                              | OSBS, SJER              |

``transfer`` holds the NEON sites that training never sees (another sensor, 0.1 m, and another continent: pine
savanna and wetland in Florida, oak savanna in California), kept apart from ``heldout`` so that its figures stay
comparable from model to model; it checks that what the held-out split shows carries over. A NEON plot's map is its
tree-crown boxes filled as vegetation where the plot has them, ``not_mapped`` elsewhere.

Dubai masks are mapped onto the project's classes; OAM tiles get their guidance
by rasterizing the OSM building polygons through `magc_plugin.guidance`, the same
code the plugin uses, onto the tile's own georeferenced grid (EPSG:4326 masks).
Nothing here is ever written into the repository.
"""
import os
from itertools import chain
from pathlib import Path

import numpy as np

from .codec.classes import BUILDING, NOT_MAPPED, OTHER_LAND, ROAD, VEGETATION, WATER
from .guidance import rasterize_features, read_vector_features

REPO = Path(__file__).resolve().parents[1]
# How the class maps are made; a latent cache holding maps of another version has them made again.
# 2: OAM tiles' footprints burnt as buildings (version 1 burnt none: they carry no building tag).
MAPS_VERSION = 2
PACK_FORMAT = "magc-training-pack-1"
SPLITS = {
    "train": {"dubai": ["tile_1", "tile_2", "tile_3", "tile_4", "tile_6"], "oam": ["zanzibar_tz"],
              "neon": ["HARV", "TEAK"]},
    "heldout": {"dubai": ["tile_7", "tile_8"], "oam": ["catanduanes_ph"]},
    "transfer": {"neon": ["OSBS", "SJER"]},
}
DUBAI_COLOURS = {
    (0x84, 0x29, 0xF6): OTHER_LAND, (0x3C, 0x10, 0x98): BUILDING, (0xFE, 0xDD, 0x3A): VEGETATION,
    (0x6E, 0xC1, 0xE4): ROAD, (0xE2, 0xA9, 0x29): WATER, (0x9B, 0x9B, 0x9B): NOT_MAPPED, (0, 0, 0): NOT_MAPPED,
}


def data_root():
    """../shared/data beside the repository, or $MAGC_DATA_DIR."""
    return Path(os.environ.get("MAGC_DATA_DIR", REPO.parent / "shared" / "data"))


DATA_SETS = ("dubai-landcover", "oam-osm-buildings", "neon-forest")


def have_data():
    return all((data_root() / name).is_dir() for name in DATA_SETS)


def dubai_mask_to_classes(mask_rgb):
    """Dubai RGB mask -> class raster (nearest listed colour, robust to stray values)."""
    colours = np.array(list(DUBAI_COLOURS), dtype=np.int32)
    classes = np.array(list(DUBAI_COLOURS.values()), dtype=np.uint8)
    flat = mask_rgb.reshape(-1, 3).astype(np.int32)
    out = np.empty(len(flat), dtype=np.uint8)
    for start in range(0, len(flat), 1 << 18):
        chunk = flat[start:start + (1 << 18)]
        dist = ((chunk[:, None, :] - colours[None]) ** 2).sum(-1)
        out[start:start + len(chunk)] = classes[dist.argmin(1)]
    return out.reshape(mask_rgb.shape[:2])


def dubai_images(tiles):
    """Yield (name, image u8 HxWx3, class raster HxW) for whole Dubai images."""
    for name, image, classes, _ in _dubai_images(tiles):
        yield name, image, classes


def _dubai_files(tiles):
    """(name, image path) of the Dubai images of the given tiles, in order."""
    root = data_root() / "dubai-landcover"
    return [(f"dubai/{tile}/{path.stem}", path) for tile in tiles for path in sorted((root / tile / "images").glob("*.jpg"))]


def _dubai_images(tiles):
    """dubai_images, each with the path of its image file too."""
    from PIL import Image
    for name, img_path in _dubai_files(tiles):
        mask_path = img_path.parent.parent / "masks" / (img_path.stem + ".png")
        image = np.array(Image.open(img_path).convert("RGB"))
        mask = np.array(Image.open(mask_path).convert("RGB"))
        if mask.shape[:2] != image.shape[:2]:
            continue
        yield name, image, dubai_mask_to_classes(mask), img_path


def oam_guidance(region_dir, stem):
    """Rasterize the OSM buildings of one OAM tile onto its georeferenced grid."""
    import rasterio
    with rasterio.open(region_dir / "masks" / f"{stem}.tif") as grid:
        transform, width, height, crs = grid.transform, grid.width, grid.height, grid.crs
    vectors = region_dir / "labels_per_tile" / f"{stem}.geojson"
    # the file holds building footprints tagged with their osm_id only: a buildings layer, as a user would give it
    features = list(read_vector_features(vectors, crs, fixed_class=BUILDING)) if vectors.is_file() else []
    return rasterize_features(features, transform, width, height, crs.is_geographic)


def oam_tiles(regions):
    """Yield (name, image u8 256x256x3, class raster) for OAM tiles (buildings only: a partial map)."""
    for name, image, classes, _ in _oam_tiles(regions):
        yield name, image, classes


def _oam_files(regions):
    """(name, image path) of the OAM tiles of the given regions, in order."""
    root = data_root() / "oam-osm-buildings"
    return [(f"oam/{region}/{path.stem}", path) for region in regions
            for path in sorted((root / region / "images").glob("*.png"))]


def _oam_tiles(regions):
    """oam_tiles, each with the path of its image file too."""
    from PIL import Image
    for name, img_path in _oam_files(regions):
        image = np.array(Image.open(img_path).convert("RGB"))
        classes = oam_guidance(img_path.parent.parent, img_path.stem)
        if classes.shape != image.shape[:2]:
            continue
        yield name, image, classes, img_path


def neon_guidance(annotation, shape):
    """A NEON plot's class raster: its Pascal VOC tree-crown boxes filled as vegetation, not_mapped elsewhere (and
    wholly not_mapped where the plot has no annotation file)."""
    import xml.etree.ElementTree as ElementTree
    classes = np.full(shape, NOT_MAPPED, dtype=np.uint8)
    if not annotation.is_file():
        return classes
    for box in ElementTree.parse(annotation).getroot().iter("bndbox"):
        x0, y0, x1, y1 = (int(float(box.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
        classes[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = VEGETATION
    return classes


def _neon_files(sites):
    """(name, image path) of the NEON plots of the given sites, in order."""
    root = data_root() / "neon-forest"
    return [(f"neon/{site}/{path.stem}", path) for site in sites for path in sorted((root / "images" / site).glob("*.tif"))]


def _neon_plots(sites):
    """(name, image u8 400x400x3, class raster, image path) for the NEON plots of the given sites."""
    from PIL import Image
    for name, img_path in _neon_files(sites):
        image = np.array(Image.open(img_path).convert("RGB"))
        root, site = img_path.parents[2], img_path.parent.name  # root/images/SITE/PLOT.tif
        classes = neon_guidance(root / "annotations" / site / f"{img_path.stem}.xml", image.shape[:2])
        yield name, image, classes, img_path


def crops(image, classes, size=256, stride=256):
    """Regular grid of size x size crops covering the image (edges included)."""
    h, w = classes.shape
    if h < size or w < size:
        return
    ys = sorted(set(list(range(0, h - size + 1, stride)) + [h - size]))
    xs = sorted(set(list(range(0, w - size + 1, stride)) + [w - size]))
    for y in ys:
        for x in xs:
            yield (y, x), image[y:y + size, x:x + size], classes[y:y + size, x:x + size]


def samples(split, size=256, stride=256):
    """All size x size samples of a split: (name, image, class raster)."""
    return _samples_of(((name, image, classes) for name, image, classes, _ in _whole_images(split)), size, stride)


# Each data set's files and its loader, in the order a split reads them.
SOURCES = {"dubai": (_dubai_files, _dubai_images), "oam": (_oam_files, _oam_tiles), "neon": (_neon_files, _neon_plots)}


def _whole_images(split):
    """(name, image, class raster, image path) for every whole image of a split."""
    spec = SPLITS[split]
    return chain.from_iterable(load(spec[src]) for src, (_, load) in SOURCES.items() if src in spec)


def image_names(split):
    """The names of a split's image files, in the order samples() reads them, from the file names alone (nothing is
    decoded): what a latent cache of its crops records."""
    spec = SPLITS[split]
    return [name for src, (files, _) in SOURCES.items() if src in spec for name, _ in files(spec[src])]


def _samples_of(whole_images, size=256, stride=256):
    """The samples of whole images (name, image, class raster): Dubai images and NEON plots cut on a grid (named
    name@y,x; a 400-px plot gives 4 overlapping crops), OAM tiles as they are."""
    for name, image, classes in whole_images:
        if name.startswith(("dubai", "neon")):
            for (y, x), img, cls in crops(image, classes, size, stride):
                yield f"{name}@{y},{x}", img, cls
        else:
            for _, img, cls in crops(image, classes, size, size):
                yield name, img, cls


def write_training_pack(path, split="train"):
    """Write a split's whole images into one zip file that training reads instead of ../shared/data (a GPU machine
    without the data or GDAL, say): each image file's own bytes and its class raster (PNG), so every crop comes out as
    samples() cuts it. Written to a temporary name, then renamed. Returns the number of images."""
    import io
    import json
    import zipfile
    from PIL import Image
    path = Path(path)
    index = []
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as pack:
            for i, (name, _, classes, img_path) in enumerate(_whole_images(split)):
                png = io.BytesIO()
                Image.fromarray(classes).save(png, format="PNG", optimize=True)
                entry = {"name": name, "image": f"images/{i}{img_path.suffix}", "classes": f"classes/{i}.png"}
                pack.writestr(entry["image"], img_path.read_bytes())
                pack.writestr(entry["classes"], png.getvalue())
                index.append(entry)
            pack.writestr("index.json", json.dumps({"format": PACK_FORMAT, "split": split, "maps": MAPS_VERSION,
                                                    "images": index}))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # an interrupted pack leaves nothing behind
    return len(index)


def _open_pack(path):
    """A training pack (write_training_pack) and its index, checked: a ValueError says what to do otherwise."""
    import json
    import zipfile
    try:
        pack = zipfile.ZipFile(path)
        index = json.loads(pack.read("index.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a training pack ({exc}): write one with "
                         f"python -m magc_plugin.training --write-pack FILE") from exc
    if index.get("format") != PACK_FORMAT:
        raise ValueError(f"{path} is a pack of format {index.get('format')!r}, this code reads {PACK_FORMAT!r}: write it "
                         f"again with python -m magc_plugin.training --write-pack FILE")
    if index.get("maps") != MAPS_VERSION:
        raise ValueError(f"{path} holds guidance maps of version {index.get('maps')}, this code makes version "
                         f"{MAPS_VERSION}: write the pack again with python -m magc_plugin.training --write-pack FILE")
    return pack, index


def pack_image_names(path):
    """The names of a training pack's images, in order (as image_names gives a split's)."""
    pack, index = _open_pack(path)
    pack.close()
    return [entry["name"] for entry in index["images"]]


def pack_samples(path, size=256, stride=256):
    """The samples of a training pack (write_training_pack), as samples() gives them."""
    import io
    from PIL import Image
    pack, index = _open_pack(path)

    def whole_images():
        with pack:
            for entry in index["images"]:
                image = np.array(Image.open(io.BytesIO(pack.read(entry["image"]))).convert("RGB"))
                yield entry["name"], image, np.array(Image.open(io.BytesIO(pack.read(entry["classes"]))))
    return _samples_of(whole_images(), size, stride)


def spread(items, n):
    """n items evenly spread over a list (all of them if n is None or large)."""
    if n is None or n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def source(name):
    """The data set a sample comes from: the first part of its name (dubai, oam, neon)."""
    return name.split("/", 1)[0]


def transfer_samples(limit=None, size=256):
    """[(name, image, class raster)] of the transfer split: each NEON plot's centre (its grid crops would overlap),
    evenly spread over the plots."""
    if not have_data():
        raise FileNotFoundError(f"The transfer data are not at {data_root()}: set MAGC_DATA_DIR or put "
                                f"../shared/data beside the repository.")
    centres = []
    for name, image, classes, _ in _whole_images("transfer"):
        y, x = ((side - size) // 2 for side in classes.shape)
        centres.append((name, np.ascontiguousarray(image[y:y + size, x:x + size]),
                        np.ascontiguousarray(classes[y:y + size, x:x + size])))
    return spread(centres, limit)


def heldout_samples(limit=None, size=256):
    """[(name, image u8 size x size x 3, class raster)] of the held-out split; about half from each source."""
    if not have_data():
        raise FileNotFoundError(f"The held-out data are not at {data_root()}: set MAGC_DATA_DIR or put "
                                f"../shared/data beside the repository.")
    dubai, oam = [], []
    for name, image, classes in samples("heldout", size=size, stride=size):
        (dubai if name.startswith("dubai") else oam).append((name, image, classes))
    n_oam = None if limit is None else min(len(oam), limit // 2)
    n_dubai = None if limit is None else limit - n_oam
    return [(n, np.ascontiguousarray(i), np.ascontiguousarray(c))
            for n, i, c in spread(dubai, n_dubai) + spread(oam, n_oam)]
