"""Evaluate: original vs decoded raster -> bpp, PSNR, MS-SSIM and perceptual metrics, with an HTML report."""
import html

from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterRasterLayer)

from .base import MAGCAlgorithm, raster_path

# Output key -> (key in the metrics dict, label, direction).
METRICS = {
    "BPP": ("bpp", "Bits per pixel", "lower is smaller"),
    "PSNR": ("psnr", "PSNR (dB)", "higher is better"),
    "MS_SSIM": ("ms_ssim", "MS-SSIM", "higher is better"),
    "LPIPS": ("lpips", "LPIPS", "lower is better"),
    "DISTS": ("dists", "DISTS", "lower is better"),
}


def html_report(original, decoded, magc, values, notes):
    """A small self-contained HTML page of the figures."""
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{'n/a' if value is None else f'{value:.4f}'}</td>"
                   f"<td>{html.escape(direction)}</td></tr>"
                   for (label, direction), value in values)
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (f"<html><head><meta charset='utf-8'><title>MAGC evaluation</title></head><body>"
            f"<h2>MAGC evaluation</h2><p>Original: {html.escape(original)}<br>Decoded: {html.escape(decoded)}<br>"
            f"Compressed file: {html.escape(magc or '-')}</p>"
            f"<table border='1' cellpadding='4'><tr><th>Metric</th><th>Value</th><th></th></tr>{rows}</table>"
            f"<ul>{items}</ul></body></html>")


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
                       ".magc file is given, and the perceptual metrics LPIPS and DISTS when their network weights "
                       "are available. Figures are outputs and an HTML report; nodata pixels are left out.")

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
                 self.tr("Folder with the LPIPS/DISTS backbone weights. Empty: perceptual metrics are reported "
                         "only if their weights are installed; nothing is downloaded."), advanced=True)
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_HTML, self.tr("Report"),
                                                       self.tr("HTML files (*.html)")),
                 self.tr("The HTML report."))
        for key, (_, label, _) in METRICS.items():
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS's name)
        original = raster_path(self.parameterAsRasterLayer(parameters, self.ORIGINAL, context))
        decoded = raster_path(self.parameterAsRasterLayer(parameters, self.DECODED, context))
        magc = self.parameterAsFile(parameters, self.MAGC_FILE, context) or None
        weights = self.parameterAsFile(parameters, self.WEIGHTS, context) or None
        output = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        with self.core_errors(feedback):
            from ..evaluation.metrics import evaluate_rasters
            feedback.setProgressText(self.tr("Computing the metrics"))
            metrics = evaluate_rasters(original, decoded, magc_path=magc, weights_dir=weights)
        results = {key: (None if metrics.get(name) is None else float(metrics[name]))
                   for key, (name, _, _) in METRICS.items()}
        notes = [str(n) for n in metrics.get("notes", [])]
        for key, value in results.items():
            feedback.pushInfo(f"{METRICS[key][1]}: {'n/a' if value is None else f'{value:.4f}'}")
        for note in notes:
            feedback.pushInfo(note)
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(html_report(original, decoded, magc, [((label, direction), results[key])
                                                            for key, (_, label, direction) in METRICS.items()],
                                 notes))
        return {self.OUTPUT_HTML: output, **results}
