"""Raster files in and out, window by window with rasterio: no whole raster is ever in memory.

Reading: open a source raster, choose the three bands coded as RGB, stretch them to 8 bits and
read one window with its validity mask. Writing: a GeoTIFF like the source, written window by
window into a temporary file that is renamed only on commit, so a failure or a cancel leaves
nothing behind.
"""
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .codec.errors import MAGCError
from .container import dtype_range
from .outputs import give_ordinary_permissions

OVERVIEW_SIDE = 1024       # the stretch's percentiles come from a decimated read of at most this side
STRETCH_PERCENTILES = (2.0, 98.0)


def affine(values):
    """The Affine of a file's six geotransform numbers."""
    from affine import Affine
    return Affine(*values[:6])


def crs_of(georef):
    """The rasterio CRS of a file's georeferencing record, or None."""
    from rasterio.crs import CRS
    return CRS.from_wkt(georef["crs_wkt"]) if georef.get("crs_wkt") else None


def tile_transform(transform, x0, y0):
    """The geotransform of a window starting at pixel (x0, y0); rotation terms are kept."""
    from affine import Affine
    return transform * Affine.translation(x0, y0)


# A raster without georeferencing is coded on an identity grid; rasterio warns at each open of one. A filter set
# once, not catch_warnings per call, which is not thread-safe (QGIS runs tools in worker threads).
warnings.filterwarnings("ignore", message="Dataset has no geotransform")

# -- source rasters -------------------------------------------------------------------------------
def open_raster(path):
    import rasterio
    from rasterio.errors import RasterioIOError
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise MAGCError(f"Cannot read the raster {path}: {exc}. Give a GDAL-readable image file.") from exc
    if src.count == 0 or src.width == 0 or src.height == 0:
        src.close()
        raise MAGCError(f"The raster {path} is empty ({src.width}x{src.height} pixels, {src.count} bands).")
    return src


def choose_bands(src, bands=None):
    """Three source bands (1-based) coded as red, green, blue; one band is coded as grey."""
    if bands is None or len(bands) == 0:
        bands = [1, 2, 3] if src.count >= 3 else [1]
    bands = [int(b) for b in bands]
    if len(bands) == 1:
        bands = bands * 3
    if len(bands) != 3:
        raise MAGCError(f"Give one band (grey) or three bands (red, green, blue), not {len(bands)}: {bands}.")
    bad = [b for b in bands if not 1 <= b <= src.count]
    if bad:
        raise MAGCError(f"Band(s) {bad} do not exist: the raster has bands 1..{src.count}.")
    return bands


def compute_stretch(src, bands, given=None):
    """Per coded band (lo, hi) mapping source values to 0..255.

    given: one (lo, hi) for every band, chosen by the user. Else 8-bit sources keep their values
    (0, 255) and others use the 2%-98% percentiles of the valid pixels of a decimated read (at
    most OVERVIEW_SIDE pixels a side).
    """
    if given is not None:
        lo, hi = (float(v) for v in given)
        bottom, top = dtype_range(src.dtypes[0])
        if not (bottom <= lo < hi <= top and math.isfinite(hi - lo)):
            raise MAGCError(f"The stretch range [{lo:g}, {hi:g}] must be two values with min < max within the "
                            f"raster's data type ({src.dtypes[0]}: {bottom:g} to {top:g}).")
        return [[lo, hi]] * 3
    if src.dtypes[0] == "uint8":
        return [[0.0, 255.0]] * 3
    from rasterio.enums import Resampling
    scale = max(1.0, max(src.width, src.height) / OVERVIEW_SIDE)
    shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
    ranges = {}
    for band in dict.fromkeys(bands):
        data = src.read(band, out_shape=shape, masked=True, resampling=Resampling.nearest)
        values = data.compressed().astype(np.float64)
        values = values[np.isfinite(values)]
        lo, hi = (np.percentile(values, STRETCH_PERCENTILES) if values.size else (0.0, 1.0))
        lo, hi = float(lo), float(hi)
        if hi <= lo:  # a constant band: a range of one step, inside the type even at its top
            step = max(1.0, abs(lo) * 1e-6)
            lo, hi = (lo, lo + step) if lo + step <= dtype_range(src.dtypes[0])[1] else (lo - step, lo)
        ranges[band] = [lo, hi]
    return [ranges[b] for b in bands]


def to_u8(values, lo, hi):
    scaled = np.nan_to_num((values.astype(np.float32) - lo) / (hi - lo))  # NaN pixels are masked anyway
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def from_u8(levels, lo, hi, dtype):
    values = lo + levels.astype(np.float64) / 255.0 * (hi - lo)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def read_tile(src, bands, stretch, window):
    """(8-bit RGB (H, W, 3) with nodata filled by the tile mean, validity mask (H, W))."""
    from rasterio.windows import Window
    unique = list(dict.fromkeys(bands))
    win = Window(*window)
    data = src.read(unique, window=win)
    masks = src.read_masks(unique, window=win)
    valid = (masks > 0).any(axis=0)
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data).all(axis=0)
    rgb = np.stack([to_u8(data[unique.index(b)], lo, hi) for b, (lo, hi) in zip(bands, stretch)], axis=-1)
    if valid.any() and not valid.all():
        rgb[~valid] = np.rint(rgb[valid].mean(axis=0)).astype(np.uint8)
    return rgb, valid


def georef(src, output_bands):
    """The georeferencing record a .magc file keeps of a source raster."""
    return {"crs_wkt": src.crs.to_wkt(version="WKT2_2019") if src.crs else None,
            "transform": [float(v) for v in tuple(src.transform)[:6]],
            "nodata": [src.nodatavals[b - 1] for b in output_bands]}


# -- output GeoTIFF --------------------------------------------------------------------------------
def bounded_gdal_cache(width, bands, itemsize, rows):
    """A rasterio.Env whose GDAL block cache holds about two rows of tiles.

    Reading or writing row by row never needs more, while GDAL's default (5% of the RAM)
    lets the resident memory grow with the raster's area until that limit.
    """
    import rasterio
    return rasterio.Env(GDAL_CACHEMAX=max(32 << 20, 2 * rows * width * bands * itemsize))


def check_output(path):
    """The output path, refused early when it cannot be a file."""
    path = Path(path)
    if path.is_dir():
        raise MAGCError(f"The output {path} is a folder: give a file name.")
    if not path.parent.is_dir():
        raise MAGCError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    return path


class GeoTIFFWriter:
    """An output GeoTIFF written window by window into a temporary file, renamed on commit()."""

    def __init__(self, path, profile):
        self.path, self.profile = Path(path), profile
        self.tmp = None
        self.dataset = None
        self.env = None

    def __enter__(self):
        import rasterio
        from rasterio.errors import RasterioError
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".part.tif", dir=self.path.parent)
        except OSError as exc:
            raise MAGCError(f"Cannot write {self.path}: {exc}. Choose a writable folder.") from exc
        self.tmp = Path(tmp)
        try:
            give_ordinary_permissions(fd)
            os.close(fd)
            env = rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True)  # a mask inside the file, not a .msk beside it
            env.__enter__()
            self.env = env
            self.dataset = rasterio.open(self.tmp, "w", **self.profile)
        except BaseException as exc:  # `with` calls __exit__ only once __enter__ has returned
            self.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, (RasterioError, ValueError, OverflowError)):  # a profile GDAL refuses
                raise MAGCError(f"Cannot create the GeoTIFF {self.path}: {exc}") from exc
            if isinstance(exc, OSError):
                raise MAGCError(f"Cannot write {self.path}: {exc}. Choose a writable folder.") from exc
            raise
        return self

    def write(self, data, window, mask=None):
        try:
            self.dataset.write(data, window=window)
            if mask is not None:
                self.dataset.write_mask(mask, window=window)
        except OSError as exc:
            raise MAGCError(f"Writing {self.path} failed: {exc}. Free some disk space or choose another "
                            "folder; nothing was written.") from exc

    def commit(self):
        try:
            self.dataset.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            raise MAGCError(f"Writing {self.path} failed: {exc}; nothing was written.") from exc
        self.tmp = None

    def _remove(self):
        if self.dataset is not None and not self.dataset.closed:
            try:
                self.dataset.close()
            except Exception:  # noqa: BLE001 (closing a half-written file may fail too; it is deleted anyway)
                pass
        if self.tmp is not None:
            for extra in ("", ".aux.xml", ".msk"):
                try:
                    Path(str(self.tmp) + extra).unlink()
                except OSError:
                    pass

    def __exit__(self, *exc):
        self._remove()
        if self.env is not None:
            self.env.__exit__(*exc)
        return False


def output_profile(head, geo, transform, x0, y0, width, height):
    """The GeoTIFF profile of a decoded window (x0, y0, width, height) of a .magc file."""
    from rasterio.crs import CRS
    given = [v for v in geo["nodata"] if v is not None]
    profile = {"driver": "GTiff", "width": width, "height": height, "count": len(head["output_bands"]),
               "dtype": head["dtype"], "crs": CRS.from_wkt(geo["crs_wkt"]) if geo["crs_wkt"] else None,
               "transform": tile_transform(transform, x0, y0), "nodata": given[0] if given else None,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    if head["dtype"] == "uint8" and len(head["output_bands"]) == 3:
        profile["photometric"] = "RGB"
    return profile
