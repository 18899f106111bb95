"""Damaged .magc files: refused with a message that offers --skip-damaged, or decoded with the damaged tiles as
nodata; a GeoTIFF profile that GDAL refuses leaves nothing behind."""
import json
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from magc_plugin import container, tiling
from magc_plugin.cli import main
from magc_plugin.codec.errors import MAGCError

TILE = 64


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from magc_plugin.codec.model import MAGCModel
    return MAGCModel.from_pretrained(tiny_model_dir, device="cpu")


def stripes(transform, width, height, crs):
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x, _ = transform * (cols, rows)
    return ((np.floor(x / 16.0) % 3) + 1).astype(np.uint8)


def compressed(tmp_path, model, width, height, name="a.magc", **options):
    rng = np.random.default_rng(0)
    data = rng.integers(40, 200, (3, height, width), dtype=np.uint8)
    src = tmp_path / "in.tif"
    with rasterio.open(src, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                       crs="EPSG:32737", transform=from_origin(500000.0, 9330000.0, 0.5, 0.5)) as dst:
        dst.write(data)
    tiling.compress_raster(src, tmp_path / name, stripes, model, tile_size=TILE, **options)
    src.unlink()
    return tmp_path / name


def flip_in_tile(path, number, out):
    """A copy of `path` with one byte in the middle of tile `number` flipped (its checksum no longer matches)."""
    with container.MAGCReader(path) as reader:
        entry = reader.index[number]
    data = bytearray(path.read_bytes())
    data[entry.offset + entry.length // 2] ^= 0x55
    out.write_bytes(bytes(data))
    return out


def rewritten(path, out, change):
    """A copy of `path` written again (valid checksums) after change(records) altered some tile records."""
    with container.MAGCReader(path) as reader:
        records = [reader.read_tile(n) for n in range(len(reader.index))]
        change(records)
        with container.MAGCWriter(out, reader.head, reader.georef, reader.model) as writer:
            for record, entry in zip(records, reader.index):
                writer.add_tile(record, entry.fingerprint)
            writer.commit()
    return out


def decode(src, out, model, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = tiling.decompress_raster(src, out, stripes, model, steps=1, **options)
    with rasterio.open(out) as ds:
        return report, ds.read(), ds.dataset_mask(), [str(w.message) for w in caught if "damaged" in str(w.message)]


def tile_pixels(array, col, row):
    return array[..., row * TILE:(row + 1) * TILE, col * TILE:(col + 1) * TILE]


@pytest.mark.parametrize("margin", [0, tiling.BLEND_MARGIN])
def test_a_damaged_tile_is_refused_or_skipped_as_nodata(tiny_model, tmp_path, margin):
    """A 4x2 grid with tile (0,0) damaged: refused by default, else that tile is masked and the tiles that no
    window reaching it touches decode as from the intact file (all of them without blending)."""
    good = compressed(tmp_path, tiny_model, 4 * TILE, 2 * TILE)
    bad = flip_in_tile(good, 0, tmp_path / "bad.magc")
    with pytest.raises(MAGCError, match=r"Tile \(0,0\) of the .magc file: .*checksum.*--skip-damaged"):
        tiling.decompress_raster(bad, tmp_path / "out.tif", stripes, tiny_model, steps=1, blend_margin=margin)
    assert not (tmp_path / "out.tif").exists()

    _, expected, _, _ = decode(good, tmp_path / "ref.tif", tiny_model, blend_margin=margin)
    report, image, mask, logged = decode(bad, tmp_path / "out.tif", tiny_model, blend_margin=margin,
                                         skip_damaged=True)
    assert [(c, r) for c, r, _ in report["damaged_tiles"]] == [(0, 0)] and "checksum" in report["damaged_tiles"][0][2]
    assert len(logged) == 1 and "damaged tile (0,0)" in logged[0]
    assert (tile_pixels(mask, 0, 0) == 0).all()
    assert (mask[:, TILE:] == 255).all() and (mask[TILE:] == 255).all()
    same = [(c, r) for c in range(4) for r in range(2) if (c, r) != (0, 0) and (not margin or c == 3)]
    for c, r in same:
        assert (tile_pixels(image, c, r) == tile_pixels(expected, c, r)).all(), (c, r)


def test_a_stream_that_cannot_be_decoded_is_skipped(tiny_model, tmp_path):
    """A tile that passes its checksum but whose entropy stream is refused: found before any window reads it."""
    good = compressed(tmp_path, tiny_model, 2 * TILE, TILE)

    def cut_stream(records):
        records[1].payload = records[1].payload[:4]
    bad = rewritten(good, tmp_path / "bad.magc", cut_stream)
    with pytest.raises(MAGCError, match=r"Tile \(1,0\) .*stream.*--skip-damaged"):
        tiling.decompress_raster(bad, tmp_path / "out.tif", stripes, tiny_model, steps=1)
    assert not (tmp_path / "out.tif").exists()
    report, _, mask, logged = decode(bad, tmp_path / "out.tif", tiny_model, skip_damaged=True)
    assert [(c, r) for c, r, _ in report["damaged_tiles"]] == [(1, 0)] and len(logged) == 1
    assert (mask[:, :TILE] == 255).all() and (mask[:, TILE:] == 0).all()


def test_nothing_to_decode_or_a_damaged_header_is_still_refused(tiny_model, tmp_path):
    good = compressed(tmp_path, tiny_model, 2 * TILE, TILE)
    both = flip_in_tile(flip_in_tile(good, 0, tmp_path / "one.magc"), 1, tmp_path / "both.magc")
    with pytest.raises(MAGCError, match="Every tile to decode is damaged"):
        tiling.decompress_raster(both, tmp_path / "out.tif", stripes, tiny_model, steps=1, skip_damaged=True)
    data = bytearray(good.read_bytes())
    data[12] ^= 0x55  # in the header
    (tmp_path / "header.magc").write_bytes(bytes(data))
    with pytest.raises(MAGCError, match="damaged .magc file"):
        tiling.decompress_raster(tmp_path / "header.magc", tmp_path / "out.tif", stripes, tiny_model, steps=1,
                                 skip_damaged=True)
    assert not (tmp_path / "out.tif").exists()


def test_bad_classes_in_the_embedded_map_blame_the_file(tiny_model, tmp_path):
    good = compressed(tmp_path, tiny_model, 2 * TILE, TILE, embed_guidance=True)

    def bad_classes(records):
        records[0].guidance_bytes = container.TileRecord.build(0, np.ones((TILE, TILE), bool),
                                                               np.full((TILE, TILE), 9, np.uint8)).guidance_bytes
    bad = rewritten(good, tmp_path / "bad.magc", bad_classes)
    with pytest.raises(MAGCError, match=r"Tile \(0,0\) .*file's embedded guidance map is damaged \(class 9"):
        tiling.decompress_raster(bad, tmp_path / "out.tif", None, tiny_model, steps=0)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        report = tiling.decompress_raster(bad, tmp_path / "out.tif", None, tiny_model, steps=0, skip_damaged=True)
    assert [(c, r) for c, r, _ in report["damaged_tiles"]] == [(0, 0)]


def test_cli_skip_damaged(capsys, tiny_model, tiny_model_dir, tmp_path):
    bad = flip_in_tile(compressed(tmp_path, tiny_model, 2 * TILE, TILE), 1, tmp_path / "bad.magc")
    common = ["--model", str(tiny_model_dir), "--device", "cpu", "--quiet", "--steps", "0"]
    assert main(["decompress", str(bad), str(tmp_path / "out.tif"), *common]) == 2
    err = capsys.readouterr().err
    assert err.startswith("magc: error: Tile (1,0)") and "--skip-damaged" in err and err.count("\n") == 1
    assert main(["decompress", str(bad), str(tmp_path / "out.tif"), *common, "--skip-damaged"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["damaged_tiles"][0][:2] == [1, 0]
    warned = [line for line in err.splitlines() if "damaged" in line]
    assert len(warned) == 1 and warned[0].startswith("magc: warning: Skipped the damaged tile (1,0): its pixels are "
                                                     "nodata. bad.magc is a damaged .magc file (checksum")


@pytest.mark.parametrize("profile,message", [({"nodata": 300}, "valid range of its data type"),
                                             ({"crs": "EPSG:999999"}, "Cannot create the GeoTIFF"),
                                             ({"blockxsize": 100}, "multiples of 16")])
def test_a_profile_gdal_refuses_leaves_nothing(tmp_path, capfd, profile, message):
    base = {"driver": "GTiff", "width": 32, "height": 32, "count": 3, "dtype": "uint8", "crs": "EPSG:32737",
            "transform": from_origin(0, 32, 1, 1), "tiled": True, "blockxsize": 256, "blockysize": 256}
    with pytest.raises(MAGCError, match=message):
        with tiling.GeoTIFFWriter(tmp_path / "out.tif", {**base, **profile}):
            pass
    assert list(tmp_path.iterdir()) == []
    assert not rasterio.env.hasenv()
    assert "ERROR" not in capfd.readouterr().err
