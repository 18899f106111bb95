"""The decode's tile functions and the layout of each tile's window.

``decode_tile`` entropy-decodes one tile (and decodes its layout, where the layout is residual);
``decode_window`` decodes one window (a tile and a margin of its neighbours) from what decode_tile gave for the
tiles under it, through the codec's own ``MAGCModel.decode_window``, with noise drawn by global position so that
overlapping windows agree. Both are pure functions of plain data, so a runner may call them anywhere.
"""
from dataclasses import dataclass

import numpy as np

from ..codec.errors import MAGCError
from ..codec.tile_colour import split_payload
from .blend import ramp
from .grid import DOWNSCALE, Y_DOWNSCALE
from .noise import PositionalNoise


class DamagedTile(MAGCError):
    """A tile whose bytes cannot be read or decoded; decompress_raster(skip_damaged=True) writes it as nodata."""

    def __init__(self, where, reason):
        super().__init__(where, reason)  # both in args: it pickles, from a Dask worker
        self.where, self.reason = where, reason

    def __str__(self):
        return (f"Tile {self.where} of the .magc file: {self.reason} Or decompress with --skip-damaged (in QGIS: "
                "the 'Skip damaged tiles' option) to write nodata where tiles are damaged.")


@dataclass
class WindowJob:
    """One tile's decode window (the tile and a margin of its neighbours), as the driver laid it out."""
    x0: int                  # the window in raster pixels: columns [x0, x1), rows [y0, y1)
    y0: int
    x1: int
    y1: int
    classes: np.ndarray      # (y1 - y0, x1 - x0) uint8 guidance of the window
    pieces: list             # per tile handed to decode_window: (window slices, tile slices) in pixels of y
    feathered: tuple         # (left, right, up, down): the sides shared with a neighbour that has data
    margin: int
    steps: int
    seed: int
    noise_block: int         # latent pixels per block of positional noise (one tile)
    colour: np.ndarray       # the tile's mean colour (3 levels) from its payload
    core: tuple              # (rows, columns) slices of the tile in the window: where that mean applies


def decode_tile(model, payload, classes, where):
    """One tile's entropy-decoded y_hat, a (M, h/32, w/32) float32 array, and its layout, a (3, h/8, w/8) one where
    the model's layout is residual (MAGCModel.tile_layout), else None. classes: its class raster as coded (padded);
    `where` names the tile in errors."""
    try:
        y_hat = model.decode_y(payload, classes.shape)
    except MAGCError as exc:
        raise DamagedTile(where, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 (a payload that passed its CRC but still cannot be decoded)
        raise DamagedTile(where, f"its stream cannot be decoded ({exc}): the file is damaged or was written by an "
                          "incompatible model.") from exc
    return y_hat[0].numpy(), model.tile_layout(y_hat, classes, split_payload(payload)[0])


def checked_tile(model, payload, classes, where):
    """(decode_tile's result, None) for one tile, or (None, why its stream cannot be entropy-decoded): skip_damaged's
    check before any window reads the tile, whose result the windows then use rather than decoding it again."""
    try:
        return decode_tile(model, payload, classes, where), None
    except DamagedTile as exc:
        return None, exc.reason


def decode_window(model, job, tiles, callback=None):
    """Decode one window from its pieces' tiles, as decode_tile gives them: (8-bit image, blend weights, x0, y0).

    The pieces' y_hat are laid side by side and decoded together, so stage 1 sees across tile edges as the encoder
    did; their residual layouts, each coded blind to its neighbours, are laid side by side as decoded.
    callback(step, total) is called after each diffusion step and may raise to cancel.
    """
    import torch
    height, width = job.y1 - job.y0, job.x1 - job.x0
    y = torch.zeros((1, tiles[0][0].shape[0], height // Y_DOWNSCALE, width // Y_DOWNSCALE))
    layout = None if tiles[0][1] is None else \
        torch.zeros((1, tiles[0][1].shape[0], height // DOWNSCALE, width // DOWNSCALE))
    finer = Y_DOWNSCALE // DOWNSCALE
    for (window_part, tile_part), (tile_y, tile_layout) in zip(job.pieces, tiles):
        y[(0, slice(None)) + window_part] = torch.from_numpy(tile_y[(slice(None),) + tile_part])
        if layout is not None:
            layout[(0, slice(None)) + _scaled(window_part, finer)] = \
                torch.from_numpy(tile_layout[(slice(None),) + _scaled(tile_part, finer)])
    noise = PositionalNoise(job.seed, job.x0 // DOWNSCALE, job.y0 // DOWNSCALE, job.noise_block)
    image = model.decode_window(y, job.classes, job.colour, job.steps, noise, job.core, callback, layout)
    left, right, up, down = job.feathered
    weight = np.outer(ramp(job.y1 - job.y0, up, down, job.margin), ramp(job.x1 - job.x0, left, right, job.margin))
    return image, weight, job.x0, job.y0


def _scaled(part, factor):
    """Row and column slices on y's grid as slices on a grid `factor` times finer."""
    return tuple(slice(s.start * factor, s.stop * factor) for s in part)


class Windows:
    """Lays out each tile's window and submits the entropy decoding of the tiles that windows read, once per tile.

    tiles: {(col, row): records.Tile} of the rows read so far (it must hold the rows around a window's).
    """

    def __init__(self, runner, grid, tiles, margin, steps, seed):
        self.runner, self.grid, self.tiles = runner, grid, tiles
        self.margin, self.steps, self.seed = margin, steps, seed
        # (col, row) -> the runner's handle on decode_tile's result, for the rows windows still read
        self.decoded_tiles = {}

    def classes(self, col, row):
        return self.tiles[(col, row)].class_raster(self.grid.padded(col, row))

    def has_data(self, col, row):
        return (col, row) in self.tiles and self.tiles[(col, row)].has_data

    def decoded(self, col, row):
        if (col, row) not in self.decoded_tiles:
            tile, where = self.tiles[(col, row)], f"({col},{row})"
            # a tile already decoded by skip_damaged's check stands in for a runner's handle (decode_window's args)
            self.decoded_tiles[(col, row)] = tile.decoded if tile.decoded is not None else \
                self.runner.submit(decode_tile, tile.record.payload, self.classes(col, row), where)
        return self.decoded_tiles[(col, row)]

    def task(self, col, row):
        """(WindowJob, handles on its tiles' decode_tile results) of the window of tile (col, row); windows come row by row."""
        for key in [k for k in self.decoded_tiles if k[1] < row - 1]:  # rows that no later window reads
            del self.decoded_tiles[key]
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
        pieces, decoded = [], []
        # The window's own tile first: decode_window takes the channel counts from it.
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
                decoded.append(self.decoded(c, r))
        core = (slice(y0 - wy0, y0 - wy0 + ph), slice(x0 - wx0, x0 - wx0 + pw))
        job = WindowJob(wx0, wy0, wx1, wy1, classes, pieces, feathered, m, self.steps, self.seed,
                        grid.tile // DOWNSCALE, self.tiles[(col, row)].colour, core)
        return job, decoded
