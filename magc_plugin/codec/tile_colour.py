"""Each tile's payload starts with the tile's mean colour, and the decoder re-centres its pixels on it.

At 0.01-0.1 bpp stage 1 misses a tile's mean colour by 10-15 levels of 255 (red and blue
roofs decode grey), and the error is already in the bits, so diffusion cannot undo it.
Three bytes a tile (0.0001 bpp on 512-pixel tiles) carry the mean exactly. Shifting a
tile's decoded pixels by one constant per channel leaves its texture as it is; in a
raster, each window is shifted by its own tile's correction and the feather blend of
the overlapping windows turns the neighbours' different shifts into gentle ramps.

    payload = 3 bytes: the tile's mean R, G, B levels (rounded) | the entropy-coded stream
"""
import struct

import numpy as np

from .errors import MAGCError

MEAN_COLOUR = struct.Struct("3B")
WHOLE = (slice(None), slice(None))


def mean_colour(image):
    """The payload's first bytes for an (H, W, 3) uint8 tile."""
    means = np.asarray(image, np.float64).reshape(-1, 3).mean(axis=0)
    return MEAN_COLOUR.pack(*np.rint(means).astype(int))


def split_payload(payload):
    """(mean colour as a float32 array of 3 levels, entropy-coded stream) of one tile's payload."""
    if len(payload) < MEAN_COLOUR.size:
        raise MAGCError("The tile payload is truncated.")
    return np.array(MEAN_COLOUR.unpack_from(payload), np.float32), bytes(payload[MEAN_COLOUR.size:])


def recentre(image, mean, region=WHOLE):
    """The (H, W, 3) uint8 image shifted so that its `region` (row and column slices) has `mean` colour."""
    shift = mean - image[region].reshape(-1, 3).mean(axis=0, dtype=np.float64)
    return (image + shift.astype(np.float32)).round().clip(0, 255).astype(np.uint8)
