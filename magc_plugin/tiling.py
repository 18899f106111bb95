"""Whole rasters through the tile codec: compress to a .magc file, decompress to a GeoTIFF.

Rasters are read and written window by window with rasterio; no whole raster is
ever in memory, so the peak memory depends on the tile size and the raster width,
not on the raster's area.

Encoding: the raster is cut into non-overlapping tiles of ``tile_size`` pixels (edge
tiles are reflect-padded to a multiple of 64 and cropped at decode). Pixels are mapped
to 8-bit RGB through a per-band stretch stored in the file, nodata pixels are filled
with the window's mean (the mask is stored, cheaply), and each tile is coded with the
guidance class raster of the same window. The encoder sees ``context`` pixels of the
neighbour tiles around each tile but codes only the tile's part of y: without them the
encoder pads at every tile edge, and the decoded latents of two neighbours disagree
along their common edge, which blending cannot hide (measured in
``magc_plugin.benchmarks.seams``). The decoder mirrors it: stage 1 synthesises each
window from the y_hat of all the tiles under it.

Decoding without seams::

      tiles' y_hat (entropy-decoded per tile)  windows (tile + margin of neighbours)
      +-----+-----+-----+                      +---------+  stage 1 (g_s) on the window's y_hat, then
      | y00 | y01 | y02 |    per window ->     |  . y11 .|  diffusion with noise drawn from the seed
      +-----+-----+-----+                      |  .     .|  and the *global* latent position, so two
      | y10 | y11 | y12 |                      +---------+  windows agree where they overlap
      +-----+-----+-----+
                                 each window is re-centred on its tile's mean colour
                                 (from the payload), then pixels of overlapping windows
                                 are feather-blended (linear ramps over the 2 x margin
                                 overlap band)

No extra bits are spent for the windows: their context comes from the neighbours' y_hat.
Rows of windows are processed top to bottom, keeping only one strip of blended
pixels and the y_hat of three rows of tiles. A region decode samples the windows
that touch the region, so it gives the same pixels as a full decode.

The unit of work is a pure function of plain data: ``encode_tile`` (tile in, record
out), ``decode_tile_y`` (record in, y_hat out) and ``decode_window`` (y_hat of a
window's tiles in, pixels out). This module reads, orders and writes; a *runner* calls the
functions: :class:`LocalRunner` here, when asked (the default), or
``magc_plugin.distributed``'s Dask runner on a cluster, many at a time. Both give the
same .magc bytes, and the same pixels up to PyTorch's CPU float noise (see docs/ARCHITECTURE.md).
"""
import hashlib
import math
import os
import struct
import tempfile
import time
import warnings
import zlib
from collections import deque
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .codec.classes import NOT_MAPPED, NUM_CLASSES, check_class_raster
from .codec.errors import MAGCError
from .codec.tile_colour import recentre, split_payload
from .container import (MASK_ALL_NODATA, MASK_ALL_VALID, MAGCReader, MAGCWriter, TileRecord, fingerprint, tile_grid,
                        version_text)

TILE_MULTIPLE = 64
DEFAULT_TILE_SIZE = 512
ENCODE_CONTEXT = 64        # pixels of the neighbour tiles the encoder sees on each side of a tile
BLEND_MARGIN = 64          # pixels of neighbour context on each side of a tile window at decode
OVERVIEW_SIDE = 1024       # the stretch's percentiles come from a decimated read of at most this side
STRETCH_PERCENTILES = (2.0, 98.0)
DOWNSCALE = 8              # image pixels per latent pixel
Y_DOWNSCALE = 32           # image pixels per pixel of y, what the tiles' bits code
WRITE_ROWS = 256           # decoded rows are mapped back and written this many at a time


class CancelledByUser(MAGCError):
    """The cancel callback asked to stop; nothing was written."""


class GuidanceMismatchWarning(UserWarning):
    """The decoder's guidance differs from the encoder's on some tiles."""


class DamagedTile(MAGCError):
    """A tile whose bytes cannot be read or decoded; decompress_raster(skip_damaged=True) writes it as nodata."""

    def __init__(self, where, reason):
        super().__init__(where, reason)  # both in args: it pickles, from a Dask worker
        self.where, self.reason = where, reason

    def __str__(self):
        return (f"Tile {self.where} of the .magc file: {self.reason} Or decompress with --skip-damaged (in QGIS: "
                "the 'Skip damaged tiles' option) to write nodata where tiles are damaged.")


# -- small helpers --------------------------------------------------------------------------------
def _ceil_to(value, multiple):
    return -(-value // multiple) * multiple


def _pad_reflect(arr, height, width):
    """Reflect-pad the first two axes of `arr` to (height, width)."""
    pad = [(0, height - arr.shape[0]), (0, width - arr.shape[1])] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, pad, mode="reflect") if any(p[1] for p in pad) else arr


def check_cancel(cancel):
    if cancel is not None and cancel():
        raise CancelledByUser("Canceled: nothing was written.")


def _progress(progress, fraction, message):
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), message)


def _affine(values):
    from affine import Affine
    return Affine(*values[:6])


def crs_of(georef):
    """The rasterio CRS of a file's georeferencing record, or None."""
    from rasterio.crs import CRS
    return CRS.from_wkt(georef["crs_wkt"]) if georef.get("crs_wkt") else None


class Grid:
    """The tile grid of a raster: tile windows, their padded sizes, their numbers."""

    def __init__(self, width, height, tile_size):
        self.width, self.height, self.tile = width, height, tile_size
        self.cols, self.rows = tile_grid(width, height, tile_size)

    def __len__(self):
        return self.cols * self.rows

    def number(self, col, row):
        return row * self.cols + col

    def window(self, col, row):
        """(x0, y0, width, height) of the tile in raster pixels."""
        x0, y0 = col * self.tile, row * self.tile
        return x0, y0, min(self.tile, self.width - x0), min(self.tile, self.height - y0)

    def padded(self, col, row):
        """(width, height) of the tile as coded: a multiple of 64."""
        _, _, w, h = self.window(col, row)
        return _ceil_to(w, TILE_MULTIPLE), _ceil_to(h, TILE_MULTIPLE)

    def tiles(self):
        return [(c, r) for r in range(self.rows) for c in range(self.cols)]


def tile_transform(transform, x0, y0):
    """The geotransform of a window starting at pixel (x0, y0); rotation terms are kept."""
    from affine import Affine
    return transform * Affine.translation(x0, y0)


def guidance_for(guidance, transform, crs, x0, y0, width, height):
    """The checked class raster of one window: from the guidance callable, or NOT_MAPPED everywhere."""
    if guidance is None:
        return np.full((height, width), NOT_MAPPED, np.uint8)
    return check_class_raster(guidance(tile_transform(transform, x0, y0), width, height, crs), (height, width))


# -- source rasters --------------------------------------------------------------------------------
def open_raster(path):
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
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


def compute_stretch(src, bands):
    """Per coded band (lo, hi) mapping source values to 0..255.

    8-bit sources keep their values (0, 255); others use the 2%-98% percentiles of the
    valid pixels of a decimated read (at most OVERVIEW_SIDE pixels a side).
    """
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
            lo, hi = (lo, lo + step) if lo + step <= _type_max(src.dtypes[0]) else (lo - step, lo)
        ranges[band] = [lo, hi]
    return [ranges[b] for b in bands]


def _type_max(dtype):
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else np.finfo(dtype).max)


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


def _georef(src, output_bands):
    return {"crs_wkt": src.crs.to_wkt(version="WKT2_2019") if src.crs else None,
            "transform": [float(v) for v in tuple(src.transform)[:6]],
            "nodata": [src.nodatavals[b - 1] for b in output_bands]}


def load_model(model, rate=None, device="auto"):
    """A MAGCModel from a loaded model, a model folder or a shipped preset name."""
    from .codec.model import MAGCModel
    if isinstance(model, MAGCModel):
        return model
    return MAGCModel.from_pretrained(model or "default", rate=rate, device=device)


# -- runners: who calls the tile functions -----------------------------------------------------------
class LocalRunner:
    """Calls the tile functions in this process, at once, when they are submitted (the single-machine path).

    A runner's protocol: ``identity()`` of its model; ``submit(fn, *args)`` -> a handle on
    ``fn(model, *args)`` (handles may be passed as, or inside a list as, later arguments);
    ``result(handle, cancel)``; ``cancel(handles)``; ``lookahead``, how many tasks the
    driver may submit before it waits for the oldest; ``runs_here``, whether callbacks
    (progress per diffusion step, cancel) can be handed to the functions.
    """
    lookahead = 0
    runs_here = True

    def __init__(self, model):
        self.model = model

    def identity(self):
        return self.model.identity()

    def submit(self, fn, *args):
        return fn(self.model, *args)

    def result(self, value, cancel=None):
        return value

    def cancel(self, handles):
        pass


def _runner(engine, model, rate, device):
    """The runner of `engine` (None: this process) for a model at a rate on a device."""
    if engine is None:
        return LocalRunner(load_model(model, rate, device))
    return engine.runner(model, rate, device)


def _in_order(runner, fn, tasks, cancel=None):
    """fn(model, *args) for each args of `tasks`, yielded in order, with up to runner.lookahead submitted ahead.

    Use it in ``closing()``: stopping early (an error, a cancel) cancels what is still pending.
    """
    pending = deque()
    try:
        for args in tasks:
            pending.append(runner.submit(fn, *args))
            if len(pending) > runner.lookahead:
                yield runner.result(pending.popleft(), cancel)
        while pending:
            yield runner.result(pending.popleft(), cancel)
    finally:
        runner.cancel(pending)


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


# -- compress ------------------------------------------------------------------------------------
@dataclass
class EncodeJob:
    """One tile to encode with its context (neighbour pixels the encoder sees but does not code)."""
    number: int
    rgb: np.ndarray          # (H, W, 3) uint8 of the context window (reflect-padded beyond the raster),
    #                          nodata pixels filled with the window's mean
    classes: np.ndarray      # (H, W) uint8 guidance class raster of the context window, padded alike
    core: tuple              # (x, y, width, height) of the tile as coded (multiples of 64) in the window
    valid: np.ndarray        # (h, w) bool, the tile's own pixels
    embed_guidance: bool


def encode_tile(model, job):
    """(TileRecord, guidance fingerprint) of one tile: the same job gives the same bytes wherever it runs."""
    x, y = job.core[:2]
    h, w = job.valid.shape
    classes = job.classes[y:y + h, x:x + w]
    payload = b""
    if job.valid.any():
        payload = model.compress_tile(job.rgb, job.classes, job.core)
    record = TileRecord.build(job.number, job.valid, classes if job.embed_guidance else None, payload)
    return record, fingerprint(classes)


def context_window(grid, col, row, context):
    """(x0, y0, x1, y1): the tile as coded plus `context` pixels on each side that has a neighbour tile."""
    x0, y0, _, _ = grid.window(col, row)
    pw, ph = grid.padded(col, row)
    return (x0 - (context if col > 0 else 0), y0 - (context if row > 0 else 0),
            x0 + pw + (context if col < grid.cols - 1 else 0), y0 + ph + (context if row < grid.rows - 1 else 0))


def compress_raster(src_path, dst_path, guidance, model, *, bands=None, tile_size=DEFAULT_TILE_SIZE,
                    embed_guidance=False, rate=None, device="auto", engine=None, context=ENCODE_CONTEXT,
                    progress=None, cancel=None):
    """Compress a raster to a .magc file, tile by tile.

    guidance: callable(transform, width, height, crs) -> uint8 class raster (height, width),
    or None (no map); it is called here, never on a cluster. context: pixels of the neighbour tiles
    the encoder sees around each tile (a multiple of 64, at most the tile size; 0 codes tiles
    blind to each other, with visible seams at decode). model: a MAGCModel, a model
    folder or a preset name. engine: where the tiles are coded (a
    ``magc_plugin.distributed.DaskEngine``), None for this process.
    Returns {"bytes", "bpp", "pixels", "tiles", "seconds", "guidance_bytes", "nodata_tiles", "path"}.
    """
    start = time.time()
    tile_size = int(tile_size)
    if tile_size < TILE_MULTIPLE or tile_size % TILE_MULTIPLE:
        raise MAGCError(f"The tile size must be a positive multiple of {TILE_MULTIPLE} pixels, not {tile_size}.")
    context = int(context)
    if context < 0 or context % TILE_MULTIPLE or context > tile_size:
        raise MAGCError(f"The encoder context must be a multiple of {TILE_MULTIPLE} pixels between 0 and the tile "
                        f"size ({tile_size}), not {context}.")
    dst_path = check_output(dst_path)
    _progress(progress, 0.0, "Loading the model")
    runner = _runner(engine, model, rate, device)
    with open_raster(src_path) as src, bounded_gdal_cache(src.width, src.count, np.dtype(src.dtypes[0]).itemsize,
                                                          tile_size + 2 * context + src.block_shapes[0][0]):
        bands = choose_bands(src, bands)
        output_bands = list(dict.fromkeys(bands))
        _progress(progress, 0.0, "Computing the band stretch")
        stretch = compute_stretch(src, bands)
        grid = Grid(src.width, src.height, tile_size)
        head = {"width": src.width, "height": src.height, "bands": bands, "output_bands": output_bands,
                "dtype": src.dtypes[0], "stretch": stretch, "tile_size": tile_size,
                "tiles": [grid.cols, grid.rows], "embedded_guidance": bool(embed_guidance)}
        writer = MAGCWriter(dst_path, head, _georef(src, output_bands), runner.identity())
        # Encoder and decoder hand the guidance the same CRS and transforms: both rebuilt from the file's record.
        crs, transform = crs_of(writer.georef), _affine(writer.georef["transform"])
        guidance_bytes = nodata_tiles = 0

        def jobs():
            for n, (col, row) in enumerate(grid.tiles()):
                check_cancel(cancel)
                x0, y0, w, h = grid.window(col, row)
                cx0, cy0, cx1, cy1 = context_window(grid, col, row, context)
                cw, ch = min(cx1, src.width) - cx0, min(cy1, src.height) - cy0  # the part inside the raster
                rgb, valid = read_tile(src, bands, stretch, (cx0, cy0, cw, ch))
                classes = guidance_for(guidance, transform, crs, cx0, cy0, cw, ch)
                core = (x0 - cx0, y0 - cy0, *grid.padded(col, row))
                tile_valid = valid[core[1]:core[1] + h, core[0]:core[0] + w]
                window = (cy1 - cy0, cx1 - cx0)
                yield (EncodeJob(n, _pad_reflect(rgb, *window), _pad_reflect(classes, *window), core, tile_valid,
                                 bool(embed_guidance)),)

        with writer, \
                closing(_in_order(runner, encode_tile, jobs(), cancel)) as records:
            for n, (record, tile_fingerprint) in enumerate(records):
                nodata_tiles += record.mask_kind == MASK_ALL_NODATA
                guidance_bytes += len(record.guidance_bytes)
                writer.add_tile(record, tile_fingerprint)
                _progress(progress, (n + 1) / len(grid), f"Compressed tile {n + 1} of {len(grid)}")
            check_cancel(cancel)
            size = writer.commit()
    pixels = head["width"] * head["height"]
    _progress(progress, 1.0, "Done")
    return {"bytes": size, "bpp": 8.0 * size / pixels, "pixels": pixels, "tiles": len(grid),
            "seconds": time.time() - start, "guidance_bytes": guidance_bytes, "nodata_tiles": nodata_tiles,
            "path": str(dst_path)}


# -- decompress ----------------------------------------------------------------------------------
class PositionalNoise:
    """Sampler noise source whose values depend on the seed and the *global* latent position.

    The latent plane is cut into blocks (one per tile); each block's noise for draw k
    comes from its own generator seeded with (seed, k, block column, block row), so any
    window sees the same noise as its overlapping neighbours.
    """

    def __init__(self, seed, x0, y0, block):
        self.seed, self.x0, self.y0, self.block = int(seed), x0, y0, block

    def _block(self, k, bx, by, channels):
        import torch
        key = hashlib.blake2b(struct.pack(">qqqq", self.seed, k, bx, by), digest_size=8).digest()
        generator = torch.Generator("cpu").manual_seed(int.from_bytes(key, "big") & (2**63 - 1))
        return torch.randn((channels, self.block, self.block), generator=generator)

    def __call__(self, k, shape):
        import torch
        _, channels, h, w = shape
        out = torch.empty(tuple(shape))
        b = self.block
        for by in range(self.y0 // b, (self.y0 + h - 1) // b + 1):
            for bx in range(self.x0 // b, (self.x0 + w - 1) // b + 1):
                ya, yb = max(self.y0, by * b), min(self.y0 + h, (by + 1) * b)
                xa, xb = max(self.x0, bx * b), min(self.x0 + w, (bx + 1) * b)
                out[0, :, ya - self.y0:yb - self.y0, xa - self.x0:xb - self.x0] = \
                    self._block(k, bx, by, channels)[:, ya - by * b:yb - by * b, xa - bx * b:xb - bx * b]
        return out


def ramp(length, before, after, margin):
    """Feathering weights along one axis: linear over 2*margin at sides that overlap a neighbour."""
    pos = np.arange(length, dtype=np.float32) + 0.5
    weight = np.ones(length, np.float32)
    if margin and before:
        weight = np.minimum(weight, pos / (2 * margin))
    if margin and after:
        weight = np.minimum(weight, (length - pos) / (2 * margin))
    return weight


class Strip:
    """Weighted sums of decoded pixels over output rows [y0, y1) and columns [x0, x1)."""

    def __init__(self, y0, y1, x0, x1):
        self.y0, self.y1, self.x0, self.x1 = y0, max(y0, y1), x0, x1
        self.sum = np.zeros((self.y1 - y0, x1 - x0, 3), np.float32)
        self.weight = np.zeros((self.y1 - y0, x1 - x0), np.float32)

    def add(self, image, weight, x, y):
        """Add an image (H, W, 3) with weights (H, W) whose top-left pixel is at (x, y)."""
        ya, yb = max(y, self.y0), min(y + image.shape[0], self.y1)
        xa, xb = max(x, self.x0), min(x + image.shape[1], self.x1)
        if ya >= yb or xa >= xb:
            return
        w = weight[ya - y:yb - y, xa - x:xb - x]
        here = (slice(ya - self.y0, yb - self.y0), slice(xa - self.x0, xb - self.x0))
        self.sum[here] += image[ya - y:yb - y, xa - x:xb - x] * w[..., None]
        self.weight[here] += w

    def merge(self, other):
        """Add the part of another strip that overlaps this one."""
        ya, yb = max(other.y0, self.y0), min(other.y1, self.y1)
        if ya < yb:
            self.sum[ya - self.y0:yb - self.y0] += other.sum[ya - other.y0:yb - other.y0]
            self.weight[ya - self.y0:yb - self.y0] += other.weight[ya - other.y0:yb - other.y0]

    def tail(self, y):
        """A copy of rows [y, y1) (what the next row of windows still adds to), so the rest can be freed."""
        rest = Strip(max(y, self.y0), self.y1, self.x0, self.x1)
        rest.merge(self)
        return rest

    def image(self, ya, yb):
        """The blended 8-bit pixels of rows [ya, yb)."""
        s, w = self.sum[ya - self.y0:yb - self.y0], self.weight[ya - self.y0:yb - self.y0]
        return np.rint(s / np.maximum(w, 1e-12)[..., None]).clip(0, 255).astype(np.uint8)


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


def raster_info(path):
    """Size, CRS (WKT or None), geotransform and bounds of a .magc file, read from its header."""
    with MAGCReader(path) as reader:
        head, geo = reader.head, reader.georef
    transform = _affine(geo["transform"])
    corners = [transform * (x, y) for x in (0, head["width"]) for y in (0, head["height"])]
    xs, ys = zip(*corners)
    return {"width": head["width"], "height": head["height"], "crs": geo["crs_wkt"], "crs_id": geo["crs_id"],
            "transform": geo["transform"], "bounds": (min(xs), min(ys), max(xs), max(ys))}


def _output_window(head, transform, extent):
    """(x0, y0, x1, y1) in pixels of the region to decode: the whole raster, or the pixels covering `extent`."""
    width, height = head["width"], head["height"]
    if extent is None:
        return 0, 0, width, height
    xmin, ymin, xmax, ymax = (float(v) for v in extent)
    if not xmin < xmax or not ymin < ymax:
        raise MAGCError(f"The extent {extent} is empty: give (xmin, ymin, xmax, ymax) with xmin < xmax and "
                        "ymin < ymax.")
    inverse = ~transform
    cols, rows = zip(*(inverse * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)))
    x0, x1 = max(0, math.floor(min(cols))), min(width, math.ceil(max(cols)))
    y0, y1 = max(0, math.floor(min(rows))), min(height, math.ceil(max(rows)))
    if x0 >= x1 or y0 >= y1:
        raise MAGCError(f"The extent {extent} does not overlap the raster: give an extent in the raster's CRS "
                        f"within its bounds.")
    return x0, y0, x1, y1


def _writer_hint(identity):
    """Where to look for the compressing model when another plugin version wrote the file: a retrained shipped
    preset reads other streams."""
    version = identity.get("versions", {}).get("magc")
    if not version or version == version_text(__version__):
        return ""
    return f" (the file was written by MAGC {version}: with its shipped model, that version's models/compact folder)"


def _check_model(given, identity, path):
    """Refuse a model (given: its identity) that cannot read the file's streams; warn when it reads them but draws
    with other weights (another denoiser or decoder) than the model that wrote the file. The file keeps the
    leading bytes of both checksums."""
    name = Path(path).name
    if not given["stream_sha256"].startswith(identity["stream_sha256"]):
        raise MAGCError(
            f"{name} was compressed at rate '{identity['rate']}' by a model whose stream checksum begins "
            f"{identity['stream_sha256']}, but the model given at rate '{given['rate']}' reads other streams "
            f"(checksum {given['stream_sha256'][:len(identity['stream_sha256'])]}): decompress with the model "
            f"folder and rate that compressed it{_writer_hint(identity)}.")
    if not given["weights_sha256"].startswith(identity["weights_sha256"]):
        warnings.warn(f"{name} was compressed with other weights (sha256 {identity['weights_sha256']}...) than "
                      f"these ({given['weights_sha256'][:len(identity['weights_sha256'])]}...) of the same stream "
                      "model: they read it alike, but this denoiser and decoder draw the image, so it differs in "
                      "detail from a decode with the compressing weights.", stacklevel=3)


def _read_record(reader, number, shape, embedded, where):
    """(record, its embedded class raster or None) of one tile, checked: DamagedTile where its bytes are bad."""
    try:
        record = reader.read_tile(number)
        record.valid_mask(shape)  # unpacked once here so that a damaged mask fails now
        if record.mask_kind != MASK_ALL_NODATA:
            split_payload(record.payload)
        classes = record.class_raster(shape) if embedded else None
    except MAGCError as exc:
        raise DamagedTile(where, str(exc)) from exc
    if classes is not None and classes.max(initial=0) >= NUM_CLASSES:
        raise DamagedTile(where, f"the file's embedded guidance map is damaged (class {int(classes.max())}, where "
                          f"classes are 0..{NUM_CLASSES - 1}): give the guidance layers used to compress instead.")
    return record, classes


def _nodata_record(number, shape):
    """What a damaged tile becomes with skip_damaged: no pixels, so no window reads it or blends into it."""
    return TileRecord.build(number, np.zeros(shape, bool))


def _gather_tiles(reader, grid, needed, guidance, transform, crs, cancel, skip_damaged=False):
    """Read and check the records of the needed tiles, and their guidance (the caller's, else the embedded map).

    Returns ({(col, row): (record, zlib of the padded class raster)}, tiles whose guidance fingerprint
    differs from the encoder's, {(col, row): why it is damaged} of the tiles replaced by nodata
    (skip_damaged; else the first damaged tile raises DamagedTile)). All of it is small, and read
    before any heavy work, so a damaged file or a strict guidance mismatch fails fast.
    """
    tiles, mismatch, damaged = {}, [], {}
    for c, r in sorted(needed, key=lambda t: (t[1], t[0])):
        check_cancel(cancel)
        n = grid.number(c, r)
        x0, y0, w, h = grid.window(c, r)
        try:
            record, classes = _read_record(reader, n, (h, w), guidance is None, f"({c},{r})")
        except DamagedTile as exc:
            if not skip_damaged:
                raise
            damaged[(c, r)] = exc.reason
            record, classes = _nodata_record(n, (h, w)), None
        if classes is None:
            classes = guidance_for(guidance, transform, crs, x0, y0, w, h)
        if (c, r) not in damaged and fingerprint(classes) != reader.index[n].fingerprint:
            mismatch.append((c, r))
        pw, ph = grid.padded(c, r)
        tiles[(c, r)] = (record, zlib.compress(_pad_reflect(classes, ph, pw).tobytes(), 1))
    return tiles, mismatch, damaged


def _skip_undecodable(runner, grid, tiles, damaged, cancel):
    """Replace by nodata the tiles whose streams cannot be decoded, before any window reads them (their
    neighbours then neither read their y_hat nor blend into them): one more entropy decoding a tile."""
    keys = [t for t in sorted(tiles, key=lambda t: (t[1], t[0])) if tiles[t][0].mask_kind != MASK_ALL_NODATA]
    tasks = ((tiles[t][0].payload, grid.padded(*t)[::-1], f"({t[0]},{t[1]})") for t in keys)
    with closing(_in_order(runner, stream_damage, tasks, cancel)) as reasons:
        for (c, r), reason in zip(keys, reasons):
            if reason is not None:
                _, _, w, h = grid.window(c, r)
                damaged[(c, r)] = reason
                tiles[(c, r)] = (_nodata_record(tiles[(c, r)][0].number, (h, w)), tiles[(c, r)][1])


def _damaged_list(damaged):
    """[(col, row, why)] of the damaged tiles, row by row."""
    return [(c, r, damaged[(c, r)]) for c, r in sorted(damaged, key=lambda t: (t[1], t[0]))]


def _guidance_differs(mismatch, total, strict):
    """Warn (or, strict, refuse) naming the tiles whose guidance differs from the encoder's."""
    names = ", ".join(f"({c},{r})" for c, r in sorted(mismatch, key=lambda t: (t[1], t[0]))[:20])
    more = f" and {len(mismatch) - 20} more" if len(mismatch) > 20 else ""
    message = (f"The guidance differs from the one used to compress on {len(mismatch)} of {total} tiles "
               f"(column, row): {names}{more}. Give the same vector layers as for compressing.")
    if strict:
        raise MAGCError(message + " (strict guidance: nothing decoded)")
    warnings.warn(message, GuidanceMismatchWarning, stacklevel=3)


def decompress_raster(src_path, dst_path, guidance=None, model="default", *, steps=20, seed=0, extent=None,
                      strict_guidance=False, skip_damaged=False, device="auto", blend_margin=BLEND_MARGIN, engine=None,
                      progress=None, cancel=None):
    """Decode a .magc file (or the tiles covering `extent`) into a GeoTIFF like the source raster.

    guidance: the same kind of callable as for compress_raster; None uses the map embedded in
    the file, if any. model: a MAGCModel, a model folder or a preset name (loaded at the file's
    rate). extent: (xmin, ymin, xmax, ymax) in the raster's CRS. blend_margin: pixels of
    neighbour context per side (a multiple of 64; 0 decodes tiles independently). engine:
    where the windows are decoded (as for compress_raster). skip_damaged: write the tiles whose
    bytes cannot be read or decoded as nodata (each with a warning; their neighbours do not blend
    into them) instead of refusing the file; still refused when its header is damaged or no tile
    of the output can be decoded. It checks every tile's stream first: one more entropy decoding.
    Returns {"pixels", "tiles", "seconds", "width", "height", "guidance_mismatch", "damaged_tiles"
    ([(col, row, why)]), "path"}.
    """
    start = time.time()
    dst_path = check_output(dst_path)
    steps = int(steps)
    if steps < 0:
        raise MAGCError(f"The number of diffusion steps must be 0 or more, not {steps}.")
    with MAGCReader(src_path) as reader:
        head, geo, identity = reader.head, reader.georef, reader.model
        grid = Grid(head["width"], head["height"], head["tile_size"])
        crs, transform = crs_of(geo), _affine(geo["transform"])
        ox0, oy0, ox1, oy1 = _output_window(head, transform, extent)
        out_tiles = {(c, r) for c in range(ox0 // grid.tile, (ox1 - 1) // grid.tile + 1)
                     for r in range(oy0 // grid.tile, (oy1 - 1) // grid.tile + 1)}
        margin = min(int(blend_margin), grid.tile // 2) // TILE_MULTIPLE * TILE_MULTIPLE
        # The windows that touch the output, and the tiles whose y_hat those windows read.
        windows = _dilate(out_tiles, grid, 1 if margin else 0)
        needed = _dilate(windows, grid, 1 if margin else 0)
        _progress(progress, 0.0, "Reading the tiles and the guidance")
        tiles, mismatch, damaged = _gather_tiles(reader, grid, needed, guidance, transform, crs, cancel, skip_damaged)
    if mismatch:
        _guidance_differs(mismatch, len(needed), strict_guidance)

    _progress(progress, 0.0, "Loading the model")
    runner = _runner(engine, model, identity.get("rate"), device)
    _check_model(runner.identity(), identity, src_path)
    if skip_damaged:
        _progress(progress, 0.0, "Checking the tiles' streams")
        _skip_undecodable(runner, grid, tiles, damaged, cancel)
        if damaged and all(tiles[t][0].mask_kind == MASK_ALL_NODATA for t in out_tiles):
            c, r, why = _damaged_list(damaged)[0]
            raise MAGCError(f"Every tile to decode is damaged or holds only nodata, so nothing can be decoded "
                            f"({len(damaged)} damaged, such as tile ({c},{r}): {why})")
    decoder = _Windows(runner, grid, tiles, margin, steps, seed)
    profile = _output_profile(head, geo, transform, ox0, oy0, ox1 - ox0, oy1 - oy0)
    # Without a nodata value, invalid pixels go to an internal mask, created for every strip or none.
    with_mask = profile["nodata"] is None and any(t[0].mask_kind != MASK_ALL_VALID for t in tiles.values())
    todo = sorted((t for t in windows if tiles[t][0].mask_kind != MASK_ALL_NODATA), key=lambda t: (t[1], t[0]))
    done = [0]

    def step_progress(i, total):  # called after each diffusion step, when the runner runs here
        check_cancel(cancel)
        _progress(progress, (done[0] + (i + 1) / total) / len(todo), f"Decoding tile {done[0] + 1} of {len(todo)}")

    callback = step_progress if runner.runs_here else None
    tasks = (decoder.task(col, row) + (callback,) for col, row in todo)
    with bounded_gdal_cache(ox1 - ox0, profile["count"], np.dtype(profile["dtype"]).itemsize,
                            grid.tile + 2 * margin), GeoTIFFWriter(dst_path, profile) as out, \
            closing(_in_order(runner, decode_window, tasks, cancel)) as decoded:
        window_rows = sorted({r for _, r in windows})
        previous = None
        for i, row in enumerate(window_rows):
            _, y0, _, h = grid.window(0, row)
            strip = Strip(max(oy0, y0 - margin), min(oy1, y0 + h + margin), ox0, ox1)
            for _ in (t for t in todo if t[1] == row):  # `decoded` yields in the order of `todo`
                check_cancel(cancel)
                strip.add(*next(decoded))
                done[0] += 1
                _progress(progress, done[0] / len(todo), f"Decoded tile {done[0]} of {len(todo)}")
            if previous is not None:
                strip.merge(previous)
            last = i == len(window_rows) - 1
            ready = strip.y1 if last else min(strip.y1, y0 + grid.tile - margin)
            for ya in range(strip.y0, ready, WRITE_ROWS):  # in slices: bounded temporaries
                _write_rows(out, strip, ya, min(ready, ya + WRITE_ROWS), head, grid, tiles, ox0, oy0, with_mask)
            previous = strip.tail(ready)
            del strip
        check_cancel(cancel)
        out.commit()
    damaged = _damaged_list(damaged)
    for c, r, why in damaged[:20]:
        warnings.warn(f"Skipped the damaged tile ({c},{r}): its pixels are nodata. {why}", stacklevel=2)
    if len(damaged) > 20:
        warnings.warn(f"... and {len(damaged) - 20} more damaged tiles, skipped alike.", stacklevel=2)
    _progress(progress, 1.0, "Done")
    return {"pixels": (ox1 - ox0) * (oy1 - oy0), "tiles": len(out_tiles), "seconds": time.time() - start,
            "width": ox1 - ox0, "height": oy1 - oy0, "window": (ox0, oy0, ox1, oy1),
            "guidance_mismatch": mismatch, "damaged_tiles": damaged, "path": str(dst_path)}


def _dilate(tiles, grid, by):
    return {(c + dc, r + dr) for c, r in tiles for dc in range(-by, by + 1) for dr in range(-by, by + 1)
            if 0 <= c + dc < grid.cols and 0 <= r + dr < grid.rows}


@dataclass
class WindowJob:
    """One tile's decode window (the tile and a margin of its neighbours), as the driver laid it out."""
    x0: int                  # the window in raster pixels: columns [x0, x1), rows [y0, y1)
    y0: int
    x1: int
    y1: int
    classes: np.ndarray      # (y1 - y0, x1 - x0) uint8 guidance of the window
    pieces: list             # per y_hat handed to decode_window: (window slices, tile slices) in pixels of y
    feathered: tuple         # (left, right, up, down): the sides shared with a neighbour that has data
    margin: int
    steps: int
    seed: int
    noise_block: int         # latent pixels per block of positional noise (one tile)
    colour: np.ndarray       # the tile's mean colour (3 levels) from its payload
    core: tuple              # (rows, columns) slices of the tile in the window: where that mean applies


def _in_tile(where, exc):
    return DamagedTile(where, str(exc))


def tile_colour(payload, where):
    """The mean colour at the head of one tile's payload; `where` names the tile in errors."""
    try:
        return split_payload(payload)[0]
    except MAGCError as exc:
        raise _in_tile(where, exc) from exc


def decode_tile_y(model, payload, tile_shape, where):
    """The entropy-decoded y_hat of one tile of (height, width) pixels, as a (M, h/32, w/32) float32
    array. `where` names the tile in errors."""
    try:
        return model.decode_y(payload, tile_shape)[0].numpy()
    except MAGCError as exc:
        raise _in_tile(where, exc) from exc
    except Exception as exc:  # noqa: BLE001 (a payload that passed its CRC but still cannot be decoded)
        raise DamagedTile(where, f"its stream cannot be decoded ({exc}): the file is damaged or was written by an "
                          "incompatible model.") from exc


def stream_damage(model, payload, tile_shape, where):
    """Why one tile's stream cannot be entropy-decoded, or None: skip_damaged's check before any window reads it."""
    try:
        decode_tile_y(model, payload, tile_shape, where)
    except DamagedTile as exc:
        return exc.reason
    return None


def decode_window(model, job, ys, callback=None):
    """Decode one window from the y_hat of its pieces: (8-bit image, blend weights, x0, y0).

    The pieces' y_hat are laid side by side and synthesised together, so stage 1 sees across
    tile edges as the encoder did. callback(step, total) is called after each diffusion step
    and may raise to cancel.
    """
    import torch
    y = torch.zeros((1, ys[0].shape[0], (job.y1 - job.y0) // Y_DOWNSCALE, (job.x1 - job.x0) // Y_DOWNSCALE))
    for (window_part, tile_part), tile_y in zip(job.pieces, ys):
        y[(0, slice(None)) + window_part] = torch.from_numpy(tile_y[(slice(None),) + tile_part])
    z = model.synthesise(y, job.classes)
    if job.steps > 0:
        noise = PositionalNoise(job.seed, job.x0 // DOWNSCALE, job.y0 // DOWNSCALE, job.noise_block)
        z = model.sample(z, job.classes, job.steps, noise=noise, callback=callback)
    image = recentre(model.latent_to_image(z), job.colour, job.core)
    left, right, up, down = job.feathered
    weight = np.outer(ramp(job.y1 - job.y0, up, down, job.margin), ramp(job.x1 - job.x0, left, right, job.margin))
    return image, weight, job.x0, job.y0


class _Windows:
    """Lays out each tile's window and submits the entropy decoding of the tiles that windows read, once per tile."""

    def __init__(self, runner, grid, tiles, margin, steps, seed):
        self.runner, self.grid, self.tiles = runner, grid, tiles
        self.margin, self.steps, self.seed = margin, steps, seed
        self.ys = {}  # (col, row) -> the runner's handle on the tile's y_hat, for the rows windows still read

    def classes(self, col, row):
        pw, ph = self.grid.padded(col, row)
        return np.frombuffer(zlib.decompress(self.tiles[(col, row)][1]), np.uint8).reshape(ph, pw)

    def has_data(self, col, row):
        return (col, row) in self.tiles and self.tiles[(col, row)][0].mask_kind != MASK_ALL_NODATA

    def y_hat(self, col, row):
        if (col, row) not in self.ys:
            pw, ph = self.grid.padded(col, row)
            self.ys[(col, row)] = self.runner.submit(decode_tile_y, self.tiles[(col, row)][0].payload, (ph, pw),
                                                     f"({col},{row})")
        return self.ys[(col, row)]

    def task(self, col, row):
        """(WindowJob, handles on its tiles' y_hat) of the window of tile (col, row); windows come row by row."""
        for key in [k for k in self.ys if k[1] < row - 1]:  # rows that no later window reads
            del self.ys[key]
        grid, m, d = self.grid, self.margin, Y_DOWNSCALE
        x0, y0, _, _ = grid.window(col, row)
        pw, ph = grid.padded(col, row)
        feathered = (self.has_data(col - 1, row), self.has_data(col + 1, row),
                     self.has_data(col, row - 1), self.has_data(col, row + 1))
        left, right, up, down = feathered
        wx0 = x0 - (m if left else 0)
        wy0 = y0 - (m if up else 0)
        wx1 = x0 + pw + (min(m, grid.padded(col + 1, row)[0]) if right else 0)
        wy1 = y0 + ph + (min(m, grid.padded(col, row + 1)[1]) if down else 0)
        classes = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
        pieces, ys = [], []
        # The window's own tile first: decode_window takes the channel count of y from it.
        for c, r in [(col, row)] + [(c, r) for r in range(row - 1, row + 2) for c in range(col - 1, col + 2)
                                    if (c, r) != (col, row)]:
            if (c, r) not in self.tiles:
                continue
            tx0, ty0, _, _ = grid.window(c, r)
            tpw, tph = grid.padded(c, r)
            xa, xb, ya, yb = max(wx0, tx0), min(wx1, tx0 + tpw), max(wy0, ty0), min(wy1, ty0 + tph)
            if xa >= xb or ya >= yb:
                continue
            classes[ya - wy0:yb - wy0, xa - wx0:xb - wx0] = self.classes(c, r)[ya - ty0:yb - ty0, xa - tx0:xb - tx0]
            if self.has_data(c, r):
                pieces.append(((slice((ya - wy0) // d, (yb - wy0) // d), slice((xa - wx0) // d, (xb - wx0) // d)),
                               (slice((ya - ty0) // d, (yb - ty0) // d), slice((xa - tx0) // d, (xb - tx0) // d))))
                ys.append(self.y_hat(c, r))
        core = (slice(y0 - wy0, y0 - wy0 + ph), slice(x0 - wx0, x0 - wx0 + pw))
        job = WindowJob(wx0, wy0, wx1, wy1, classes, pieces, feathered, m, self.steps, self.seed,
                        grid.tile // DOWNSCALE, tile_colour(self.tiles[(col, row)][0].payload, f"({col},{row})"), core)
        return job, ys


def _output_profile(head, geo, transform, x0, y0, width, height):
    from rasterio.crs import CRS
    given = [v for v in geo["nodata"] if v is not None]
    profile = {"driver": "GTiff", "width": width, "height": height, "count": len(head["output_bands"]),
               "dtype": head["dtype"], "crs": CRS.from_wkt(geo["crs_wkt"]) if geo["crs_wkt"] else None,
               "transform": tile_transform(transform, x0, y0), "nodata": given[0] if given else None,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    if head["dtype"] == "uint8" and len(head["output_bands"]) == 3:
        profile["photometric"] = "RGB"
    return profile


def _write_rows(out, strip, ya, yb, head, grid, tiles, ox0, oy0, with_mask):
    """Map strip rows [ya, yb) back to source values, restore nodata and write them."""
    from rasterio.windows import Window
    rgb = strip.image(ya, yb)
    valid = np.ones((yb - ya, strip.x1 - strip.x0), bool)
    for (c, r), (record, _) in tiles.items():
        x0, y0, w, h = grid.window(c, r)
        xa, xb, ra, rb = max(x0, strip.x0), min(x0 + w, strip.x1), max(y0, ya), min(y0 + h, yb)
        if xa < xb and ra < rb and record.mask_kind != MASK_ALL_VALID:
            valid[ra - ya:rb - ya, xa - strip.x0:xb - strip.x0] = \
                record.valid_mask((h, w))[ra - y0:rb - y0, xa - x0:xb - x0]
    dtype = head["dtype"]
    bands = head["bands"]
    out_values = []
    for band in head["output_bands"]:
        channels = [i for i, b in enumerate(bands) if b == band]
        levels = rgb[..., channels].astype(np.float32).mean(axis=-1)
        lo, hi = head["stretch"][channels[0]]
        out_values.append(from_u8(levels, lo, hi, dtype))
    data = np.stack(out_values)
    nodata = out.profile["nodata"]
    if nodata is not None:
        _keep_off_nodata(data, valid, nodata)
        data[:, ~valid] = nodata
    mask = np.where(valid, 255, 0).astype(np.uint8) if with_mask else None
    out.write(data, Window(strip.x0 - ox0, ya - oy0, strip.x1 - strip.x0, yb - ya), mask)


def _keep_off_nodata(data, valid, nodata):
    """A valid pixel that decodes to the nodata value on every band would vanish: nudge its first band."""
    if isinstance(nodata, float) and math.isnan(nodata):
        return
    clash = valid & (data == nodata).all(axis=0)
    if clash.any():
        if np.issubdtype(data.dtype, np.integer):
            nudged = nodata + 1 if nodata < np.iinfo(data.dtype).max else nodata - 1
        else:
            nudged = nodata + max(abs(nodata) * 1e-6, 1e-6)
        data[0][clash] = nudged
