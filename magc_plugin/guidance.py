"""Vector layers -> the guidance class raster on a raster's grid (GDAL via rasterio).

One function does the burning for every caller: the QGIS tools (which hand over
features as GeoJSON geometries in the raster's CRS), the command line, and the
training data preparation, so training sees exactly what users give.

Class of a feature: a fixed class per layer, or from OpenStreetMap tags
(``building``, ``highway``, ``natural``, ``landuse``...) or the ``fclass`` field of
common OSM exports (Geofabrik shapefiles). Lines (roads, rivers) are buffered to
a width by road class. Burn order: land cover first, then water, roads and
buildings on top, so small mapped structures are never hidden by large polygons.
"""
import json

import numpy as np

from .codec.classes import BUILDING, NOT_MAPPED, OTHER_LAND, ROAD, VEGETATION, WATER

# Burn priority: later classes are painted over earlier ones.
BURN_ORDER = (OTHER_LAND, VEGETATION, WATER, ROAD, BUILDING)

# Typical carriageway widths in metres by OSM highway class.
ROAD_WIDTH_M = {
    "motorway": 22, "motorway_link": 10, "trunk": 18, "trunk_link": 9, "primary": 14, "primary_link": 8,
    "secondary": 12, "secondary_link": 7, "tertiary": 10, "tertiary_link": 6, "residential": 8,
    "unclassified": 7, "living_street": 6, "service": 5, "road": 7, "track": 4, "pedestrian": 5,
    "footway": 2, "path": 2, "cycleway": 2, "steps": 2, "bridleway": 2,
}
DEFAULT_ROAD_WIDTH_M = 6
WATERWAY_WIDTH_M = {"river": 20, "canal": 12, "stream": 4, "ditch": 2, "drain": 2}

VEGETATION_VALUES = {"forest", "wood", "grass", "grassland", "meadow", "scrub", "heath", "park", "orchard",
                     "vineyard", "farmland", "allotments", "village_green", "recreation_ground", "garden",
                     "nature_reserve", "wetland", "cemetery", "golf_course", "tree_row", "tree"}
WATER_VALUES = {"water", "reservoir", "basin", "riverbank", "river", "canal", "stream", "lake", "pond", "bay",
                "wetland_water", "coastline", "dock", "swimming_pool"}
OTHER_LAND_VALUES = {"sand", "beach", "bare_rock", "scree", "quarry", "construction", "brownfield", "landfill",
                     "industrial", "commercial", "residential", "retail", "railway", "military", "farmyard",
                     "greenfield", "desert", "mud", "airport", "parking"}


def class_from_attributes(props):
    """OSM tags or an OSM export's `fclass` -> (class, line width in metres or None); (None, None) if unknown."""
    props = {str(k).lower(): v for k, v in (props or {}).items() if v not in (None, "", "no")}
    if "building" in props or props.get("fclass") == "building":
        return BUILDING, None
    highway = props.get("highway")
    if highway:
        return ROAD, ROAD_WIDTH_M.get(str(highway), DEFAULT_ROAD_WIDTH_M)
    waterway = props.get("waterway")
    if waterway:
        return WATER, WATERWAY_WIDTH_M.get(str(waterway), 4)
    fclass = str(props.get("fclass", "")).lower()
    if fclass in ROAD_WIDTH_M or fclass.startswith(("motorway", "trunk", "primary", "secondary", "tertiary")):
        return ROAD, ROAD_WIDTH_M.get(fclass, DEFAULT_ROAD_WIDTH_M)
    for key in ("natural", "landuse", "leisure", "water", "amenity", "fclass", "surface"):
        value = str(props.get(key, "")).lower()
        if not value:
            continue
        if value in WATER_VALUES or (key == "natural" and value == "water"):
            return WATER, WATERWAY_WIDTH_M.get(value)
        if value in VEGETATION_VALUES:
            return VEGETATION, None
        if value in OTHER_LAND_VALUES or key == "landuse":
            return OTHER_LAND, None
    return None, None


def feature_class(props, fixed_class=None):
    """(class, line width in metres or None) of a feature: a layer's fixed class, or from its attributes.

    Lines of a fixed road or water layer still get a width by their OSM class when they have one.
    """
    if fixed_class is None:
        return class_from_attributes(props)
    width = class_from_attributes(props)[1] if fixed_class in (ROAD, WATER) else None
    if fixed_class == ROAD:
        width = width or DEFAULT_ROAD_WIDTH_M
    return fixed_class, width


def _pixel_size_m(transform, crs_is_geographic, latitude=0.0):
    size = (abs(transform.a) + abs(transform.e)) / 2
    if crs_is_geographic:  # degrees -> metres at this latitude
        size *= 111_320 * max(0.1, np.cos(np.radians(latitude)))
    return size


def _buffer(geometry, distance):
    from osgeo import ogr
    geom = ogr.CreateGeometryFromJson(json.dumps(geometry))
    if geom is None:
        return None
    return json.loads(geom.Buffer(distance, 4).ExportToJson())


def rasterize_features(features, transform, width, height, crs_is_geographic=False):
    """Burn features into a class raster.

    features: iterable of (geojson_geometry_in_raster_crs, class_id, line_width_m_or_None).
    Returns uint8 (height, width), NOT_MAPPED where nothing was burnt.
    """
    from rasterio.features import rasterize

    out = np.full((height, width), NOT_MAPPED, dtype=np.uint8)
    if width <= 0 or height <= 0:
        return out
    latitude = transform.f + transform.e * height / 2 if crs_is_geographic else 0.0
    metre = 1.0 / _pixel_size_m(transform, crs_is_geographic, latitude) * ((abs(transform.a) + abs(transform.e)) / 2)
    by_class = {c: [] for c in BURN_ORDER}
    for geometry, class_id, width_m in features:
        if geometry is None or class_id not in by_class:
            continue
        if width_m and geometry.get("type") in ("LineString", "MultiLineString"):
            geometry = _buffer(geometry, width_m * metre / 2)
            if geometry is None:
                continue
        by_class[class_id].append(geometry)
    for class_id in BURN_ORDER:
        shapes = [(g, class_id) for g in by_class[class_id]]
        if shapes:
            rasterize(shapes, out=out, transform=transform, all_touched=class_id in (ROAD, BUILDING))
    return out


def read_vector_features(path, dst_crs, fixed_class=None, bounds=None):
    """Read a vector file with fiona, reproject to dst_crs, classify (outside QGIS)."""
    import fiona
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom

    dst = CRS.from_user_input(dst_crs)
    with fiona.open(path) as src:
        src_crs = CRS.from_user_input(src.crs_wkt or "EPSG:4326")
        for feat in src.filter(bbox=bounds) if bounds else src:
            if feat.geometry is None:
                continue
            class_id, width_m = feature_class(dict(feat.properties), fixed_class)
            if class_id is None:
                continue
            geom = dict(feat.geometry.__geo_interface__) if hasattr(feat.geometry, "__geo_interface__") else dict(feat.geometry)
            if src_crs != dst:
                geom = transform_geom(src_crs, dst, geom)
            yield geom, class_id, width_m
