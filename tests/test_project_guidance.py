"""No guidance given: the project's vector layers are the map (issue 24), in processing.run, the dialog's
pre-filled values and qgis_process --PROJECT_PATH."""
from pathlib import Path

import pytest
from qgis.core import (QgsApplication, QgsFeature, QgsGeometry, QgsProcessingException, QgsProcessingFeedback,
                       QgsProject, QgsVectorLayer)

from conftest import raster_to_wgs84, require_module
from log_feedback import LogFeedback
from magc_plugin.codec.classes import BUILDING, NOT_MAPPED, OTHER_LAND, ROAD, VEGETATION, WATER
from magc_plugin.qgis_guidance import class_from_name

rasterio = pytest.importorskip("rasterio")


@pytest.mark.parametrize("texts, expected", [
    (["buildings"], BUILDING), (["gis_osm_buildings_a_free_1"], BUILDING), (["BuildingFootprints"], BUILDING),
    (["Roads"], ROAD), (["streets"], ROAD), (["WaterBodies"], WATER), (["gis_osm_waterways_free_1"], WATER),
    (["rivers"], WATER), (["Forest"], VEGETATION), (["trees"], VEGETATION), (["landuse"], OTHER_LAND),
    (["parcels"], None), (["roads and water"], None), (["layer 1", "", "osm_buildings"], BUILDING),
])
def test_class_from_a_layer_name(texts, expected):
    assert class_from_name(*texts) == expected


def memory_layer(name, geometry_type, wkt_points, fields=""):
    layer = QgsVectorLayer(f"{geometry_type}?crs=EPSG:4326{fields}", name, "memory")
    feature = QgsFeature(layer.fields())
    shape = ", ".join("{} {}".format(*raster_to_wgs84(c, r)) for c, r in wkt_points)
    feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({shape}))" if geometry_type == "Polygon"
                                            else f"LINESTRING({shape})"))
    layer.dataProvider().addFeatures([feature])
    return layer


@pytest.fixture
def project_layers(buildings_gpkg):
    """The project holds: buildings (a GeoPackage with OSM 'building' tags), 'Roads' (no attributes: its name says
    the class), 'parcels' (nothing says a class) and 'water far away' (off the raster)."""
    layers = {
        "buildings": QgsVectorLayer(str(buildings_gpkg), "buildings", "ogr"),
        "roads": memory_layer("Roads", "LineString", ((-5, 64), (200, 64))),
        "parcels": memory_layer("parcels", "Polygon", ((100, 80), (150, 80), (150, 120), (100, 120), (100, 80))),
        "far": memory_layer("water far away", "Polygon", ((5000, 0), (5100, 0), (5100, 90), (5000, 0))),
    }
    assert all(layer.isValid() for layer in layers.values())
    QgsProject.instance().addMapLayers(list(layers.values()))
    yield layers
    QgsProject.instance().removeMapLayers([layer.id() for layer in layers.values()])


def run(algorithm, parameters, feedback=None):
    import processing
    return processing.run(algorithm, parameters, feedback=feedback or QgsProcessingFeedback())


def read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def test_the_project_layers_are_the_map(magc_provider, project_layers, raster_path, tmp_path):
    feedback = LogFeedback()
    out = run("magc:rasterizeguidance", {"INPUT": str(raster_path), "OUTPUT": str(tmp_path / "classes.tif")},
              feedback)
    classes = read(out["OUTPUT"])
    assert (classes[12:38, 22:58] == BUILDING).all() and (classes[64, 70:190] == ROAD).all()
    assert classes[100, 120] == NOT_MAPPED  # the parcels are left out
    log = "\n".join(feedback.infos + feedback.errors)
    assert "'buildings' used, classified by its features' OSM tags: 1 features" in log
    assert "'Roads' used, classified as 'road' (its name): 1 features" in log
    assert "'parcels' left out: its features have no OSM tag" in log
    assert "'water far away' left out: none of its features touches the raster" in log


def test_the_parameter_turns_it_off(magc_provider, project_layers, raster_path, tmp_path):
    out = run("magc:rasterizeguidance", {"INPUT": str(raster_path), "USE_PROJECT_LAYERS": False,
                                         "OUTPUT": str(tmp_path / "classes.tif")})
    assert (read(out["OUTPUT"]) == NOT_MAPPED).all()


def test_given_guidance_replaces_the_project_layers(magc_provider, project_layers, raster_path, osm_gpkg, tmp_path):
    feedback = LogFeedback()
    out = run("magc:rasterizeguidance", {"INPUT": str(raster_path), "GUIDANCE": [str(osm_gpkg)],
                                         "OUTPUT": str(tmp_path / "classes.tif")}, feedback)
    classes = read(out["OUTPUT"])
    assert (classes[64, 70:190] == ROAD).all() and not (classes == BUILDING).any()
    assert not any("Project layer" in line for line in feedback.infos + feedback.errors)


@pytest.mark.parametrize("algorithm", ["magc:compressraster", "magc:decompressraster", "magc:rasterizeguidance",
                                       "magc:batchcompressfolder", "magc:batchdecompressfolder"])
def test_the_dialog_starts_with_the_project_layers(magc_provider, project_layers, algorithm):
    """Each dialog creates its own instance of the tool: its guidance parameters start with the project's layers,
    placed as a run without guidance classifies them."""
    tool = QgsApplication.processingRegistry().createAlgorithmById(algorithm)
    layers = project_layers
    assert tool.parameterDefinition("GUIDANCE").defaultValue() == [layers["buildings"].id()]  # by its tags
    assert tool.parameterDefinition("ROADS").defaultValue() == layers["roads"].id()  # by their names
    assert tool.parameterDefinition("WATER").defaultValue() == layers["far"].id()
    assert tool.parameterDefinition("BUILDINGS").defaultValue() is None
    assert tool.parameterDefinition("USE_PROJECT_LAYERS").defaultValue() is True


def test_decompress_in_the_same_project_finds_the_same_map(magc_provider, project_layers, tiny_model_dir,
                                                           raster_path, tmp_path):
    require_module("magc_plugin.tiling")
    common = {"INPUT": str(raster_path), "MODEL": str(tiny_model_dir), "DEVICE": "cpu", "TILE_SIZE": 128}
    packed = run("magc:compressraster", {**common, "OUTPUT": str(tmp_path / "project.magc")})
    empty = run("magc:compressraster", {**common, "USE_PROJECT_LAYERS": False, "OUTPUT": str(tmp_path / "e.magc")})
    assert Path(packed["OUTPUT"]).read_bytes() != Path(empty["OUTPUT"]).read_bytes()
    decode = {"INPUT": packed["OUTPUT"], "MODEL": str(tiny_model_dir), "DEVICE": "cpu", "STEPS": 1,
              "STRICT_GUIDANCE": True}
    run("magc:decompressraster", {**decode, "OUTPUT": str(tmp_path / "decoded.tif")})  # no mismatch: no error
    with pytest.raises(QgsProcessingException, match="guidance differs"):
        run("magc:decompressraster", {**decode, "USE_PROJECT_LAYERS": False, "OUTPUT": str(tmp_path / "x.tif")})


def run_in_project(qgis_process, project, algorithm, **parameters):
    """qgis_process run --PROJECT_PATH=project: (results, log). qgis_process 3.22.16 (Debian 12) crashes on exit
    (SIGSEGV/SIGABRT) after any run in a project holding vector layers, native:buffer too: so its output is read
    line-buffered, and the results it printed before exiting are what count."""
    import json
    import re
    import subprocess
    from build import QGIS_PROCESS

    args = ["stdbuf", "-oL", QGIS_PROCESS, "--json", "run", algorithm, f"--PROJECT_PATH={project}",
            *(f"--{key}={value}" for key, value in parameters.items())]
    result = subprocess.run(args, env=qgis_process.env, capture_output=True, text=True)
    found = re.search(r'^  "results": (\{.*?^  \})', result.stdout, re.S | re.M)
    if result.returncode not in (0, -6, -11) or found is None:
        raise RuntimeError(f"{algorithm} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr}")
    return json.loads(found.group(1)), result.stdout + result.stderr


@pytest.mark.slow
def test_qgis_process_with_a_project(tiny_model_dir, raster_path, buildings_gpkg, tmp_path):
    """A .qgs project holding a GeoPackage buildings layer: Compress without guidance parameters uses it (the same
    file as with the layer given), and Decompress in that project finds the same map (strict: no mismatch)."""
    require_module("magc_plugin.tiling")
    from build import QgisProcess

    project = QgsProject()
    project.addMapLayer(QgsVectorLayer(str(buildings_gpkg), "buildings", "ogr"))
    assert project.write(str(tmp_path / "map.qgs"))
    qgis_process = QgisProcess(tmp_path / "qgis_process")
    common = {"INPUT": raster_path, "MODEL": tiny_model_dir, "DEVICE": "cpu", "TILE_SIZE": 128}
    in_project, log = run_in_project(qgis_process, tmp_path / "map.qgs", "magc:compressraster",
                                     OUTPUT=tmp_path / "project.magc", **common)
    assert "Project layer 'buildings' used, classified by its features' OSM tags: 1 features." in log
    empty = qgis_process.run("magc:compressraster", OUTPUT=tmp_path / "empty.magc", **common)
    given = qgis_process.run("magc:compressraster", GUIDANCE=buildings_gpkg, OUTPUT=tmp_path / "given.magc", **common)
    packed = Path(in_project["OUTPUT"]).read_bytes()
    assert packed != Path(empty["OUTPUT"]).read_bytes() and packed == Path(given["OUTPUT"]).read_bytes()
    decode = {"INPUT": in_project["OUTPUT"], "MODEL": tiny_model_dir, "DEVICE": "cpu", "STEPS": 1,
              "STRICT_GUIDANCE": "true"}
    decoded, log = run_in_project(qgis_process, tmp_path / "map.qgs", "magc:decompressraster",
                                  OUTPUT=tmp_path / "decoded.tif", **decode)
    assert Path(decoded["OUTPUT"]).is_file() and "differs" not in log
    with pytest.raises(RuntimeError, match="guidance differs"):
        qgis_process.run("magc:decompressraster", OUTPUT=tmp_path / "other.tif", **decode)


def test_a_file_with_its_map_decodes_with_it(magc_provider, project_layers, tiny_model_dir, raster_path, tmp_path):
    """A file that embeds its map (here: none) decodes with that map, not with the project's layers."""
    require_module("magc_plugin.tiling")
    packed = run("magc:compressraster", {"INPUT": str(raster_path), "MODEL": str(tiny_model_dir), "DEVICE": "cpu",
                                         "TILE_SIZE": 128, "USE_PROJECT_LAYERS": False, "EMBED_GUIDANCE": True,
                                         "OUTPUT": str(tmp_path / "embedded.magc")})
    run("magc:decompressraster", {"INPUT": packed["OUTPUT"], "MODEL": str(tiny_model_dir), "DEVICE": "cpu",
                                  "STEPS": 1, "STRICT_GUIDANCE": True, "OUTPUT": str(tmp_path / "decoded.tif")})


def test_without_an_extent_every_layer_with_features_counts(project_layers):
    """The batch tools (a folder of rasters) take the project's layers that have features, wherever they are."""
    from qgis.core import QgsCoordinateTransformContext
    from magc_plugin.qgis_guidance import LayerSnapshot, features_over

    far = LayerSnapshot(project_layers["far"])
    assert features_over(far, None, QgsCoordinateTransformContext()) == 1
