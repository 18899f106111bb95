"""The plugin shell: loading, provider registration guard, unloading, metadata, translations, tool definitions."""
import ast
import configparser
import importlib
import re
from pathlib import Path
from xml.etree import ElementTree

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


def french_messages():
    """{(context, source): translation} of i18n/magc_fr.ts."""
    root = ElementTree.parse(ROOT / "i18n" / "magc_fr.ts").getroot()
    return {(context.findtext("name"), message.findtext("source")): message.findtext("translation") or ""
            for context in root.iter("context") for message in context.iter("message")}


def tr_literals():
    """(context, source, where) of every tr("...") and self.tr("...") call with a literal in magc_plugin/.

    base.tr translates in base.CONTEXT (or its literal context argument). self.tr translates in the class name of
    the instance (MAGCAlgorithm.tr, and PyQt's QObject.tr), so a string of a base class or mixin is looked up in
    every tool that inherits it. f-strings and variables are skipped (the next test covers those of the tools)."""
    from magc_plugin.processing.base import CONTEXT
    concrete = (*ALGORITHMS, MAGCProvider)
    found = []
    for path in sorted((ROOT / "magc_plugin").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        where = path.relative_to(ROOT)

        def visit(node, class_name):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    visit(child, child.name)
                    continue
                if (isinstance(child, ast.Call) and child.args and isinstance(child.args[0], ast.Constant)
                        and isinstance(child.args[0].value, str)):
                    func, text = child.func, child.args[0].value
                    if isinstance(func, ast.Name) and func.id == "tr":
                        context = next((k.value.value for k in child.keywords if k.arg == "context"
                                        and isinstance(k.value, ast.Constant)), CONTEXT)
                        found.append((context, text, f"{where}:{child.lineno}"))
                    elif (isinstance(func, ast.Attribute) and func.attr == "tr" and isinstance(func.value, ast.Name)
                          and func.value.id == "self" and class_name):
                        owner = getattr(importlib.import_module(module), class_name)
                        contexts = [c.__name__ for c in concrete if issubclass(c, owner)] or [class_name]
                        found.extend((context, text, f"{where}:{child.lineno}") for context in contexts)
                visit(child, class_name)

        visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return found


def test_every_tr_literal_has_a_french_translation():
    messages = french_messages()
    literals = tr_literals()
    assert len(literals) > 100  # the parser still finds the calls
    missing = sorted({f"{where}: [{context}] {text!r}" for context, text, where in literals
                      if not messages.get((context, text))})
    assert not missing, "no French translation in i18n/magc_fr.ts for:\n" + "\n".join(missing)


def test_every_tool_string_has_a_french_translation(monkeypatch):
    """What the tools translate at definition time, f-strings and labels included."""
    from magc_plugin.processing import base

    seen = set()

    class Recorder:
        @staticmethod
        def translate(context, text, *args):
            seen.add((context, text))
            return text

    monkeypatch.setattr(base, "QCoreApplication", Recorder)
    for algorithm_class in ALGORITHMS:
        algorithm = algorithm_class()
        algorithm.initAlgorithm()
        algorithm.displayName(), algorithm.shortHelpString(), algorithm.group()
    messages = french_messages()
    missing = sorted(f"[{context}] {text!r}" for context, text in seen if not messages.get((context, text)))
    assert not missing, "no French translation in i18n/magc_fr.ts for:\n" + "\n".join(missing)


def test_french_translations_keep_the_placeholders():
    placeholders = re.compile(r"\{[^{}]*\}")
    wrong = [source for (_, source), translation in french_messages().items()
             if not translation or sorted(placeholders.findall(source)) != sorted(placeholders.findall(translation))]
    assert not wrong, wrong


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
