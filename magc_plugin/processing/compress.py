"""Compress raster: an image raster and its vector map -> a .magc file."""
from qgis.core import (QgsProcessingException, QgsProcessingOutputNumber, QgsProcessingParameterBand,
                       QgsProcessingParameterBoolean, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer, QgsProcessingParameterString)

from . import settings
from .base import EnumParameter, MAGCAlgorithm, raster_path

FALLBACK_RATES = ("low", "medium", "high")


def rate_options():
    """'default' then the shipped model's rate presets (or the usual three if no model is installed yet)."""
    from ..codec.errors import MAGCError
    from ..codec.folders import model_rates
    try:
        rates = model_rates("default")
    except (MAGCError, KeyError):
        rates = FALLBACK_RATES
    return ("default",) + rates


class EncoderParameters:
    """Rate preset, tile size and embedded guidance: shared by Compress raster and Batch compress folder."""
    RATE = "RATE"
    TILE_SIZE = "TILE_SIZE"
    EMBED_GUIDANCE = "EMBED_GUIDANCE"

    def add_encoder_parameters(self):
        self.add(EnumParameter(self.RATE, self.tr("Bitrate preset"), rate_options(), "default"),
                 self.tr("The model's rate preset, by name or number: lower rates give smaller files and more "
                         "invented detail. 'default' is the model's default preset."))
        self.add(QgsProcessingParameterNumber(self.TILE_SIZE, self.tr("Tile size (pixels)"),
                                              QgsProcessingParameterNumber.Integer,
                                              int(settings.value(settings.TILE_SIZE)), minValue=64, maxValue=4096),
                 self.tr("Side of the tiles coded one at a time (a multiple of 64). Smaller tiles use less memory. "
                         "Default: the MAGC tile size in Processing > Options."),
                 advanced=True)
        self.add(QgsProcessingParameterBoolean(self.EMBED_GUIDANCE, self.tr("Embed the guidance map in the file"),
                                               defaultValue=False),
                 self.tr("Store the rasterized map in the file (it costs bits) so that it decodes without the "
                         "vector layers."), advanced=True)

    def encoder_options(self, parameters, context):
        """The keyword arguments of tiling.compress_raster that these parameters set."""
        rate = self.enum_string(parameters, self.RATE, context)
        return {"rate": None if rate == "default" else rate,
                "tile_size": self.parameterAsInt(parameters, self.TILE_SIZE, context),
                "embed_guidance": self.parameterAsBool(parameters, self.EMBED_GUIDANCE, context)}


class CompressRaster(EncoderParameters, MAGCAlgorithm):
    INPUT = "INPUT"
    BANDS = "BANDS"
    STRETCH = "STRETCH"
    OUTPUT = "OUTPUT"
    REPORT_KEYS = ("BYTES", "BPP", "PIXELS", "TILES", "SECONDS")

    def name(self):
        return "compressraster"

    def displayName(self):  # noqa: N802 (QGIS's name)
        return self.tr("Compress raster")

    def shortHelpString(self):  # noqa: N802 (QGIS's name)
        return self.tr("Compresses an RGB raster to a .magc file at an extremely low bitrate, helped by a vector map "
                       "(buildings, roads, water, vegetation, other land) that the decoder will have too, such as "
                       "OpenStreetMap. The CRS, geotransform and nodata of the raster are kept. The real size in "
                       "bits per pixel is reported. Decompress with the same guidance layers.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS's name)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input raster")),
                 self.tr("The image to compress: 8-bit RGB, any CRS; nodata pixels are kept as nodata."))
        self.add(QgsProcessingParameterBand(self.BANDS, self.tr("Bands (red, green, blue)"),
                                            parentLayerParameterName=self.INPUT, optional=True, allowMultiple=True),
                 self.tr("Three bands to code as red, green and blue. Empty: bands 1, 2, 3 (one band: grey)."),
                 advanced=True)
        self.add(QgsProcessingParameterString(self.STRETCH, self.tr("Stretch range (min, max)"), optional=True),
                 self.tr("Source values mapped to 0..255 in every band, as 'min, max' (for a 16-bit or float "
                         "raster). Empty: 8-bit rasters as they are, others from each band's 2 % and 98 % "
                         "percentiles. The log gives the range used; values outside it are clipped."),
                 advanced=True)
        self.add_guidance_parameters()
        self.add_encoder_parameters()
        self.add_model_parameters()
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT, self.tr("Compressed file"),
                                                       self.tr("MAGC files (*.magc)")),
                 self.tr("The .magc file to write."))
        for key, label in zip(self.REPORT_KEYS, ("Size (bytes)", "Bits per pixel", "Pixels", "Tiles",
                                                 "Time (seconds)")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS's name)
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        src = raster_path(layer)
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None
        stretch = self.stretch_range(self.parameterAsString(parameters, self.STRETCH, context))
        options = self.encoder_options(parameters, context)
        model_path, device = self.model_and_device(parameters, context)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        guidance = self.guidance(parameters, context, feedback, (layer.extent(), layer.crs()))
        if not guidance:
            feedback.pushWarning(self.tr("No guidance layer given: the codec works without a map, but with less "
                                         "detail."))
        feedback.pushInfo(self.tr("Model {}, rate preset '{}', device {}").format(
            model_path, options["rate"] or "default", device))
        with self.core_errors(feedback):
            from .. import tiling
            report = tiling.compress_raster(src, output, guidance, model_path, bands=bands, stretch=stretch,
                                            device=device,
                                            progress=self.progress(feedback), cancel=feedback.isCanceled, **options)
        self.report_guidance(guidance, feedback)
        feedback.pushInfo(self.stretch_text(report))
        feedback.pushInfo(self.tr("Wrote {}: {} bytes, {:.4f} bpp for {} pixels in {} tiles, {:.1f} s").format(
            output, report["bytes"], report["bpp"], report["pixels"], report["tiles"], report["seconds"]))
        return {self.OUTPUT: output, **{key: report[key.lower()] for key in self.REPORT_KEYS}}

    def stretch_range(self, text):
        """(min, max) from 'min, max' (or 'min max'), None when empty."""
        if not text.strip():
            return None
        try:
            low, high = (float(v) for v in text.replace(",", " ").split())
        except ValueError:
            raise QgsProcessingException(self.tr("The stretch range '{}' is not two numbers: give 'min, max', such "
                                                 "as '0, 4000', or leave it empty.").format(text)) from None
        return low, high

    def stretch_text(self, report):
        """What the coded 8 bits mean: the source range of each coded band."""
        if report["dtype"] == "uint8" and all(pair == [0.0, 255.0] for pair in report["stretch"]):
            return self.tr("8-bit source: its values are coded as they are.")
        ranges = ", ".join("[{:g}, {:g}]".format(*pair) for pair in report["stretch"])
        return self.tr("{} source stretched to 0..255 from {} (red, green, blue); values outside are clipped, and "
                       "decoded values lie within these ranges.").format(report["dtype"], ranges)
