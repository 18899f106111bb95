"""Whole rasters through the tile codec: compress to a .magc file, decompress to a GeoTIFF.

Rasters are read and written window by window (``magc_plugin.raster_io``); no whole raster is
ever in memory, so the peak memory depends on the tile size and the raster width, not on the
raster's area.

Encoding (compress.py): the raster is cut into non-overlapping tiles of ``tile_size`` pixels
(edge tiles are reflect-padded to a multiple of 64 and cropped at decode). Pixels are mapped
to 8-bit RGB through a per-band stretch stored in the file, nodata pixels are filled with the
window's mean (the mask is stored, cheaply), and each tile is coded with the guidance class
raster of the same window. The encoder sees ``context`` pixels of the neighbour tiles around
each tile but codes only the tile's part of y: without them the encoder pads at every tile
edge, and the decoded latents of two neighbours disagree along their common edge, which
blending cannot hide (measured in ``magc_plugin.benchmarks.seams``). The decoder mirrors it:
stage 1 synthesises each window from the y_hat of all the tiles under it.

Decoding without seams (decompress.py)::

      tiles' y_hat (entropy-decoded per tile)  windows (tile + margin of neighbours)
      +-----+-----+-----+                      +---------+  MAGCModel.decode_window: stage 1 (g_s) on
      | y00 | y01 | y02 |    per window ->     |  . y11 .|  the window's y_hat, then diffusion with noise
      +-----+-----+-----+                      |  .     .|  drawn from the seed and the *global* latent
      | y10 | y11 | y12 |                      +---------+  position (noise.py), so two windows agree
      +-----+-----+-----+                                   where they overlap
                                 each window is re-centred on its tile's mean colour
                                 (from the payload), then pixels of overlapping windows
                                 are feather-blended (blend.py: linear ramps over the
                                 2 x margin overlap band)

No extra bits are spent for the windows: their context comes from the neighbours' y_hat.
Rows of windows are processed top to bottom as their tiles are read, keeping only one strip
of blended pixels and three rows of tiles. A region decode samples the windows that touch
the region, so it gives the same pixels as a full decode.

The unit of work is a pure function of plain data: ``encode_tile`` (tile in, record out),
``decode_tile`` (record in, y_hat and layout out) and ``decode_window`` (those of a window's tiles in,
pixels out). The drivers read, order and write; a *runner* calls the functions:
:class:`LocalRunner` here, when asked (the default), or ``magc_plugin.distributed``'s Dask
runner on a cluster, many at a time. Both give the same .magc bytes, and the same pixels up
to PyTorch's CPU float noise (see docs/ARCHITECTURE.md).

This module is the package's public face: the names below are what the CLI, the QGIS tools
and the Dask engine use.
"""
from ..raster_io import GeoTIFFWriter, check_output, open_raster  # noqa: F401
from .compress import EncodeJob, compress_raster, encode_tile  # noqa: F401
from .decompress import decompress_raster, raster_info  # noqa: F401
from .grid import (BLEND_MARGIN, DEFAULT_TILE_SIZE, DOWNSCALE, ENCODE_CONTEXT, TILE_MULTIPLE,  # noqa: F401
                   Y_DOWNSCALE, guidance_for)
from .noise import PositionalNoise  # noqa: F401
from .records import GuidanceMismatchWarning  # noqa: F401
from .runners import CancelledByUser, LocalRunner, check_cancel, load_model  # noqa: F401
from .windows import DamagedTile, WindowJob, decode_tile, decode_window  # noqa: F401
