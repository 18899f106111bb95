"""Training and held-out samples from ../shared/data, with their guidance class rasters (for training/ and
evaluation/ alike).

Split, fixed by region so no held-out pixel is ever seen in training:

| split    | Dubai land cover (full 6-class maps) | OpenAerialMap + OSM buildings (partial maps) |
|----------|--------------------------------------|----------------------------------------------|
| train    | tile_1, tile_2, tile_3, tile_4, tile_6 | zanzibar_tz (all zooms)                     |
| heldout  | tile_7, tile_8                       | catanduanes_ph (all zooms)                   |

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
    "train": {"dubai": ["tile_1", "tile_2", "tile_3", "tile_4", "tile_6"], "oam": ["zanzibar_tz"]},
    "heldout": {"dubai": ["tile_7", "tile_8"], "oam": ["catanduanes_ph"]},
}
DUBAI_COLOURS = {
    (0x84, 0x29, 0xF6): OTHER_LAND, (0x3C, 0x10, 0x98): BUILDING, (0xFE, 0xDD, 0x3A): VEGETATION,
    (0x6E, 0xC1, 0xE4): ROAD, (0xE2, 0xA9, 0x29): WATER, (0x9B, 0x9B, 0x9B): NOT_MAPPED, (0, 0, 0): NOT_MAPPED,
}


def data_root():
    """../shared/data beside the repository, or $MAGC_DATA_DIR."""
    return Path(os.environ.get("MAGC_DATA_DIR", REPO.parent / "shared" / "data"))


def have_data():
    root = data_root()
    return (root / "dubai-landcover").is_dir() and (root / "oam-osm-buildings").is_dir()


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


def _dubai_images(tiles):
    """dubai_images, each with the path of its image file too."""
    from PIL import Image
    root = data_root() / "dubai-landcover"
    for tile in tiles:
        for img_path in sorted((root / tile / "images").glob("*.jpg")):
            mask_path = root / tile / "masks" / (img_path.stem + ".png")
            image = np.array(Image.open(img_path).convert("RGB"))
            mask = np.array(Image.open(mask_path).convert("RGB"))
            if mask.shape[:2] != image.shape[:2]:
                continue
            yield f"dubai/{tile}/{img_path.stem}", image, dubai_mask_to_classes(mask), img_path


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


def _oam_tiles(regions):
    """oam_tiles, each with the path of its image file too."""
    from PIL import Image
    root = data_root() / "oam-osm-buildings"
    for region in regions:
        region_dir = root / region
        for img_path in sorted((region_dir / "images").glob("*.png")):
            image = np.array(Image.open(img_path).convert("RGB"))
            classes = oam_guidance(region_dir, img_path.stem)
            if classes.shape != image.shape[:2]:
                continue
            yield f"oam/{region}/{img_path.stem}", image, classes, img_path


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
    spec = SPLITS[split]
    return _samples_of(chain(dubai_images(spec["dubai"]), oam_tiles(spec["oam"])), size, stride)


def _samples_of(whole_images, size=256, stride=256):
    """The samples of whole images (name, image, class raster): Dubai images cut on a grid (named name@y,x), OAM tiles
    as they are."""
    for name, image, classes in whole_images:
        if name.startswith("dubai"):
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
    spec, path = SPLITS[split], Path(path)
    index = []
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as pack:
            for i, (name, _, classes, img_path) in enumerate(chain(_dubai_images(spec["dubai"]),
                                                                   _oam_tiles(spec["oam"]))):
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


def pack_samples(path, size=256, stride=256):
    """The samples of a training pack (write_training_pack), as samples() gives them."""
    import io
    import json
    import zipfile
    from PIL import Image
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
