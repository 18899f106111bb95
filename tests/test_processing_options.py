"""How the tools speak QGIS: provider settings in Processing > Options, enums by name or number,
warnings as warnings (captured per thread), the users' example model."""
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
from qgis.core import QgsProcessingContext

from log_feedback import LogFeedback
from magc_plugin.processing import settings
from magc_plugin.processing.base import option_name, thread_warnings

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def setting(name, value):
    """A provider setting changed in memory only (setSettingValue would write the user's QGIS profile)."""
    from processing.core.ProcessingConfig import ProcessingConfig
    entry = ProcessingConfig.settings[name]
    before = entry.value
    entry.value = value
    try:
        yield
    finally:
        entry.value = before


def test_settings_are_in_processing_options(magc_provider):
    from processing.core.ProcessingConfig import ProcessingConfig
    groups = ProcessingConfig.getSettings()
    assert {s.name for s in groups[magc_provider.name()]} == set(settings.DEFAULTS)
    assert ProcessingConfig.getSetting(settings.DEVICE, readable=True) == "auto"


def test_settings_are_the_tools_defaults(magc_provider, tmp_path):
    with setting(settings.DEVICE, "cpu"), setting(settings.TILE_SIZE, 256), setting(settings.MODEL_FOLDER,
                                                                                      str(tmp_path)):
        magc_provider.refreshAlgorithms()
        compress = magc_provider.algorithm("compressraster")
        assert compress.parameterDefinition("DEVICE").defaultValue() == "cpu"
        assert compress.parameterDefinition("TILE_SIZE").defaultValue() == 256
        assert compress.model_and_device({}, QgsProcessingContext()) == (str(tmp_path), "cpu")
    magc_provider.refreshAlgorithms()
    compress = magc_provider.algorithm("compressraster")
    assert compress.parameterDefinition("TILE_SIZE").defaultValue() == 512
    assert compress.model_and_device({}, QgsProcessingContext()) == ("default", "auto")


def test_settings_leave_with_the_provider(qgis_processing):
    from processing.core.ProcessingConfig import ProcessingConfig
    from magc_plugin.processing.provider import MAGCProvider
    provider = MAGCProvider()
    assert provider.load() and settings.DEVICE in ProcessingConfig.settings
    provider.unload()
    try:
        assert not set(settings.DEFAULTS) & set(ProcessingConfig.settings)
        assert settings.value(settings.TILE_SIZE) == 512  # a setting not there reads as its default
    finally:
        provider.load()  # back for the provider that the other tests share


@pytest.mark.parametrize("given, expected", [("1", "cpu"), (1, "cpu"), ("cpu", "cpu"), ("2", "cuda"),
                                             ("7", "7"), ("gpu", "gpu")])
def test_enum_by_name_or_number(magc_provider, given, expected):
    compress = magc_provider.algorithm("compressraster")
    device = compress.parameterDefinition("DEVICE")
    assert option_name(device.options(), given) == expected
    assert device.checkValueIsAcceptable(given) == (expected in device.options())
    assert device.clone().checkValueIsAcceptable(given) == (expected in device.options())
    if expected in device.options():
        assert compress.enum_string({"DEVICE": given}, "DEVICE", QgsProcessingContext()) == expected


def test_rate_by_number(magc_provider):
    compress = magc_provider.algorithm("compressraster")
    rates = compress.parameterDefinition("RATE").options()
    last = len(rates) - 1
    assert compress.encoder_options({"RATE": str(last)}, QgsProcessingContext())["rate"] == rates[last]
    assert compress.encoder_options({"RATE": 0}, QgsProcessingContext())["rate"] is None  # 0 is 'default'


def test_warnings_are_kept_per_thread():
    """Two tools in two threads each get their own warnings; the filters are not swapped."""
    with thread_warnings():  # the first use adds the core's 'always' filter, once
        filters = list(warnings.filters)
    started, release, kept = threading.Barrier(2), threading.Event(), {}

    def tool(name):
        with thread_warnings() as caught:
            started.wait()
            warnings.warn(f"from {name}", UserWarning)
            if name == "a":
                release.set()
            else:
                release.wait(5)
        kept[name] = [str(m) for m, _ in caught]

    threads = [threading.Thread(target=tool, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kept == {"a": ["from a"], "b": ["from b"]}
    assert warnings.filters == filters


def test_core_warnings_are_warnings_not_errors(magc_provider):
    algorithm, registry = magc_provider.algorithm("compressraster"), {}
    for _ in range(2):  # the same warning of the core twice: shown each run, not once per session
        feedback = LogFeedback()
        with algorithm.core_errors(feedback):
            warnings.warn_explicit("the guidance differs", UserWarning, "tiling.py", 1, module="magc_plugin.tiling",
                                   registry=registry)
        assert feedback.warnings == ["the guidance differs"] and not feedback.errors


def test_users_example_model_is_valid_with_the_defaults(magc_provider):
    """resources/models/magc_round_trip.model3 (for users) runs every tool with its defaults (512-pixel tiles,
    20 steps); tests/data/magc_round_trip.model3 is the fast one (128-pixel tiles, 2 steps) for the tests."""
    from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingModelChildParameterSource
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(ROOT / "resources" / "models" / "magc_round_trip.model3"))
    valid, issues = model.validate()
    assert valid, issues
    for child_id in ("rasterize", "compress", "decompress"):
        child = model.childAlgorithm(child_id)
        assert child.algorithm() is not None, child_id
        for name, sources in child.parameterSources().items():
            if sources[0].source() == QgsProcessingModelChildParameterSource.StaticValue:
                assert sources[0].staticValue() == child.algorithm().parameterDefinition(name).defaultValue(), name
    assert model.childAlgorithm("compress").parameterSources()["TILE_SIZE"][0].staticValue() == 512
    assert model.childAlgorithm("decompress").parameterSources()["STEPS"][0].staticValue() == 20


def test_evaluate_reads_the_weights_folder_setting(magc_provider, raster_path, tmp_path, monkeypatch):
    """The metric weights folder of the settings is where Evaluate looks first; without weights a metric is
    left out with a warning (MAGC_OFFLINE, set by conftest: nothing downloads)."""
    pytest.importorskip("rasterio")
    import processing
    from magc_plugin.evaluation import metrics
    local = metrics.resolve_weights_dir() / "metrics"
    if not all((local / name).is_file() for name in metrics.BACKBONE_FILES.values()):
        pytest.skip(f"metric backbones not found in {local}")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no torchvision weights cached
    metrics._network.cache_clear()
    (tmp_path / "mine" / "metrics").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    for name in metrics.BACKBONE_FILES.values():
        (tmp_path / "mine" / "metrics" / name).symlink_to(local / name)
    parameters = {"ORIGINAL": str(raster_path), "DECODED": str(raster_path), "OUTPUT_HTML": str(tmp_path / "r.html")}
    with setting(settings.WEIGHTS_FOLDER, str(tmp_path / "mine")):
        assert processing.run("magc:evaluate", parameters)["LPIPS_ALEX"] == pytest.approx(0, abs=1e-6)

    feedback = LogFeedback()
    with setting(settings.WEIGHTS_FOLDER, str(tmp_path / "empty")):
        assert processing.run("magc:evaluate", parameters, feedback=feedback)["LPIPS_ALEX"] is None
    assert any("lpips_alex skipped" in w for w in feedback.warnings)
