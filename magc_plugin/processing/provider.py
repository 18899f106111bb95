"""The MAGC Processing provider: lists the tools and reports the stack it runs on."""
from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .. import __version__
from ..plugin import plugin_file
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

    def loadAlgorithms(self):  # noqa: N802 (QGIS's name)
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
