"""The MAGC Processing provider: lists the tools and reports the stack it runs on."""
from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .. import __version__
from ..plugin_files import plugin_file
from . import settings
from .batch_compress import BatchCompressFolder
from .batch_decompress import BatchDecompressFolder
from .compress import CompressRaster
from .decompress import DecompressRaster
from .diagnostics import Diagnostics
from .evaluate import Evaluate
from .rasterize import RasterizeGuidance

ALGORITHMS = (CompressRaster, DecompressRaster, BatchCompressFolder, BatchDecompressFolder, RasterizeGuidance, Evaluate,
              Diagnostics)


class MAGCProvider(QgsProcessingProvider):
    ID = "magc"

    def id(self):
        return self.ID

    def name(self):
        return "MAGC"

    def longName(self):  # noqa: N802 (QGIS's name)
        return self.tr("MAGC map-assisted generative compression")

    def icon(self):
        return QIcon(str(plugin_file("resources", "icon.svg")))

    def versionInfo(self):  # noqa: N802 (QGIS's name)
        return f"MAGC {__version__}"

    def load(self):
        """Add the provider's settings to Processing > Options, then the tools (whose defaults read them)."""
        try:
            from processing.core.ProcessingConfig import ProcessingConfig
        except ImportError:  # Processing's Python plugin is not loaded: the tools use the settings' defaults
            ProcessingConfig = None  # noqa: N806
        if ProcessingConfig is not None:
            ProcessingConfig.settingIcons[self.name()] = self.icon()
            for setting in settings.definitions():
                ProcessingConfig.addSetting(setting)
            ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        try:
            from processing.core.ProcessingConfig import ProcessingConfig
        except ImportError:
            return
        for name in settings.DEFAULTS:
            if name in ProcessingConfig.settings:
                ProcessingConfig.removeSetting(name)

    def loadAlgorithms(self):  # noqa: N802 (QGIS's name)
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
