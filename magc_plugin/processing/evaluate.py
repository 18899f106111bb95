"""Evaluate: original vs decoded raster -> bpp, PSNR, MS-SSIM and perceptual metrics, with an HTML report."""
import math

from qgis.core import (QgsProcessingException, QgsProcessingOutputNumber, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterRasterLayer)

from . import settings
from .base import MAGCAlgorithm, raster_path, tr

# Output key -> (key in magc_plugin.evaluation.metrics.evaluate_rasters' result, label).
METRICS = {
    "BPP": ("bpp", "Bits per pixel"),
    "PSNR": ("psnr", "PSNR (dB)"),
    "MS_SSIM": ("ms_ssim", "MS-SSIM"),
    "LPIPS_ALEX": ("lpips_alex", "LPIPS (AlexNet)"),
    "LPIPS_VGG": ("lpips_vgg", "LPIPS (VGG)"),
    "DISTS": ("dists", "DISTS"),
    "FID": ("fid", "FID"),
}


def finite_or_none(value):
    """A metric as a float, None where it could not be computed (NaN or absent)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


class Evaluate(MAGCAlgorithm):
    GROUP = "tools"
    ORIGINAL = "ORIGINAL"
    DECODED = "DECODED"
    MAGC_FILE = "MAGC_FILE"
    WEIGHTS = "WEIGHTS"
    OUTPUT_HTML = "OUTPUT_HTML"

    def name(self):
        return "evaluate"

    def displayName(self):  # noqa: N802 (QGIS's name)
        return self.tr("Evaluate")

    def shortHelpString(self):  # noqa: N802 (QGIS's name)
        return self.tr("Compares a decoded raster with its original: PSNR and MS-SSIM, bits per pixel when the "
                       ".magc file is given, and the perceptual metrics LPIPS, DISTS and FID when their network "
                       "weights are available. Figures are outputs and an HTML report; nodata windows are left out.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS's name)
        self.add(QgsProcessingParameterRasterLayer(self.ORIGINAL, self.tr("Original raster")),
                 self.tr("The raster that was compressed."))
        self.add(QgsProcessingParameterRasterLayer(self.DECODED, self.tr("Decoded raster")),
                 self.tr("The output of 'Decompress raster', on the same grid."))
        self.add(QgsProcessingParameterFile(self.MAGC_FILE, self.tr("Compressed file"), extension="magc",
                                            optional=True),
                 self.tr("The .magc file, to report its real size in bits per pixel."))
        self.add(QgsProcessingParameterFile(self.WEIGHTS, self.tr("Metric weights folder"),
                                            QgsProcessingParameterFile.Folder, optional=True),
                 self.tr("Folder with the LPIPS/DISTS backbone weights (in its metrics/ subfolder). Empty: the "
                         "metric weights folder of Processing > Options, else torchvision's ImageNet weights in "
                         "PyTorch's cache, downloaded there on first use (about 780 MB). A metric without weights "
                         "is left out, with a warning."), advanced=True)
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_HTML, self.tr("Report"),
                                                       self.tr("HTML files (*.html)")),
                 self.tr("The HTML report."))
        for key, (_, label) in METRICS.items():
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS's name)
        original = raster_path(self.parameterAsRasterLayer(parameters, self.ORIGINAL, context))
        decoded = raster_path(self.parameterAsRasterLayer(parameters, self.DECODED, context))
        magc = self.parameterAsFile(parameters, self.MAGC_FILE, context) or None
        weights = (self.parameterAsFile(parameters, self.WEIGHTS, context) or settings.value(settings.WEIGHTS_FOLDER)
                   or None)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)

        def progress(done, total):
            feedback.setProgress(100.0 * done / total)
            if feedback.isCanceled():
                raise QgsProcessingException(tr("Canceled."))

        with self.core_errors(feedback):
            from ..evaluation.metrics import backbones_to_download, evaluate_rasters, write_html_report
            for url, path in backbones_to_download(weights):
                feedback.pushInfo(self.tr("Downloading {} to {} (once)").format(url, path))
            feedback.setProgressText(self.tr("Computing the metrics"))
            figures = evaluate_rasters(original, decoded, magc_path=magc, weights_dir=weights, progress=progress,
                                       download=True)
            write_html_report({"original": original, "decoded": decoded, "compressed file": magc or "-",
                               **figures}, output)
        results = {key: finite_or_none(figures.get(name)) for key, (name, _) in METRICS.items()}
        for key, value in results.items():
            feedback.pushInfo(f"{METRICS[key][1]}: {'n/a' if value is None else f'{value:.4f}'}")
        return {self.OUTPUT_HTML: output, **results}
