"""QGIS layers -> the guidance class raster, through the one rasterization core.

Any vector source QGIS reads (files, databases, services, memory layers) becomes
GeoJSON geometries in the raster's CRS, classified either by the layer it comes from
(one layer per class) or feature by feature from OpenStreetMap tags / ``fclass``
(:func:`magc_plugin.guidance.class_from_attributes`), then burnt by
:func:`magc_plugin.guidance.rasterize_features`. A class raster made earlier by the
Rasterize guidance tool can serve as the base under the vectors.

:class:`LayerGuidance` is the ``guidance(transform, width, height, crs)`` callable the
tiling core asks for, tile by tile; it reads only the features that touch the tile.

When the user names no guidance, the project's vector layers are the map:
:func:`project_layer_class` decides how each one is classified (its features' tags, else
its name), the same way for the dialog's pre-filled values and for the run.
"""
import json
import re

import numpy as np
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsCsException,
                       QgsFeatureRequest, QgsMapLayerType, QgsProviderRegistry, QgsRectangle,
                       QgsVectorLayerFeatureSource, QgsWkbTypes)

from .codec.classes import BUILDING, NOT_MAPPED, OTHER_LAND, ROAD, VEGETATION, WATER
from .guidance import class_from_attributes, feature_class, rasterize_features

# Widest line buffer burnt by the core (a motorway): tiles read features this far outside.
MAX_HALF_LINE_WIDTH_M = 12
METRES_PER_DEGREE = 111_320

# The GDAL OSM driver keeps the tags it has no column for in an hstore string: "k"=>"v","k2"=>"v2".
_OTHER_TAGS = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')

# Words of a layer's name (or file, table name) that say the class of all its features; a plural 's' is dropped.
NAME_CLASSES = {
    BUILDING: {"building", "bldg", "footprint", "house", "roof", "structure"},
    ROAD: {"road", "street", "highway", "motorway", "roadway", "path", "footway", "track", "carriageway"},
    WATER: {"water", "waterway", "waterbody", "hydro", "hydrography", "river", "lake", "stream", "canal", "pond",
            "reservoir", "coastline", "sea", "ocean"},
    VEGETATION: {"vegetation", "forest", "wood", "woodland", "tree", "park", "grass", "grassland", "meadow",
                 "scrub", "greenspace"},
    OTHER_LAND: {"landuse", "bare", "sand", "construction", "industrial", "quarry"},
}
# Features read to decide whether a layer carries OSM tags or fclass (the first ones, wherever they are).
TAG_SAMPLE = 100


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


# -- the project's layers as the map, when the user names none ------------------------------------
def class_from_name(*texts):
    """The class that the first of `texts` saying one names (a layer's name, then its file or table name):
    'buildings', 'gis_osm_roads_free_1', 'WaterBodies'... None when none does, or one text names several."""
    for text in texts:
        found = set()
        for word in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", str(text or "")):
            word = word.lower()
            forms = {word, word[:-1] if word.endswith("s") else word, word[:-3] + "y" if word.endswith("ies") else word}
            found.update(class_id for class_id, words in NAME_CLASSES.items() if forms & words)
        if found:
            return found.pop() if len(found) == 1 else None
    return None


def layer_texts(layer):
    """A layer's name, then the file, layer or table name of its data source: where its class may be named."""
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = str(parts.get("path") or "").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return [layer.name(), " ".join(str(parts.get(key) or "") for key in ("layerName", "table")), path]


def has_class_tags(source):
    """Whether any of the first features of a source carries OSM tags or an fclass of a guidance class."""
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setLimit(TAG_SAMPLE)
    return any(class_from_attributes(feature_properties(f))[0] is not None for f in source.getFeatures(request))


def project_layer_class(source, texts):
    """How a layer nobody chose is classified: ('tags', None) when its features carry OSM tags or fclass,
    ('name', class) when `texts` (its name, its source) name a class, (None, None) when neither: left out."""
    if has_class_tags(source):
        return "tags", None
    class_id = class_from_name(*texts)
    return ("name", class_id) if class_id is not None else (None, None)


def project_vector_layers(project):
    """The valid vector layers with geometry of a project, in a fixed order (by name, then id)."""
    layers = [layer for layer in project.mapLayers().values()
              if layer.type() == QgsMapLayerType.VectorLayer and layer.isValid() and layer.isSpatial()]
    return sorted(layers, key=lambda layer: (layer.name(), layer.id()))


def features_over(source, extent, transform_context):
    """How many features of a LayerSnapshot touch `extent` ((QgsRectangle, its CRS), grown by the widest line
    buffer), or in all when it is None."""
    if extent is None:
        return source.feature_count
    rect, crs = QgsRectangle(extent[0]), extent[1]
    rect.grow(MAX_HALF_LINE_WIDTH_M / (METRES_PER_DEGREE if crs.isGeographic() else 1.0))
    request = QgsFeatureRequest().setNoAttributes()
    try:
        if source.crs.isValid() and crs.isValid() and source.crs != crs:
            rect = QgsCoordinateTransform(source.crs, crs, transform_context).transformBoundingBox(
                rect, QgsCoordinateTransform.ReverseTransform)
        request.setFilterRect(rect)
    except QgsCsException:
        pass  # the raster does not project into the layer's CRS: count everything
    return sum(1 for _ in source.getFeatures(request))


class LayerSnapshot:
    """A vector layer read from the algorithm thread: a QgsVectorLayerFeatureSource made in the main thread (the
    layer belongs to it), with the layer's name, CRS, feature count and the texts that may name its class."""

    def __init__(self, layer):
        self.name, self.crs, self.feature_count = layer.name(), layer.crs(), layer.featureCount()
        self.texts = layer_texts(layer)
        self.feature_source = QgsVectorLayerFeatureSource(layer)

    def sourceName(self):  # noqa: N802 (the QgsFeatureSource names GuidanceSource calls)
        return self.name

    def sourceCrs(self):  # noqa: N802
        return self.crs

    def getFeatures(self, request):  # noqa: N802
        return self.feature_source.getFeatures(request)
