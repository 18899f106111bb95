"""The tools from the command line: qgis_process with the plugin deployed into a throwaway profile,
and a graphical model (tests/data/magc_round_trip.model3) chaining rasterize -> compress -> decompress."""
import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from build import QGIS_PROCESS, QgisProcess
from conftest import require_module, write_raster
from magc_plugin.codec.classes import BUILDING

pytestmark = pytest.mark.slow
MODEL3 = Path(__file__).parent / "data" / "magc_round_trip.model3"


@pytest.fixture(scope="module")
def qgis_process(tmp_path_factory):
    if not Path(QGIS_PROCESS).exists():
        pytest.fail(f"{QGIS_PROCESS} is missing: run 'build.py setup'")
    return QgisProcess(tmp_path_factory.mktemp("qgis_process"))


def read(path):
    import rasterio
    with rasterio.open(path) as src:
        return src.read()


def test_every_tool_is_listed(qgis_process):
    listed = qgis_process.call("list")
    for name in ("compressraster", "decompressraster", "rasterizeguidance", "evaluate", "diagnostics"):
        assert f"magc:{name}" in listed


def test_diagnostics(qgis_process, tiny_model_dir, tmp_path):
    out = qgis_process.run("magc:diagnostics", MODEL=tiny_model_dir, OUTPUT=tmp_path / "d.json")
    assert out["MODEL_FOLDER"] == str(tiny_model_dir) and out["TORCH_VERSION"]
    assert "config.json" in json.loads((tmp_path / "d.json").read_text())["model"]["files"]


def test_rasterize(qgis_process, raster_path, buildings_gpkg, osm_gpkg, tmp_path):
    out = qgis_process.run("magc:rasterizeguidance", INPUT=raster_path, BUILDINGS=buildings_gpkg, GUIDANCE=osm_gpkg,
                           OUTPUT=tmp_path / "classes.tif")
    classes = read(out["OUTPUT"])[0]
    assert (classes[12:38, 22:58] == BUILDING).all() and 0 < out["MAPPED_FRACTION"] < 1
    assert (tmp_path / "classes.qml").is_file()


def test_bad_input_fails_with_a_message(qgis_process, tmp_path):
    with pytest.raises(RuntimeError, match="failed"):
        qgis_process.run("magc:rasterizeguidance", INPUT=tmp_path / "missing.tif", OUTPUT=tmp_path / "x.tif")


def test_compress_decompress_evaluate(qgis_process, tiny_model_dir, raster_path, buildings_gpkg, tmp_path):
    require_module("magc_plugin.tiling")
    common = {"MODEL": tiny_model_dir, "DEVICE": "cpu", "BUILDINGS": buildings_gpkg}
    packed = qgis_process.run("magc:compressraster", INPUT=raster_path, TILE_SIZE=128, OUTPUT=tmp_path / "a.magc",
                              **common)
    assert packed["BYTES"] == (tmp_path / "a.magc").stat().st_size and packed["BPP"] > 0
    decoded = qgis_process.run("magc:decompressraster", INPUT=packed["OUTPUT"], STEPS=2,
                               OUTPUT=tmp_path / "decoded.tif", **common)
    assert read(decoded["OUTPUT"]).shape == (3, 128, 192)
    require_module("magc_plugin.evaluation.metrics")
    figures = qgis_process.run("magc:evaluate", ORIGINAL=raster_path, DECODED=decoded["OUTPUT"],
                               MAGC_FILE=packed["OUTPUT"], OUTPUT_HTML=tmp_path / "report.html")
    assert figures["BPP"] == pytest.approx(packed["BPP"]) and np.isfinite(figures["PSNR"])


def test_graphical_model_round_trip(qgis_process, tiny_model_dir, raster_path, buildings_gpkg, tmp_path):
    require_module("magc_plugin.tiling")
    out = qgis_process.run(MODEL3, image=raster_path, buildings=buildings_gpkg, model=tiny_model_dir,
                           **{"rasterize:guidance": tmp_path / "guidance.tif",
                              "compress:compressed": tmp_path / "image.magc",
                              "decompress:decoded": tmp_path / "decoded.tif"})
    assert (tmp_path / "image.magc").stat().st_size > 0
    assert read(tmp_path / "decoded.tif").shape == (3, 128, 192)
    assert (read(tmp_path / "guidance.tif")[0] == BUILDING).any()
    assert set(out) >= {"rasterize:guidance", "compress:compressed", "decompress:decoded"}


def test_sigterm_removes_the_partial_output(qgis_process, tiny_model_dir, tmp_path):
    """SIGTERM ends qgis_process as it always does (status -15), once the partial GeoTIFF is removed."""
    from magc_plugin import tiling
    from magc_plugin.codec.model import MAGCModel
    model = MAGCModel.from_pretrained(tiny_model_dir, device="cpu")
    tiling.compress_raster(write_raster(tmp_path / "in.tif", 512, 512), tmp_path / "a.magc", None, model, tile_size=64)
    (tmp_path / "in.tif").unlink()
    proc = subprocess.Popen([QGIS_PROCESS, "run", "magc:decompressraster", f"--INPUT={tmp_path / 'a.magc'}",
                             f"--OUTPUT={tmp_path / 'out.tif'}", f"--MODEL={tiny_model_dir}", "--DEVICE=cpu",
                             "--STEPS=50"], env=qgis_process.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline and not any(p.name.endswith(".part.tif")
                                                                      for p in tmp_path.iterdir()):
        time.sleep(0.05)
    assert proc.poll() is None, "the decode ended before it could be terminated"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.magc"]


def test_enums_by_number_or_name(qgis_process, tiny_model_dir, raster_path, tmp_path):
    """'qgis_process help' lists each enum option with its number: both the number and the name work."""
    require_module("magc_plugin.tiling")
    from magc_plugin.processing.compress import rate_options
    rates = rate_options()
    help_text = qgis_process.call("help", "magc:compressraster")
    assert f"- 1: {rates[1]}" in help_text and "- 1: cpu" in help_text
    common = {"INPUT": raster_path, "MODEL": tiny_model_dir, "TILE_SIZE": 128}
    by_number = qgis_process.run("magc:compressraster", RATE=rates.index("medium"), DEVICE=1,  # the tiny model's
                                 OUTPUT=tmp_path / "number.magc", **common)
    log = qgis_process.call("run", "magc:compressraster", "--RATE=medium", "--DEVICE=cpu",
                            f"--OUTPUT={tmp_path / 'name.magc'}", *(f"--{k}={v}" for k, v in common.items()))
    assert (tmp_path / "number.magc").read_bytes() == (tmp_path / "name.magc").read_bytes()
    assert by_number["BYTES"] == (tmp_path / "name.magc").stat().st_size
    # No guidance is worth a warning, not an error: the tool succeeds.
    assert "WARNING:\tNo guidance layer given" in log and "ERROR" not in log
    with pytest.raises(RuntimeError, match="DEVICE"):
        qgis_process.run("magc:compressraster", DEVICE=7, OUTPUT=tmp_path / "bad.magc", **common)


def test_batch_on_local_workers(qgis_process, tiny_model_dir, raster_path, tmp_path):
    """In qgis_process sys.executable is QGIS: the local Dask workers run python3, given to them alone."""
    require_module("magc_plugin.tiling")
    pytest.importorskip("distributed")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.tif").write_bytes(raster_path.read_bytes())
    out = qgis_process.run("magc:batchcompressfolder", INPUT=tmp_path / "in", MODEL=tiny_model_dir, DEVICE="cpu",
                           TILE_SIZE=128, WORKERS=1, OUTPUT=tmp_path / "out")
    assert (out["SUCCEEDED"], out["FAILED"]) == (1, 0) and (tmp_path / "out" / "a.magc").stat().st_size > 0
