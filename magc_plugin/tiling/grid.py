"""The tile grid of a raster and the windows laid out on it (pixels, latent and y units)."""
import numpy as np

from ..codec.classes import NOT_MAPPED, check_class_raster
from ..container import tile_grid
from ..raster_io import tile_transform

TILE_MULTIPLE = 64
DEFAULT_TILE_SIZE = 512
ENCODE_CONTEXT = 64        # pixels of the neighbour tiles the encoder sees on each side of a tile
BLEND_MARGIN = 64          # pixels of neighbour context on each side of a tile window at decode
DOWNSCALE = 8              # image pixels per latent pixel
Y_DOWNSCALE = 32           # image pixels per pixel of y, what the tiles' bits code


def ceil_to(value, multiple):
    return -(-value // multiple) * multiple


def pad_reflect(arr, height, width):
    """Reflect-pad the first two axes of `arr` to (height, width)."""
    pad = [(0, height - arr.shape[0]), (0, width - arr.shape[1])] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, pad, mode="reflect") if any(p[1] for p in pad) else arr


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
        return ceil_to(w, TILE_MULTIPLE), ceil_to(h, TILE_MULTIPLE)

    def tiles(self):
        return [(c, r) for r in range(self.rows) for c in range(self.cols)]


def context_window(grid, col, row, context):
    """(x0, y0, x1, y1): the tile as coded plus `context` pixels on each side that has a neighbour tile."""
    x0, y0, _, _ = grid.window(col, row)
    pw, ph = grid.padded(col, row)
    return (x0 - (context if col > 0 else 0), y0 - (context if row > 0 else 0),
            x0 + pw + (context if col < grid.cols - 1 else 0), y0 + ph + (context if row < grid.rows - 1 else 0))


def dilate(tiles, grid, by):
    """The tiles within `by` tiles (8-connected) of `tiles`, inside the grid."""
    return {(c + dc, r + dr) for c, r in tiles for dc in range(-by, by + 1) for dr in range(-by, by + 1)
            if 0 <= c + dc < grid.cols and 0 <= r + dr < grid.rows}


def guidance_for(guidance, transform, crs, x0, y0, width, height):
    """The checked class raster of one window: from the guidance callable, or NOT_MAPPED everywhere."""
    if guidance is None:
        return np.full((height, width), NOT_MAPPED, np.uint8)
    return check_class_raster(guidance(tile_transform(transform, x0, y0), width, height, crs), (height, width))
