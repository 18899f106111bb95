"""QGIS layers -> the guidance class raster, through the one rasterization core.

Any vector source QGIS reads (files, databases, services, memory layers) becomes
GeoJSON geometries in the raster's CRS, classified either by the layer it comes from
(one layer per class) or feature by feature from OpenStreetMap tags / ``fclass``
(:func:`magc_plugin.guidance.class_from_attributes`), then burnt by
:func:`magc_plugin.guidance.rasterize_features`. A class raster made earlier by the
Rasterize guidance tool can serve as the base under the vectors.

:class:`LayerGuidance` is the ``guidance(transform, width, height, crs)`` callable the
tiling core asks for, tile by tile; it reads only the features that touch the tile.
"""
import json
import re

import numpy as np
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsCsException,
                       QgsFeatureRequest, QgsRectangle, QgsWkbTypes)

from .codec.classes import NOT_MAPPED, ROAD, WATER
from .guidance import feature_class, rasterize_features

# Widest line buffer burnt by the core (a motorway): tiles read features this far outside.
MAX_HALF_LINE_WIDTH_M = 12
METRES_PER_DEGREE = 111_320

# The GDAL OSM driver keeps the tags it has no column for in an hstore string: "k"=>"v","k2"=>"v2".
_OTHER_TAGS = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')


def to_qgs_crs(crs):
    """A QgsCoordinateReferenceSystem from a QGIS CRS, a rasterio CRS, WKT, 'EPSG:n' or None (invalid CRS)."""
    if isinstance(crs, QgsCoordinateReferenceSystem):
        return crs
    result = QgsCoordinateReferenceSystem()
    if crs:
        result.createFromUserInput(crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs))
    return result


def grid_extent(transform, width, height):
    """The bounding rectangle of a north-up grid (rasterio Affine) of width x height pixels."""
    x0, y0 = transform.c, transform.f
    x1, y1 = x0 + transform.a * width + transform.b * height, y0 + transform.d * width + transform.e * height
    rect = QgsRectangle(x0, y0, x1, y1)
    rect.normalize()
    return rect


def feature_properties(feature):
    """A feature's attributes as a plain dict, OSM ``other_tags`` unpacked, NULLs dropped."""
    props = {}
    for name, value in zip(feature.fields().names(), feature.attributes()):
        if value is None or (hasattr(value, "isNull") and value.isNull()):
            continue
        if name == "other_tags" and isinstance(value, str):
            for key, tag in _OTHER_TAGS.findall(value):
                props.setdefault(key, tag)
            continue
        props[name] = value if isinstance(value, (str, int, float)) else str(value)
    return props


class GuidanceSource:
    """One vector source and how its features are classified (a fixed class, or by attributes)."""

    def __init__(self, source, fixed_class=None, name=None):
        self.source = source
        self.fixed_class = fixed_class
        self.name = name or source.sourceName()
        self.burnt = 0
        self.unclassified = 0

    def features(self, dst_crs, extent, transform_context):
        """Yield (GeoJSON geometry in dst_crs, class, line width) for features touching `extent` (in dst_crs)."""
        src_crs = self.source.sourceCrs()
        transform = None
        if src_crs.isValid() and dst_crs.isValid() and src_crs != dst_crs:
            transform = QgsCoordinateTransform(src_crs, dst_crs, transform_context)
        request = QgsFeatureRequest()
        try:
            rect = transform.transformBoundingBox(extent, QgsCoordinateTransform.ReverseTransform) if transform else extent
            request.setFilterRect(rect)
        except QgsCsException:
            pass  # the tile does not project into the layer's CRS: read everything, filter after
        needs_attributes = self.fixed_class is None or self.fixed_class in (ROAD, WATER)
        if not needs_attributes:
            request.setNoAttributes()
        for feature in self.source.getFeatures(request):
            geometry = feature.geometry()
            if geometry is None or geometry.isNull() or geometry.type() not in (
                    QgsWkbTypes.PolygonGeometry, QgsWkbTypes.LineGeometry, QgsWkbTypes.PointGeometry):
                continue
            class_id, width = feature_class(feature_properties(feature) if needs_attributes else {}, self.fixed_class)
            if class_id is None:
                self.unclassified += 1
                continue
            if transform is not None:
                try:
                    geometry.transform(transform)
                except QgsCsException:
                    continue
            self.burnt += 1
            yield json.loads(geometry.asJson()), class_id, width


class LayerGuidance:
    """guidance(transform, width, height, crs) -> uint8 class raster, from QGIS vector sources.

    sources: GuidanceSource list; class_raster: optional path of a class raster (any grid/CRS)
    used where no vector maps a pixel; cancel: callable, checked between sources.
    """

    def __init__(self, sources, transform_context, class_raster=None, cancel=None):
        self.sources = list(sources)
        self.transform_context = transform_context
        self.class_raster = class_raster
        self.cancel = cancel or (lambda: False)

    def __bool__(self):
        return bool(self.sources or self.class_raster)

    def __call__(self, transform, width, height, crs):
        dst_crs = to_qgs_crs(crs)
        extent = grid_extent(transform, width, height)
        margin = MAX_HALF_LINE_WIDTH_M / (METRES_PER_DEGREE if dst_crs.isGeographic() else 1.0)
        extent.grow(margin)
        features = []
        for source in self.sources:
            if self.cancel():
                break
            features.extend(source.features(dst_crs, extent, self.transform_context))
        out = rasterize_features(features, transform, width, height, crs_is_geographic=dst_crs.isGeographic())
        if self.class_raster:
            base = read_class_raster(self.class_raster, transform, width, height, crs)
            out = np.where(out == NOT_MAPPED, base, out).astype(np.uint8)
        return out

    def summary(self):
        """One line per source: how many features were burnt and how many matched no class."""
        return [(s.name, s.burnt, s.unclassified) for s in self.sources]


def read_class_raster(path, transform, width, height, crs):
    """A class raster resampled (nearest) onto the given grid; NOT_MAPPED outside it."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.warp import Resampling, reproject

    out = np.full((height, width), NOT_MAPPED, dtype=np.uint8)
    with rasterio.open(path) as src:
        if isinstance(crs, QgsCoordinateReferenceSystem):
            crs = crs.toWkt(QgsCoordinateReferenceSystem.WKT2_2019) if crs.isValid() else None
        dst_crs = CRS.from_user_input(crs) if crs else None
        src_crs = src.crs
        if src_crs is None or dst_crs is None:  # ungeoreferenced: grids are compared in pixel space
            src_crs = dst_crs = CRS.from_epsg(3857)
        reproject(rasterio.band(src, 1), out, src_crs=src_crs, dst_transform=transform, dst_crs=dst_crs,
                  src_nodata=src.nodata, dst_nodata=NOT_MAPPED, resampling=Resampling.nearest)
    return out
