"""Decompress raster: a .magc file and the same vector map -> a GeoTIFF in the original grid."""
from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterBoolean, QgsProcessingParameterExtent,
                       QgsProcessingParameterFile, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination)

from .base import MAGCAlgorithm


class DecoderParameters:
    """Diffusion steps, seed, strict guidance and damaged tiles: shared by Decompress raster and Batch decompress
    folder."""
    STEPS = "STEPS"
    SEED = "SEED"
    STRICT_GUIDANCE = "STRICT_GUIDANCE"
    SKIP_DAMAGED = "SKIP_DAMAGED"

    def add_decoder_parameters(self):
        self.add(QgsProcessingParameterNumber(self.STEPS, self.tr("Diffusion steps"),
                                              QgsProcessingParameterNumber.Integer, 20, minValue=0, maxValue=1000),
                 self.tr("More steps: finer texture, slower decoding. 0: stage 1 alone, no diffusion: fast, the "
                         "colours and layout the bits carry, no drawn texture (blurry)."))
        self.add(QgsProcessingParameterNumber(self.SEED, self.tr("Seed"), QgsProcessingParameterNumber.Integer, 0,
                                              minValue=0),
                 self.tr("Seed of the decoder's noise: the same file, map and seed always give the same image."),
                 advanced=True)
        self.add(QgsProcessingParameterBoolean(self.STRICT_GUIDANCE, self.tr("Stop if the guidance differs"),
                                               defaultValue=False),
                 self.tr("Fail instead of warning when the guidance map differs from the one used to compress."),
                 advanced=True)
        self.add(QgsProcessingParameterBoolean(self.SKIP_DAMAGED, self.tr("Skip damaged tiles"), defaultValue=False),
                 self.tr("Decode what can be: the tiles that are damaged in the file become nodata, with a warning "
                         "each, instead of the whole file being refused."),
                 advanced=True)

    def decoder_options(self, parameters, context):
        """The keyword arguments of tiling.decompress_raster that these parameters set."""
        return {"steps": self.parameterAsInt(parameters, self.STEPS, context),
                "seed": self.parameterAsInt(parameters, self.SEED, context),
                "strict_guidance": self.parameterAsBool(parameters, self.STRICT_GUIDANCE, context),
                "skip_damaged": self.parameterAsBool(parameters, self.SKIP_DAMAGED, context)}


class DecompressRaster(DecoderParameters, MAGCAlgorithm):
    INPUT = "INPUT"
    EXTENT = "EXTENT"
    OUTPUT = "OUTPUT"
    REPORT_KEYS = ("PIXELS", "TILES", "SECONDS")

    def name(self):
        return "decompressraster"

    def displayName(self):  # noqa: N802 (QGIS's name)
        return self.tr("Decompress raster")

    def shortHelpString(self):  # noqa: N802 (QGIS's name)
        return self.tr("Decodes a .magc file into a GeoTIFF with the original CRS, geotransform and nodata, and "
                       "loads it. Give the guidance layers that were used to compress: the decoder draws detail "
                       "that the map implies. The same seed gives the same image.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS's name)
        self.add(QgsProcessingParameterFile(self.INPUT, self.tr("Compressed file"), extension="magc"),
                 self.tr("A .magc file written by 'Compress raster'."))
        self.add_guidance_parameters()
        self.add_decoder_parameters()
        self.add(QgsProcessingParameterExtent(self.EXTENT, self.tr("Extent to decode"), optional=True),
                 self.tr("Decode only the tiles that cover this extent. Empty: the whole raster."), advanced=True)
        self.add_model_parameters()
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Decoded raster")),
                 self.tr("The decoded GeoTIFF."))
        for key, label in zip(self.REPORT_KEYS, ("Pixels", "Tiles", "Time (seconds)")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS's name)
        src = self.parameterAsFile(parameters, self.INPUT, context)
        options = self.decoder_options(parameters, context)
        model_path, device = self.model_and_device(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        extent, embeds_map = self.file_header(src)
        if embeds_map:
            self.project_layers = []  # no project layer knows the encoder's map better than the file itself
        guidance = self.guidance(parameters, context, feedback, extent)
        if not guidance:
            feedback.pushInfo(self.tr("No guidance layer given: the map embedded in the file is used, if any."))
        with self.core_errors(feedback):
            from .. import tiling
            extent = self.extent_in_file_crs(parameters, context, src)
            report = tiling.decompress_raster(src, output, guidance or None, model_path, extent=extent,
                                              device=device, progress=self.progress(feedback),
                                              cancel=feedback.isCanceled, **options)
        self.report_guidance(guidance, feedback)
        feedback.pushInfo(self.tr("Wrote {}: {} pixels in {} tiles, {:.1f} s").format(
            output, report.get("pixels"), report.get("tiles"), report.get("seconds", 0.0)))
        return {self.OUTPUT: output, **{key: report.get(key.lower()) for key in self.REPORT_KEYS}}

    @staticmethod
    def file_header(path):
        """((QgsRectangle, CRS) of the raster in a .magc file, whether the file embeds its guidance map); (None,
        False) when its header cannot be read (the decoder then says why)."""
        from qgis.core import QgsRectangle
        from ..codec.errors import MAGCError
        from ..qgis_guidance import to_qgs_crs
        try:
            from ..container import MAGCReader
            from ..tiling import raster_info
            info = raster_info(path)
            with MAGCReader(path) as reader:
                embeds_map = reader.head["embedded_guidance"]
        except (ImportError, MAGCError, OSError):
            return None, False
        return (QgsRectangle(*info["bounds"]), to_qgs_crs(info["crs"])), embeds_map

    def extent_in_file_crs(self, parameters, context, path):
        """The EXTENT parameter as (xmin, ymin, xmax, ymax) in the CRS of the .magc file, or None."""
        if parameters.get(self.EXTENT) in (None, ""):
            return None
        from ..qgis_guidance import to_qgs_crs
        from ..tiling import raster_info
        rect = self.parameterAsExtent(parameters, self.EXTENT, context, to_qgs_crs(raster_info(path)["crs"]))
        return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
