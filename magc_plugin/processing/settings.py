"""The provider's settings in Processing > Options > Providers > MAGC: the tools' defaults.

Read through ProcessingConfig when the Processing plugin is loaded (QGIS desktop,
qgis_process); elsewhere (plain Python) every setting has its default value.
"""
from qgis.PyQt.QtCore import QCoreApplication

DEVICES = ("auto", "cpu", "cuda")
GROUP = "MAGC"
DEVICE = "MAGC_DEVICE"
MODEL_FOLDER = "MAGC_MODEL_FOLDER"
TILE_SIZE = "MAGC_TILE_SIZE"
WEIGHTS_FOLDER = "MAGC_WEIGHTS_FOLDER"
WORKER_PYTHON = "MAGC_WORKER_PYTHON"
DEFAULTS = {DEVICE: "auto", MODEL_FOLDER: "", TILE_SIZE: 512, WEIGHTS_FOLDER: "", WORKER_PYTHON: ""}


def tr(text):
    return QCoreApplication.translate("MAGCAlgorithm", text)  # the context of the strings shared by the tools


def definitions():
    """The Setting objects, built when the provider loads (ProcessingConfig needs the Processing plugin)."""
    from processing.core.ProcessingConfig import Setting

    return [
        Setting(GROUP, DEVICE, tr("Default device"), DEFAULTS[DEVICE], valuetype=Setting.SELECTION,
                options=list(DEVICES)),
        Setting(GROUP, MODEL_FOLDER, tr("Default model folder (empty: the model shipped with the plugin)"),
                DEFAULTS[MODEL_FOLDER], valuetype=Setting.FOLDER),
        Setting(GROUP, TILE_SIZE, tr("Default tile size (pixels, a multiple of 64)"), DEFAULTS[TILE_SIZE],
                valuetype=Setting.INT),
        Setting(GROUP, WEIGHTS_FOLDER, tr("Metric weights folder (empty: torchvision's cache, downloaded once)"),
                DEFAULTS[WEIGHTS_FOLDER], valuetype=Setting.FOLDER),
        Setting(GROUP, WORKER_PYTHON, tr("Python of local Dask workers (empty: python3 on the PATH)"),
                DEFAULTS[WORKER_PYTHON], valuetype=Setting.FILE),
    ]


def value(name):
    """A setting's current value, or its default where Processing's configuration is not there."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return DEFAULTS[name]
    current = ProcessingConfig.getSetting(name, readable=True)
    return DEFAULTS[name] if current is None else current
