"""Every MAGC tool through processing.run, with small synthetic rasters and the tiny model."""
import json

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProject, QgsRasterLayer

from conftest import RASTER_CRS, ZANZIBAR, require_module, write_raster
from log_feedback import LogFeedback
from magc_plugin.codec.classes import BUILDING, CLASS_NAMES, NOT_MAPPED, ROAD

rasterio = pytest.importorskip("rasterio")


def run(algorithm, parameters, feedback=None):
    import processing
    return processing.run(algorithm, parameters, feedback=feedback or QgsProcessingFeedback())


def read(path, band=1):
    with rasterio.open(path) as src:
        return src.read(band)


class CancelAfterProgress(QgsProcessingFeedback):
    """Cancels as soon as the tool reports progress: the tool must stop within one tile."""

    def __init__(self):
        super().__init__()
        self.progressChanged.connect(lambda _: self.cancel())


# -- Diagnostics ------------------------------------------------------------------------------
def test_diagnostics(magc_provider, tiny_model_dir, tmp_path):
    out = run("magc:diagnostics", {"MODEL": str(tiny_model_dir), "OUTPUT": str(tmp_path / "diag.json")})
    assert set(out) >= {"OUTPUT", "DEVICE_NAME", "TORCH_VERSION", "MODEL_FOLDER"}
    report = json.loads((tmp_path / "diag.json").read_text())
    assert out["DEVICE_NAME"] in ("cpu", "cuda") and out["TORCH_VERSION"]
    files = report["model"]["files"]
    assert "config.json" in files and all(len(f["sha256"]) == 64 for f in files.values())


def test_diagnostics_reports_a_bad_model_folder(magc_provider, tmp_path):
    out = run("magc:diagnostics", {"MODEL": str(tmp_path), "OUTPUT": str(tmp_path / "diag.json")})
    assert "error" in json.loads((tmp_path / "diag.json").read_text())["model"]
    assert out["MODEL_FOLDER"] == str(tmp_path)


# -- Rasterize guidance ---------------------------------------------------------------------
def test_rasterize_reprojects_and_classifies(magc_provider, raster_path, buildings_layer, osm_gpkg, tmp_path):
    out = run("magc:rasterizeguidance", {"INPUT": str(raster_path), "BUILDINGS": buildings_layer,
                                         "GUIDANCE": [str(osm_gpkg)], "OUTPUT": str(tmp_path / "classes.tif")})
    assert set(out) == {"OUTPUT", "MAPPED_FRACTION"}
    classes = read(out["OUTPUT"])
    assert classes.shape == (128, 192) and classes.dtype == np.uint8
    assert (classes[12:38, 22:58] == BUILDING).all()  # the WGS84 polygon lands on its pixels
    assert (classes[64, 70:190] == ROAD).all()  # an OSM 'highway' line, buffered
    assert classes[100, 150] == NOT_MAPPED
    assert 0 < out["MAPPED_FRACTION"] < 1
    with rasterio.open(out["OUTPUT"]) as src:
        assert src.crs.to_string() == RASTER_CRS and src.colormap(1)[BUILDING][:3] == (220, 60, 60)
    layer = QgsRasterLayer(out["OUTPUT"], "classes")  # picks up the .qml legend written beside the file
    assert [c.label for c in layer.renderer().classes()] == list(CLASS_NAMES)


def test_rasterize_from_a_class_raster_on_another_grid(magc_provider, raster_path, buildings_layer, tmp_path):
    first = run("magc:rasterizeguidance", {"INPUT": str(raster_path), "BUILDINGS": buildings_layer,
                                           "OUTPUT": str(tmp_path / "a.tif")})
    half = write_raster(tmp_path / "half.tif", width=96, height=64)  # same origin, same pixel size, smaller
    second = run("magc:rasterizeguidance", {"INPUT": str(half), "GUIDANCE_RASTER": first["OUTPUT"],
                                            "OUTPUT": str(tmp_path / "b.tif")})
    assert (read(second["OUTPUT"]) == read(first["OUTPUT"])[:64, :96]).all()


def test_rasterize_loads_a_styled_layer(magc_provider, raster_path, buildings_layer, tmp_path):
    import processing
    out = processing.runAndLoadResults("magc:rasterizeguidance", {
        "INPUT": str(raster_path), "BUILDINGS": buildings_layer, "OUTPUT": str(tmp_path / "classes.tif")})
    layers = [l for l in QgsProject.instance().mapLayers().values() if l.source() == out["OUTPUT"]]
    assert layers and layers[0].renderer().type() == "paletted"
    assert [c.label for c in layers[0].renderer().classes()] == list(CLASS_NAMES)
    QgsProject.instance().removeMapLayers([l.id() for l in layers])


def test_rasterize_cancel(magc_provider, raster_path, buildings_layer, tmp_path):
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run("magc:rasterizeguidance", {"INPUT": str(raster_path), "BUILDINGS": buildings_layer,
                                       "OUTPUT": str(tmp_path / "classes.tif")}, CancelAfterProgress())


def test_real_osm_buildings_on_an_oam_tile(magc_provider, tmp_path):
    """A Zanzibar OpenAerialMap tile (EPSG:3857) with the region's OSM buildings (WGS84) against the tile's mask."""
    if not ZANZIBAR.is_dir():
        pytest.skip("../shared/data/oam-osm-buildings is absent: real-data test not run")
    image = zanzibar_geotiff(tmp_path)
    out = run("magc:rasterizeguidance", {"INPUT": str(image), "BUILDINGS": str(ZANZIBAR / "labels_osm_buildings.geojson"),
                                         "OUTPUT": str(tmp_path / "classes.tif")})
    mask = mask_on_grid(ZANZIBAR / "masks" / f"{image.stem}.tif", image)
    burnt = read(out["OUTPUT"]) == BUILDING
    iou = (burnt & mask).sum() / max(1, (burnt | mask).sum())
    assert iou > 0.6, iou


def zanzibar_geotiff(tmp_path):
    """The OAM tile with the most buildings, as an EPSG:3857 GeoTIFF georeferenced from its x-y-z name."""
    from PIL import Image
    from rasterio.transform import from_origin

    label = max((ZANZIBAR / "labels_per_tile").glob("OAM-*-21.geojson"), key=lambda p: p.stat().st_size)
    x, y, z = (int(v) for v in label.stem.split("-")[1:])
    half = 20037508.342789244
    size = 2 * half / 2**z
    pixels = np.asarray(Image.open(ZANZIBAR / "images" / f"{label.stem}.png").convert("RGB"))
    path = tmp_path / f"{label.stem}.tif"
    with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=3, dtype="uint8", crs="EPSG:3857",
                       transform=from_origin(-half + x * size, half - y * size, size / 256, size / 256)) as dst:
        dst.write(pixels.transpose(2, 0, 1))
    return path


def mask_on_grid(mask_path, grid_path):
    from rasterio.warp import Resampling, reproject
    with rasterio.open(grid_path) as grid, rasterio.open(mask_path) as src:
        out = np.zeros((grid.height, grid.width), np.uint8)
        reproject(rasterio.band(src, 1), out, dst_transform=grid.transform, dst_crs=grid.crs,
                  resampling=Resampling.nearest)
    return out == 255


# -- Compress and decompress -------------------------------------------------------------------
@pytest.fixture
def tiling():
    return require_module("magc_plugin.tiling")


def compress(raster, tiny_model_dir, out, **extra):
    return run("magc:compressraster", {"INPUT": str(raster), "MODEL": str(tiny_model_dir), "DEVICE": "cpu",
                                       "TILE_SIZE": 128, "OUTPUT": str(out), **extra})


def test_compress_decompress_round_trip(magc_provider, tiling, tiny_model_dir, raster_path, buildings_layer,
                                        osm_gpkg, tmp_path):
    import processing
    guidance = {"BUILDINGS": buildings_layer, "GUIDANCE": [str(osm_gpkg)]}
    packed = compress(raster_path, tiny_model_dir, tmp_path / "image.magc", **guidance)
    assert set(packed) == {"OUTPUT", "BYTES", "BPP", "PIXELS", "TILES", "SECONDS"}
    assert packed["PIXELS"] == 192 * 128 and packed["BYTES"] == (tmp_path / "image.magc").stat().st_size
    assert packed["BPP"] == pytest.approx(8 * packed["BYTES"] / packed["PIXELS"], rel=0.05)
    out = processing.runAndLoadResults("magc:decompressraster", {
        "INPUT": packed["OUTPUT"], "MODEL": str(tiny_model_dir), "DEVICE": "cpu", "STEPS": 2,
        "OUTPUT": str(tmp_path / "decoded.tif"), **guidance})
    assert set(out) == {"OUTPUT", "PIXELS", "TILES", "SECONDS"}
    with rasterio.open(raster_path) as original, rasterio.open(out["OUTPUT"]) as decoded:
        assert decoded.crs == original.crs and decoded.transform.almost_equals(original.transform)
        assert (decoded.width, decoded.height, decoded.count) == (original.width, original.height, 3)
    loaded = [l for l in QgsProject.instance().mapLayers().values() if l.source() == out["OUTPUT"]]
    assert loaded and isinstance(loaded[0], QgsRasterLayer)
    QgsProject.instance().removeMapLayers([l.id() for l in loaded])


def test_decode_an_extent_given_in_another_crs(magc_provider, tiling, tiny_model_dir, raster_path, tmp_path):
    from conftest import raster_to_wgs84
    packed = compress(raster_path, tiny_model_dir, tmp_path / "image.magc")
    (lon0, lat0), (lon1, lat1) = raster_to_wgs84(2, 2), raster_to_wgs84(60, 40)  # inside the first 64x64 tile
    out = run("magc:decompressraster", {"INPUT": packed["OUTPUT"], "MODEL": str(tiny_model_dir), "STEPS": 1,
                                        "EXTENT": f"{lon0},{lon1},{lat1},{lat0} [EPSG:4326]",
                                        "OUTPUT": str(tmp_path / "part.tif")})
    with rasterio.open(out["OUTPUT"]) as part, rasterio.open(raster_path) as whole:
        assert part.crs == whole.crs and 50 <= part.width <= 64 and 30 <= part.height <= 64
        assert part.bounds.left >= whole.bounds.left and part.bounds.top <= whole.bounds.top


def test_zero_steps_decode_stage_1_alone(magc_provider, tiling, tiny_model_dir, raster_path, tmp_path):
    """0 diffusion steps: the codecs' reconstruction drawn by the stage-1 decoder, as the library gives it."""
    packed = compress(raster_path, tiny_model_dir, tmp_path / "image.magc")
    out = run("magc:decompressraster", {"INPUT": packed["OUTPUT"], "MODEL": str(tiny_model_dir), "STEPS": 0,
                                        "OUTPUT": str(tmp_path / "stage1.tif")})
    tiling.decompress_raster(packed["OUTPUT"], tmp_path / "library.tif", None, str(tiny_model_dir), steps=0, device="cpu")
    drawn = run("magc:decompressraster", {"INPUT": packed["OUTPUT"], "MODEL": str(tiny_model_dir), "STEPS": 1,
                                          "OUTPUT": str(tmp_path / "drawn.tif")})
    with rasterio.open(out["OUTPUT"]) as a, rasterio.open(tmp_path / "library.tif") as b, \
            rasterio.open(drawn["OUTPUT"]) as c:
        stage1 = a.read()
        assert np.array_equal(stage1, b.read()) and not np.array_equal(stage1, c.read())


def test_other_guidance_warns_or_stops(magc_provider, tiling, tiny_model_dir, raster_path, buildings_layer,
                                       tmp_path):
    packed = compress(raster_path, tiny_model_dir, tmp_path / "image.magc", BUILDINGS=buildings_layer)
    decode = {"INPUT": packed["OUTPUT"], "MODEL": str(tiny_model_dir), "STEPS": 1,
              "OUTPUT": str(tmp_path / "decoded.tif")}
    with pytest.raises(QgsProcessingException, match="guidance differs"):
        run("magc:decompressraster", {**decode, "STRICT_GUIDANCE": True})
    feedback = LogFeedback()
    run("magc:decompressraster", decode, feedback)
    assert any("guidance differs" in w for w in feedback.warnings) and not feedback.errors
    feedback = LogFeedback()  # again: a warning shows on every run, not once per session
    run("magc:decompressraster", decode, feedback)
    assert any("guidance differs" in w for w in feedback.warnings)


def test_nodata_is_kept(magc_provider, tiling, tiny_model_dir, tmp_path):
    raster = write_raster(tmp_path / "nodata.tif", nodata=0)
    packed = compress(raster, tiny_model_dir, tmp_path / "nodata.magc")
    out = run("magc:decompressraster", {"INPUT": packed["OUTPUT"], "MODEL": str(tiny_model_dir), "STEPS": 1,
                                        "OUTPUT": str(tmp_path / "decoded.tif")})
    with rasterio.open(out["OUTPUT"]) as decoded:
        assert decoded.nodata == 0


def test_compress_cancel(magc_provider, tiling, tiny_model_dir, raster_path, tmp_path):
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run("magc:compressraster", {"INPUT": str(raster_path), "MODEL": str(tiny_model_dir), "TILE_SIZE": 64,
                                    "OUTPUT": str(tmp_path / "x.magc")}, CancelAfterProgress())


def test_decompress_corrupt_file(magc_provider, tiling, tiny_model_dir, tmp_path):
    bad = tmp_path / "corrupt.magc"
    bad.write_bytes(b"this is not a magc file" * 10)
    with pytest.raises(QgsProcessingException) as error:
        run("magc:decompressraster", {"INPUT": str(bad), "MODEL": str(tiny_model_dir),
                                      "OUTPUT": str(tmp_path / "decoded.tif")})
    assert "magc" in str(error.value).lower()


def test_skip_damaged_tiles(magc_provider, tiling, tiny_model_dir, raster_path, tmp_path):
    from magc_plugin import container
    packed = compress(raster_path, tiny_model_dir, tmp_path / "image.magc", TILE_SIZE=64)
    with container.MAGCReader(packed["OUTPUT"]) as reader:
        entry = reader.index[1]
    data = bytearray((tmp_path / "image.magc").read_bytes())
    data[entry.offset + entry.length // 2] ^= 0x55
    (tmp_path / "bad.magc").write_bytes(bytes(data))
    decode = {"INPUT": str(tmp_path / "bad.magc"), "MODEL": str(tiny_model_dir), "STEPS": 1,
              "OUTPUT": str(tmp_path / "decoded.tif")}
    with pytest.raises(QgsProcessingException, match="Skip damaged tiles"):
        run("magc:decompressraster", decode)
    feedback = LogFeedback()
    out = run("magc:decompressraster", {**decode, "SKIP_DAMAGED": True}, feedback)
    assert sum("damaged tile (1,0)" in w for w in feedback.warnings) == 1
    with rasterio.open(out["OUTPUT"]) as decoded:
        mask = decoded.dataset_mask()
    assert (mask[:64, 64:128] == 0).all() and mask[:, :64].all() and mask[64:].all()


def test_missing_model_says_what_to_do(magc_provider, tiling, raster_path, tmp_path):
    with pytest.raises(QgsProcessingException, match="No MAGC model"):
        run("magc:compressraster", {"INPUT": str(raster_path), "MODEL": str(tmp_path),
                                    "OUTPUT": str(tmp_path / "x.magc")})


def test_cuda_request_without_gpu(magc_provider, tiling, tiny_model_dir, raster_path, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(QgsProcessingException, match="CUDA"):
        compress(raster_path, tiny_model_dir, tmp_path / "x.magc", DEVICE="cuda")


def test_batch_one_bad_input_fails_alone(magc_provider, tiling, tiny_model_dir, tmp_path):
    """As in batch mode: each row runs on its own; the corrupt raster fails, the others complete."""
    rows = [write_raster(tmp_path / "a.tif"), tmp_path / "broken.tif", write_raster(tmp_path / "c.tif", 128, 64)]
    rows[1].write_bytes(b"II*\x00 not really a tiff")
    results = {}
    for raster in rows:
        try:
            results[raster.name] = compress(raster, tiny_model_dir, raster.with_suffix(".magc"))
        except QgsProcessingException as exc:
            results[raster.name] = exc
    assert isinstance(results["broken.tif"], QgsProcessingException)
    assert results["a.tif"]["PIXELS"] == 192 * 128 and results["c.tif"]["PIXELS"] == 128 * 64


def test_real_oam_tile_round_trip(magc_provider, tiling, tiny_model_dir, tmp_path):
    if not ZANZIBAR.is_dir():
        pytest.skip("../shared/data/oam-osm-buildings is absent: real-data test not run")
    image = zanzibar_geotiff(tmp_path)
    buildings = str(ZANZIBAR / "labels_osm_buildings.geojson")
    packed = compress(image, tiny_model_dir, tmp_path / "tile.magc", BUILDINGS=buildings, TILE_SIZE=256)
    out = run("magc:decompressraster", {"INPUT": packed["OUTPUT"], "MODEL": str(tiny_model_dir), "STEPS": 1,
                                        "BUILDINGS": buildings, "OUTPUT": str(tmp_path / "decoded.tif")})
    assert read(out["OUTPUT"]).shape == (256, 256)


# -- Batch compress / decompress folder on Dask -------------------------------------------------
def test_batch_folder_round_trip_on_a_scheduler(magc_provider, tiling, tiny_model_dir, dask_client, buildings_layer,
                                               tmp_path):
    """Two rasters and a broken one: the broken one is reported, the others match the single-raster tools."""
    (tmp_path / "in").mkdir()
    write_raster(tmp_path / "in" / "a.tif")
    write_raster(tmp_path / "in" / "b.tif", 128, 64)
    (tmp_path / "in" / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    common = {"MODEL": str(tiny_model_dir), "DEVICE": "cpu", "BUILDINGS": buildings_layer,
              "SCHEDULER": dask_client.scheduler.address}
    feedback = LogFeedback()
    packed = run("magc:batchcompressfolder", {"INPUT": str(tmp_path / "in"), "TILE_SIZE": 128,
                                              "OUTPUT": str(tmp_path / "magc"), **common}, feedback)
    assert (packed["SUCCEEDED"], packed["FAILED"]) == (2, 1)
    assert any(e.startswith("broken.tif failed: Cannot read the raster") for e in feedback.errors)
    report = json.loads(open(packed["REPORT"]).read())
    assert [f.get("error") is None for f in report["files"]] == [True, True, False]
    single = compress(tmp_path / "in" / "a.tif", tiny_model_dir, tmp_path / "single.magc",
                      BUILDINGS=buildings_layer)
    assert (tmp_path / "magc" / "a.magc").read_bytes() == open(single["OUTPUT"], "rb").read()

    decoded = run("magc:batchdecompressfolder", {"INPUT": packed["OUTPUT"], "STEPS": 1,
                                                 "OUTPUT": str(tmp_path / "tif"), **common})
    assert (decoded["SUCCEEDED"], decoded["FAILED"]) == (2, 0)
    with rasterio.open(tmp_path / "tif" / "b.tif") as out:
        assert (out.width, out.height, out.crs.to_string()) == (128, 64, RASTER_CRS)


class CancelOnFirstTile(QgsProcessingFeedback):
    """Cancels once a tile is done, from the thread that reports it (a signal would be queued to the main
    thread, which in a test runs no event loop; in QGIS the dialog's button sets the flag)."""

    def setProgress(self, progress):  # noqa: N802 (QGIS's name)
        super().setProgress(progress)
        if progress > 0:
            self.cancel()


def test_batch_cancel(magc_provider, tiling, tiny_model_dir, dask_client, raster_path, tmp_path):
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run("magc:batchcompressfolder", {"INPUT": str(raster_path.parent), "MODEL": str(tiny_model_dir),
                                         "TILE_SIZE": 64, "SCHEDULER": dask_client.scheduler.address,
                                         "OUTPUT": str(tmp_path / "magc")}, CancelOnFirstTile())
    assert not list((tmp_path / "magc").glob("*.magc"))


def test_batch_scheduler_that_does_not_answer(magc_provider, tiling, raster_path, tmp_path):
    pytest.importorskip("distributed")
    with pytest.raises(QgsProcessingException, match="No Dask scheduler answers at tcp://127.0.0.1:9"):
        run("magc:batchcompressfolder", {"INPUT": str(raster_path.parent), "SCHEDULER": "tcp://127.0.0.1:9",
                                         "OUTPUT": str(tmp_path / "magc")})


def test_batch_without_dask_says_what_to_install(magc_provider, tiling, raster_path, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # as if dask were not installed
    with pytest.raises(QgsProcessingException, match="package 'distributed'.*requirements.txt"):
        run("magc:batchdecompressfolder", {"INPUT": str(tmp_path), "OUTPUT": str(tmp_path / "out")})


# -- Evaluate -------------------------------------------------------------------------------
def test_evaluate(magc_provider, raster_path, tmp_path):
    require_module("magc_plugin.evaluation.metrics")
    noisy = write_raster(tmp_path / "noisy.tif")
    with rasterio.open(noisy, "r+") as dst:
        dst.write(np.clip(dst.read().astype(int) + 8, 0, 255).astype(np.uint8))
    out = run("magc:evaluate", {"ORIGINAL": str(raster_path), "DECODED": str(noisy),
                                "OUTPUT_HTML": str(tmp_path / "report.html")})
    assert set(out) == {"OUTPUT_HTML", "BPP", "PSNR", "MS_SSIM", "LPIPS_ALEX", "LPIPS_VGG", "DISTS", "FID"}
    assert 25 < out["PSNR"] < 35 and 0 < out["MS_SSIM"] <= 1
    assert out["BPP"] is None  # no .magc file given
    assert "psnr" in (tmp_path / "report.html").read_text()


def test_evaluate_rasters_of_different_sizes(magc_provider, raster_path, tmp_path):
    require_module("magc_plugin.evaluation.metrics")
    other = write_raster(tmp_path / "small.tif", 64, 64)
    with pytest.raises(QgsProcessingException, match="differ in size"):
        run("magc:evaluate", {"ORIGINAL": str(raster_path), "DECODED": str(other),
                              "OUTPUT_HTML": str(tmp_path / "report.html")})


# -- QGIS features -> classes (qgis_guidance) ---------------------------------------------------
def test_osm_other_tags_and_fixed_classes():
    from qgis.core import QgsFeature, QgsFields, QgsField
    from qgis.PyQt.QtCore import QVariant
    from magc_plugin.guidance import DEFAULT_ROAD_WIDTH_M, feature_class
    from magc_plugin.qgis_guidance import feature_properties

    fields = QgsFields()
    for name in ("osm_id", "name", "other_tags"):
        fields.append(QgsField(name, QVariant.String))
    feature = QgsFeature(fields)
    feature.setAttributes(["42", None, '"building"=>"yes","height"=>"5"'])
    props = feature_properties(feature)
    assert props == {"osm_id": "42", "building": "yes", "height": "5"}
    assert feature_class(props) == (BUILDING, None)
    assert feature_class({}, fixed_class=ROAD) == (ROAD, DEFAULT_ROAD_WIDTH_M)
    assert feature_class({"name": "x"}) == (None, None)


def test_compress_says_and_takes_the_stretch_of_a_16_bit_raster(magc_provider, tiling, tiny_model_dir, tmp_path):
    import rasterio
    from rasterio.transform import from_origin
    data = (np.random.default_rng(0).integers(0, 100, (3, 64, 64)) * 40 + 1000).astype(np.uint16)
    src = tmp_path / "u16.tif"
    with rasterio.open(src, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint16", crs=RASTER_CRS,
                       transform=from_origin(500000, 9300000, 1, 1)) as dst:
        dst.write(data)
    base = {"INPUT": str(src), "MODEL": str(tiny_model_dir), "TILE_SIZE": 64, "USE_PROJECT_LAYERS": False}
    for stretch, said in (("", "uint16 source stretched to 0..255 from [1"), ("1000, 5000", "from [1000, 5000]")):
        feedback = LogFeedback()
        out = run("magc:compressraster", {**base, "STRETCH": stretch, "OUTPUT": str(tmp_path / "a.magc")}, feedback)
        assert any(said in line for line in feedback.infos), feedback.infos
    from magc_plugin.container import MAGCReader
    with MAGCReader(out["OUTPUT"]) as reader:
        assert reader.head["stretch"] == [[1000.0, 5000.0]] * 3
    with pytest.raises(QgsProcessingException, match="not two numbers"):
        run("magc:compressraster", {**base, "STRETCH": "a lot", "OUTPUT": str(tmp_path / "b.magc")})
    with pytest.raises(QgsProcessingException, match=r"min < max within the raster's data type \(uint16"):
        run("magc:compressraster", {**base, "STRETCH": "-5, 100", "OUTPUT": str(tmp_path / "b.magc")})
    assert not (tmp_path / "b.magc").exists()
