"""The plugin shell: loading, provider registration guard, unloading, metadata, translations, tool definitions."""
import configparser
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingParameterDefinition
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

import magc_plugin
from magc_plugin.plugin import plugin_file, translation_file
from magc_plugin.processing.provider import ALGORITHMS, MAGCProvider

ROOT = Path(__file__).resolve().parents[1]
ALGORITHM_IDS = {"compressraster", "decompressraster", "batchcompressfolder", "batchdecompressfolder",
                 "rasterizeguidance", "evaluate", "diagnostics"}


def registered():
    return QgsApplication.processingRegistry().providerById(MAGCProvider.ID)


def test_load_register_unload_twice(qgis_iface, qgis_processing):
    before = registered()
    plugin = magc_plugin.classFactory(qgis_iface)
    plugin.initProcessing()
    plugin.initGui()  # QGIS desktop calls initGui: the guard keeps one provider
    provider = registered()
    assert provider is not None
    assert {a.name() for a in provider.algorithms()} == ALGORITHM_IDS
    plugin.initProcessing()
    assert registered() is provider
    plugin.unload()
    plugin.unload()
    if before is None:
        assert registered() is None


def test_second_plugin_does_not_delete_first(qgis_iface, qgis_processing):
    first, second = magc_plugin.classFactory(qgis_iface), magc_plugin.classFactory(qgis_iface)
    first.initProcessing()
    second.initProcessing()
    assert registered() is not None and len(registered().algorithms()) == len(ALGORITHMS)
    second.unload()
    first.unload()


def test_algorithm_definitions(magc_provider):
    for algorithm in magc_provider.algorithms():
        assert algorithm.id() == f"magc:{algorithm.name()}" and algorithm.name().islower()
        assert algorithm.shortHelpString() and algorithm.displayName() and algorithm.group()
        assert not algorithm.icon().isNull()
        for parameter in algorithm.parameterDefinitions():
            assert parameter.name().isupper(), parameter.name()
            assert parameter.help(), f"{algorithm.id()} {parameter.name()} has no help"
        assert algorithm.outputDefinitions()


def test_secondary_parameters_are_advanced(magc_provider):
    compress = QgsApplication.processingRegistry().algorithmById("magc:compressraster")
    advanced = {p.name() for p in compress.parameterDefinitions()
                if p.flags() & QgsProcessingParameterDefinition.FlagAdvanced}
    assert {"TILE_SIZE", "DEVICE", "MODEL", "BANDS"} <= advanced
    assert "INPUT" not in advanced and "OUTPUT" not in advanced


def test_metadata_complete():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt")
    general = parser["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "tracker",
                "repository", "tags", "changelog", "hasProcessingProvider", "icon", "experimental"):
        assert general.get(key), key
    assert general["hasProcessingProvider"] == "yes"
    assert general["version"] == magc_plugin.__version__
    assert plugin_file(general["icon"]).is_file()


def test_french_translation():
    path = translation_file("fr_FR")
    if path is None:
        pytest.fail("i18n/magc_fr.qm is missing: run 'build.py test', which compiles the translations")
    translator = QTranslator()
    assert translator.load(str(path))
    QCoreApplication.installTranslator(translator)
    try:
        assert QCoreApplication.translate("CompressRaster", "Compress raster") == "Compresser un raster"
    finally:
        QCoreApplication.removeTranslator(translator)


def test_staged_plugin_is_installable(tmp_path):
    """What deploy and package lay out: one plugin folder with metadata, icon, compiled French, no caches."""
    from build import PLUGIN, stage_plugin
    folder = stage_plugin(tmp_path / PLUGIN)
    for name in ("__init__.py", "plugin.py", "metadata.txt", "LICENSE", "resources/icon.svg", "i18n/magc_fr.qm",
                 "processing/provider.py", "guidance.py", "codec/model.py"):
        assert (folder / name).is_file(), name
    assert not list(folder.rglob("__pycache__"))


WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # as in a QGIS whose Python lacks PyTorch
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback
app = QgsApplication([], False)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
import processing
from magc_plugin.processing.provider import MAGCProvider
provider = MAGCProvider()  # keep the Python object alive
QgsApplication.processingRegistry().addProvider(provider)
result = {"tools": sorted(a.name() for a in QgsApplication.processingRegistry().providerById("magc").algorithms())}
diag = processing.run("magc:diagnostics", {"OUTPUT": sys.argv[2]}, feedback=QgsProcessingFeedback())
result["device"] = diag["DEVICE_NAME"]
try:
    processing.run("magc:compressraster", {"INPUT": sys.argv[1], "OUTPUT": sys.argv[3]},
                   feedback=QgsProcessingFeedback())
except QgsProcessingException as exc:
    result["error"] = str(exc)
print(json.dumps(result))
"""


def test_without_torch_tools_stay_listed_and_say_what_to_install(raster_path, tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), "/usr/share/qgis/python/plugins",
                                                        os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(raster_path), str(tmp_path / "d.json"),
                          str(tmp_path / "x.magc")], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tools"] == sorted(ALGORITHM_IDS) and result["device"] == "none"
    assert "'torch'" in result["error"] and "build.py setup" in result["error"]


def test_translator_follows_the_qgis_locale(qgis_iface):
    from qgis.core import QgsSettings

    settings = QgsSettings()
    saved = settings.value("locale/overrideFlag", False, bool), settings.value("locale/userLocale", "")
    settings.setValue("locale/overrideFlag", True)
    settings.setValue("locale/userLocale", "fr_FR")
    try:
        plugin = magc_plugin.classFactory(qgis_iface)
        assert plugin.translator is not None
        assert QCoreApplication.translate("Diagnostics", "Diagnostics") == "Diagnostic"
        plugin.unload()
        assert QCoreApplication.translate("Diagnostics", "Diagnostics") == "Diagnostics"
    finally:
        settings.setValue("locale/overrideFlag", saved[0])
        settings.setValue("locale/userLocale", saved[1])
