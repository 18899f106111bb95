"""Rasterize guidance: vector layers -> the guidance class raster on a raster's grid (uint8 GeoTIFF with legend)."""
from pathlib import Path

from qgis.core import (QgsProcessingException, QgsProcessingLayerPostProcessorInterface, QgsProcessingOutputNumber,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer)

from ..codec.classes import CLASS_COLOURS, CLASS_NAMES, NOT_MAPPED
from .base import MAGCAlgorithm, raster_path

STRIP_PIXELS = 1 << 22  # rows are rasterized in strips of about this many pixels


QML = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <colorPalette>
{}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""


def write_legend(raster_path):
    """A QGIS style beside the raster (same name, .qml): QGIS shows the class colours and names when it opens it."""
    entries = "\n".join(f'        <paletteEntry value="{i}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" '
                        f'label="{CLASS_NAMES[i]}"/>' for i, (r, g, b) in sorted(CLASS_COLOURS.items()))
    Path(raster_path).with_suffix(".qml").write_text(QML.format(entries), encoding="utf-8")


class LoadLegend(QgsProcessingLayerPostProcessorInterface):
    """Applies the .qml legend to the loaded layer (Processing loads outputs without their default style)."""

    instance = None  # Processing keeps only a raw pointer: hold the Python object

    @classmethod
    def create(cls):
        cls.instance = cls()
        return cls.instance

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS's name)
        layer.loadDefaultStyle()
        layer.triggerRepaint()


def write_class_raster(path, guidance, transform, width, height, crs_wkt, progress, cancel):
    """Rasterize `guidance` onto the grid strip by strip into a paletted GeoTIFF; returns the mapped pixel count."""
    from affine import Affine
    from osgeo import gdal

    driver = gdal.GetDriverByName("GTiff")
    dataset = driver.Create(path, width, height, 1, gdal.GDT_Byte, ["COMPRESS=DEFLATE", "TILED=YES"])
    if dataset is None:
        raise QgsProcessingException(f"Cannot create {path}: {gdal.GetLastErrorMsg()}")
    dataset.SetGeoTransform(transform.to_gdal())
    if crs_wkt:
        dataset.SetProjection(crs_wkt)
    band = dataset.GetRasterBand(1)
    table = gdal.ColorTable()
    for value, colour in CLASS_COLOURS.items():
        table.SetColorEntry(value, (*colour, 255))
    band.SetColorTable(table)
    rows = max(1, min(height, STRIP_PIXELS // max(1, width)))
    mapped = 0
    for row in range(0, height, rows):
        if cancel():
            break
        n = min(rows, height - row)
        strip = guidance(transform * Affine.translation(0, row), width, n, crs_wkt or None)
        band.WriteArray(strip, 0, row)
        mapped += int((strip != NOT_MAPPED).sum())
        progress((row + n) / height, None)
    band = dataset = None  # closes the file
    write_legend(path)
    return mapped


class RasterizeGuidance(MAGCAlgorithm):
    GROUP = "guidance"
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    MAPPED_FRACTION = "MAPPED_FRACTION"

    def name(self):
        return "rasterizeguidance"

    def displayName(self):  # noqa: N802 (QGIS's name)
        return self.tr("Rasterize guidance")

    def shortHelpString(self):  # noqa: N802 (QGIS's name)
        return self.tr("Burns the guidance vector layers into the class raster the codec sees, on the grid of a "
                       "raster: 0 not mapped, 1 building, 2 road, 3 water, 4 vegetation, 5 other land. Use it to "
                       "check a map before compressing, or feed it to Compress and Decompress as a guidance class "
                       "raster.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS's name)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Raster giving the grid")),
                 self.tr("The class raster gets this raster's extent, pixel size and CRS."))
        self.add_guidance_parameters()
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Guidance class raster")),
                 self.tr("A one-band uint8 GeoTIFF with a colour table, and a QGIS style with the class names "
                         "beside it."))
        self.addOutput(QgsProcessingOutputNumber(self.MAPPED_FRACTION, self.tr("Mapped fraction")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS's name)
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        grid_path = raster_path(layer)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        guidance = self.guidance(parameters, context, feedback, (layer.extent(), layer.crs()))
        with self.core_errors(feedback):
            from affine import Affine
            from osgeo import gdal
            grid = gdal.Open(grid_path)
            if grid is None:
                raise QgsProcessingException(self.tr("Cannot open {}: {}").format(grid_path, gdal.GetLastErrorMsg()))
            width, height = grid.RasterXSize, grid.RasterYSize
            transform, crs_wkt = Affine.from_gdal(*grid.GetGeoTransform()), grid.GetProjection()
            grid = None
            mapped = write_class_raster(output, guidance, transform, width, height, crs_wkt,
                                        self.progress(feedback), feedback.isCanceled)
        self.report_guidance(guidance, feedback)
        fraction = mapped / float(width * height)
        feedback.pushInfo(self.tr("{:.1%} of the pixels are mapped.").format(fraction))
        if context.willLoadLayerOnCompletion(output):
            context.layerToLoadOnCompletionDetails(output).setPostProcessor(LoadLegend.create())
        return {self.OUTPUT: output, self.MAPPED_FRACTION: fraction}
