"""python -m magc_plugin: the commands, vector guidance from files in another CRS, one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform as warp

from magc_plugin.cli import main
from magc_plugin.codec.classes import BUILDING, NOT_MAPPED, ROAD

CRS = "EPSG:32737"
ORIGIN = from_origin(500000.0, 9330000.0, 0.5, 0.5)


@pytest.fixture
def raster(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(40, 200, (3, 96, 128), dtype=np.uint8)
    path = tmp_path / "in.tif"
    with rasterio.open(path, "w", driver="GTiff", width=128, height=96, count=3, dtype="uint8", crs=CRS,
                       transform=ORIGIN) as dst:
        dst.write(data)
    return path


def lonlat(pixels):
    """Pixel corners (col, row) of the test raster -> WGS84 (lon, lat) pairs."""
    xs, ys = zip(*(ORIGIN * p for p in pixels))
    return [list(p) for p in zip(*warp(CRS, "EPSG:4326", xs, ys))]


def geojson(path, features):
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": geometry} for props, geometry in features]}))
    return path


@pytest.fixture
def buildings(tmp_path):
    """A WGS84 GeoJSON with one building over pixels (20..60, 10..40) of the UTM test raster."""
    ring = lonlat([(20, 10), (60, 10), (60, 40), (20, 40), (20, 10)])
    return geojson(tmp_path / "buildings.geojson", [({"name": "a"}, {"type": "Polygon", "coordinates": [ring]})])


@pytest.fixture
def osm_roads(tmp_path):
    line = lonlat([(-5, 70), (140, 70)])
    return geojson(tmp_path / "roads.geojson", [({"highway": "residential"},
                                                 {"type": "LineString", "coordinates": line})])


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code in (0, 1) else None), err  # 1: a batch where some rasters failed


def test_rasterize_reprojects_guidance(capsys, raster, buildings, osm_roads, tmp_path):
    code, report, _ = run(capsys, "rasterize", raster, tmp_path / "classes.tif", "--vectors", osm_roads,
                          "--layer-class", f"buildings={buildings}")
    assert code == 0 and 0 < report["mapped_fraction"] < 1
    with rasterio.open(tmp_path / "classes.tif") as out:
        classes = out.read(1)
        assert out.crs == CRS and out.colormap(1)[BUILDING][:3] != (0, 0, 0)
    assert (classes[12:38, 22:58] == BUILDING).all()
    assert (classes[68:72, 70:120] == ROAD).all() and classes[90, 100] == NOT_MAPPED


def test_compress_info_decompress(capsys, raster, buildings, tiny_model_dir, tmp_path):
    common = ["--layer-class", f"building={buildings}", "--model", tiny_model_dir, "--device", "cpu", "--quiet"]
    code, packed, _ = run(capsys, "compress", raster, tmp_path / "a.magc", "--tile-size", 64, *common)
    assert code == 0 and packed["bytes"] == (tmp_path / "a.magc").stat().st_size and packed["tiles"] == 4
    code, info, _ = run(capsys, "info", tmp_path / "a.magc")
    assert code == 0 and info["header"]["width"] == 128 and info["georef"]["crs_id"] == "EPSG:32737"
    assert info["model"]["weights_sha256"] and info["bytes"] == packed["bytes"]
    code, decoded, err = run(capsys, "decompress", tmp_path / "a.magc", tmp_path / "out.tif", "--steps", 1, *common)
    assert code == 0 and decoded["guidance_mismatch"] == [] and "warning" not in err
    with rasterio.open(tmp_path / "out.tif") as out:
        assert (out.width, out.height, out.crs) == (128, 96, CRS)
    # Without the map: it warns, lists the tiles that differ; strict refuses with a one-line error.
    code, decoded, err = run(capsys, "decompress", tmp_path / "a.magc", tmp_path / "out2.tif", "--steps", 0,
                             "--model", tiny_model_dir, "--quiet")
    assert code == 0 and decoded["guidance_mismatch"] == [[0, 0]] and "warning: The guidance differs" in err
    code, _, err = run(capsys, "decompress", tmp_path / "a.magc", tmp_path / "out3.tif", "--strict-guidance",
                       "--model", tiny_model_dir, "--quiet")
    assert code == 2 and err.startswith("magc: error:") and err.count("\n") == 1
    assert not (tmp_path / "out3.tif").exists()


def test_guidance_that_does_not_overlap_warns(capsys, raster, tmp_path):
    far = geojson(tmp_path / "far.geojson", [({"building": "yes"}, {"type": "Polygon", "coordinates": [
        [[10, 10], [10.01, 10], [10.01, 10.01], [10, 10]]]})])
    code, report, err = run(capsys, "rasterize", raster, tmp_path / "classes.tif", "--vectors", far)
    assert code == 0 and report["mapped_fraction"] == 0
    assert "contributed nothing" in err


@pytest.mark.parametrize("argv,message", [
    (["info", "{tmp}/missing.magc"], "Cannot open"),
    (["info", "{raster}"], "not a .magc file"),
    (["rasterize", "{raster}", "{tmp}/c.tif", "--layer-class", "lava={raster}"], "CLASS=PATH"),
    (["rasterize", "{raster}", "{tmp}/c.tif", "--vectors", "{tmp}/none.gpkg"], "does not exist"),
    (["compress", "{raster}", "{tmp}/a.magc", "--model", "{tmp}"], "No MAGC model"),
])
def test_errors_are_one_line(capsys, raster, tmp_path, argv, message):
    code, _, err = run(capsys, *(a.format(tmp=tmp_path, raster=raster) for a in argv))
    assert code == 2 and message in err and err.startswith("magc: error:") and err.count("\n") == 1


def test_batch_commands_on_a_local_cluster(capsys, raster, buildings, tiny_model_dir, tmp_path):
    """One worker process; a broken raster is reported on its own line, the other is written and decodes."""
    pytest.importorskip("distributed")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.tif").write_bytes(raster.read_bytes())
    (tmp_path / "in" / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    common = ["--layer-class", f"building={buildings}", "--model", tiny_model_dir, "--device", "cpu", "--quiet",
              "--workers", 1]
    code, report, err = run(capsys, "batch-compress", tmp_path / "in", "-o", tmp_path / "magc", "--tile-size", 64,
                            *common)
    assert code == 1 and (report["succeeded"], report["failed"]) == (1, 1)
    errors = [line for line in err.splitlines() if line.startswith("magc: error:")]
    assert len(errors) == 1 and "broken.tif: Cannot read the raster" in errors[0]
    code, report, _ = run(capsys, "batch-decompress", tmp_path / "magc", "-o", tmp_path / "tif", "--steps", 1,
                          *common)
    assert code == 0 and report["files"][0]["report"]["guidance_mismatch"] == []
    with rasterio.open(tmp_path / "tif" / "good.tif") as out:
        assert (out.width, out.height, out.crs) == (128, 96, CRS)


def test_batch_scheduler_that_does_not_answer(capsys, raster, tmp_path):
    pytest.importorskip("distributed")
    code, _, err = run(capsys, "batch-compress", raster, "-o", tmp_path, "--scheduler", "tcp://127.0.0.1:9")
    assert code == 2 and err.startswith("magc: error: No Dask scheduler answers") and err.count("\n") == 1


def test_module_entry_point_without_traceback(tmp_path):
    bad = tmp_path / "bad.magc"
    bad.write_bytes(b"\x89MGC\r\n\x1a\n\x03")  # cut after the major version
    proc = subprocess.run([sys.executable, "-m", "magc_plugin", "info", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "truncated" in proc.stderr
