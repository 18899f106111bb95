"""Shared fixtures. Sections are appended by the engineers who own them; keep each small."""

# -- QGIS plugin and Processing tools (plugin shell) ------------------------------------------
import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ZANZIBAR = SHARED_DATA / "oam-osm-buildings" / "zanzibar_tz"
RASTER_CRS = "EPSG:32737"  # UTM 37S (Zanzibar); the vector fixtures are in WGS84 to exercise reprojection
RASTER_ORIGIN = (500000.0, 9330000.0)
RASTER_SIZE = (192, 128)  # width, height
PIXEL = 0.5


def require_module(name):
    """Import a module another engineer is writing: skip while it does not exist, fail if it exists but breaks."""
    if name not in sys.modules and importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} does not exist yet")
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny randomly initialised MAGC model folder: fast, meaningless pictures."""
    import torch
    from magc_plugin.codec.model import MAGCModel, compact_config

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_model")
    cfg = compact_config(latent_channels=4, ae_width=16, N=16, M=16, map_channels=8, num_slices=4,
                         unet_channels=(16, 32), adapter_map_channels=8)
    model = MAGCModel.from_config(cfg)
    model.update_tables()
    model.save_pretrained(folder)
    return folder


def write_raster(path, width=RASTER_SIZE[0], height=RASTER_SIZE[1], nodata=None):
    """A small RGB GeoTIFF in RASTER_CRS: a field, a road across, red-roofed blocks."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    image = np.zeros((3, height, width), np.uint8)
    image[:] = np.array([70, 120, 60], np.uint8)[:, None, None] + rng.integers(0, 25, (3, height, width), np.uint8)
    image[:, height // 2 - 6:height // 2 + 6, :] = np.array([150, 150, 145], np.uint8)[:, None, None]
    image[:, 10:40, 20:60] = np.array([180, 80, 60], np.uint8)[:, None, None]
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                       crs=RASTER_CRS, transform=from_origin(*RASTER_ORIGIN, PIXEL, PIXEL), nodata=nodata) as dst:
        dst.write(image)
    return Path(path)


@pytest.fixture
def raster_path(tmp_path):
    return write_raster(tmp_path / "image.tif")


def raster_to_wgs84(col, row):
    """A pixel corner of the test raster in WGS84 (lon, lat)."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject

    transform = QgsCoordinateTransform(QgsCoordinateReferenceSystem(RASTER_CRS),
                                       QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    point = transform.transform(QgsPointXY(RASTER_ORIGIN[0] + col * PIXEL, RASTER_ORIGIN[1] - row * PIXEL))
    return point.x(), point.y()


@pytest.fixture
def buildings_layer():
    """A WGS84 memory layer with one building over pixels (20..60, 10..40) of the test raster."""
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=building:string", "buildings", "memory")
    ring = ", ".join("{} {}".format(*raster_to_wgs84(c, r)) for c, r in ((20, 10), (60, 10), (60, 40), (20, 40),
                                                                         (20, 10)))
    feature = QgsFeature(layer.fields())
    feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({ring}))"))
    feature.setAttribute("building", "yes")
    layer.dataProvider().addFeatures([feature])
    return layer


def write_gpkg(layer, path):
    """Save a vector layer as a GeoPackage file (what qgis_process and batch rows take)."""
    from qgis.core import QgsCoordinateTransformContext, QgsVectorFileWriter

    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    error = QgsVectorFileWriter.writeAsVectorFormatV2(layer, str(path), QgsCoordinateTransformContext(), options)
    assert error[0] == QgsVectorFileWriter.NoError, error
    return Path(path)


@pytest.fixture
def buildings_gpkg(buildings_layer, tmp_path):
    return write_gpkg(buildings_layer, tmp_path / "buildings.gpkg")


@pytest.fixture
def osm_gpkg(tmp_path):
    """A GeoPackage of an OSM-tagged road (highway=primary) across the raster, in WGS84."""
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer("LineString?crs=EPSG:4326&field=highway:string", "roads", "memory")
    feature = QgsFeature(layer.fields())
    (x0, y0), (x1, y1) = raster_to_wgs84(-5, 64), raster_to_wgs84(200, 64)
    feature.setGeometry(QgsGeometry.fromWkt(f"LINESTRING({x0} {y0}, {x1} {y1})"))
    feature.setAttribute("highway", "primary")
    layer.dataProvider().addFeatures([feature])
    return write_gpkg(layer, tmp_path / "osm.gpkg")


@pytest.fixture
def magc_provider(qgis_processing):
    """The MAGC provider registered in the Processing registry (once per session)."""
    from qgis.core import QgsApplication
    from magc_plugin.processing.provider import MAGCProvider

    registry = QgsApplication.processingRegistry()
    if registry.providerById(MAGCProvider.ID) is None:
        magc_provider.instance = MAGCProvider()
        registry.addProvider(magc_provider.instance)
    return registry.providerById(MAGCProvider.ID)


# -- Dask scale-out (magc_plugin.distributed) ---------------------------------------------------
@pytest.fixture(scope="session")
def dask_client():
    """A Dask client on a local cluster of 2 worker processes, on the loopback interface."""
    pytest.importorskip("distributed")
    from magc_plugin.distributed import connect
    with connect(workers=2) as client:
        yield client


# -- no downloads (the Evaluate tool fetches torchvision's weights for users) --------------------
# Set at import, so that the qgis_process runs of the tests inherit it too.
os.environ["MAGC_OFFLINE"] = "1"
