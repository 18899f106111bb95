"""The tiles a decode reads from a .magc file, a row of tiles at a time, as the windows reach them."""
import warnings
import zlib
from contextlib import closing
from dataclasses import dataclass

import numpy as np

from ..codec.classes import NUM_CLASSES
from ..codec.errors import MAGCError
from ..codec.tile_colour import split_payload
from ..container import MASK_ALL_NODATA, TileRecord, fingerprint
from .grid import guidance_for, pad_reflect
from .runners import check_cancel, in_order
from .windows import DamagedTile, checked_tile


class GuidanceMismatchWarning(UserWarning):
    """The decoder's guidance differs from the encoder's on some tiles."""


@dataclass
class Tile:
    """One tile as the decode reads it."""
    record: TileRecord
    classes: bytes           # zlib of its guidance class raster, reflect-padded to the tile as coded
    colour: np.ndarray       # the mean colour at the head of its payload; None for a tile without pixels
    decoded: tuple = None    # decode_tile's result, where skip_damaged's check decoded it

    @property
    def has_data(self):
        return self.record.mask_kind != MASK_ALL_NODATA

    def class_raster(self, padded):
        """Its guidance class raster, (height, width) uint8, from its padded size (width, height) (Grid.padded)."""
        return np.frombuffer(zlib.decompress(self.classes), np.uint8).reshape(padded[1], padded[0])


def read_record(reader, number, shape, embedded, where):
    """(record, its mean colour or None, its embedded class raster or None) of one tile, checked: DamagedTile
    where its bytes are bad."""
    try:
        record = reader.read_tile(number)
        record.valid_mask(shape)  # unpacked once here so that a damaged mask fails now
        colour = split_payload(record.payload)[0] if record.mask_kind != MASK_ALL_NODATA else None
        classes = record.class_raster(shape) if embedded else None
    except MAGCError as exc:
        raise DamagedTile(where, str(exc)) from exc
    if classes is not None and classes.max(initial=0) >= NUM_CLASSES:
        raise DamagedTile(where, f"the file's embedded guidance map is damaged (class {int(classes.max())}, where "
                          f"classes are 0..{NUM_CLASSES - 1}): give the guidance layers used to compress instead.")
    return record, colour, classes


def nodata_record(number, shape):
    """What a damaged tile becomes with skip_damaged: no pixels, so no window reads it or blends into it."""
    return TileRecord.build(number, np.zeros(shape, bool))


def guidance_differs(mismatch, total, strict):
    """Warn naming the tiles whose guidance differs from the encoder's; strict: refuse at the first one."""
    names = ", ".join(f"({c},{r})" for c, r in sorted(mismatch, key=lambda t: (t[1], t[0]))[:20])
    more = f" and {len(mismatch) - 20} more" if len(mismatch) > 20 else ""
    hint = "Give the same vector layers as for compressing."
    if strict:
        raise MAGCError(f"The guidance differs from the one used to compress on tile {names} (column, row). "
                        f"{hint} (strict guidance: nothing decoded)")
    warnings.warn(f"The guidance differs from the one used to compress on {len(mismatch)} of {total} tiles "
                  f"(column, row): {names}{more}. {hint}", GuidanceMismatchWarning, stacklevel=3)


class TileRows:
    """The tiles a decode needs, read a row of tiles at a time as the windows reach them, released behind them.

    Reading a tile: its record, checked (a damaged one raises DamagedTile or, with skip_damaged,
    becomes nodata), and its guidance (the caller's, else the map embedded in the file), compared
    with the encoder's fingerprint (strict: refused at the first difference). With skip_damaged,
    each tile's stream is entropy-decoded when its row is read (and kept for the windows), so that
    a tile that cannot be decoded is nodata before any window reads it or blends into it.
    """

    def __init__(self, reader, grid, needed, guidance, transform, crs, runner, *, strict, skip_damaged, cancel):
        self.reader, self.grid, self.guidance, self.transform, self.crs = reader, grid, guidance, transform, crs
        self.runner, self.strict, self.skip_damaged, self.cancel = runner, strict, skip_damaged, cancel
        self.total = len(needed)
        self.unread = {}  # row -> columns of the needed tiles not read yet
        for c, r in needed:
            self.unread.setdefault(r, []).append(c)
        self.tiles = {}  # (col, row) -> Tile of the rows read and not released
        self.mismatch, self.damaged = [], {}  # [(col, row)], {(col, row): why}

    def through(self, row):
        """Read the needed tiles of every row up to `row`."""
        for r in sorted(k for k in self.unread if k <= row):
            self._read_row(r, sorted(self.unread.pop(r)))

    def release(self, row):
        """Forget the tiles of the rows above `row`."""
        for key in [k for k in self.tiles if k[1] < row]:
            del self.tiles[key]

    def _read_row(self, r, cols):
        grid = self.grid
        for c in cols:
            check_cancel(self.cancel)
            n = grid.number(c, r)
            x0, y0, w, h = grid.window(c, r)
            try:
                record, colour, classes = read_record(self.reader, n, (h, w), self.guidance is None, f"({c},{r})")
            except DamagedTile as exc:
                if not self.skip_damaged:
                    raise
                self.damaged[(c, r)] = exc.reason
                record, colour, classes = nodata_record(n, (h, w)), None, None
            if classes is None:
                classes = guidance_for(self.guidance, self.transform, self.crs, x0, y0, w, h)
            if (c, r) not in self.damaged and fingerprint(classes) != self.reader.index[n].fingerprint:
                self.mismatch.append((c, r))
                if self.strict:
                    guidance_differs(self.mismatch, self.total, strict=True)
            pw, ph = grid.padded(c, r)
            self.tiles[(c, r)] = Tile(record, zlib.compress(pad_reflect(classes, ph, pw).tobytes(), 1), colour)
        if self.skip_damaged:
            self._skip_undecodable([(c, r) for c in cols if self.tiles[(c, r)].has_data])

    def _skip_undecodable(self, keys):
        tasks = ((self.tiles[t].record.payload, self.tiles[t].class_raster(self.grid.padded(*t)), f"({t[0]},{t[1]})")
                 for t in keys)
        with closing(in_order(self.runner, checked_tile, tasks, self.cancel)) as results:
            for (c, r), (decoded, reason) in zip(keys, results):
                tile = self.tiles[(c, r)]
                if reason is None:
                    tile.decoded = decoded
                else:
                    _, _, w, h = self.grid.window(c, r)
                    self.damaged[(c, r)] = reason
                    self.tiles[(c, r)] = Tile(nodata_record(tile.record.number, (h, w)), tile.classes, None)
