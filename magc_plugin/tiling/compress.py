"""Compress a raster to a .magc file, tile by tile, each tile coded with the context of its neighbours."""
import time
from contextlib import closing
from dataclasses import dataclass

import numpy as np

from ..codec.errors import MAGCError
from ..container import MASK_ALL_NODATA, MAGCWriter, TileRecord, fingerprint
from ..raster_io import (affine, bounded_gdal_cache, check_output, choose_bands, compute_stretch, crs_of, georef,
                         open_raster, read_tile)
from .grid import DEFAULT_TILE_SIZE, ENCODE_CONTEXT, TILE_MULTIPLE, Grid, context_window, guidance_for, pad_reflect
from .runners import check_cancel, in_order, report, runner_for


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


def compress_raster(src_path, dst_path, guidance, model, *, bands=None, stretch=None, tile_size=DEFAULT_TILE_SIZE,
                    embed_guidance=False, rate=None, device="auto", engine=None, context=ENCODE_CONTEXT,
                    progress=None, cancel=None):
    """Compress a raster to a .magc file, tile by tile.

    guidance: callable(transform, width, height, crs) -> uint8 class raster (height, width),
    or None (no map); it is called here, never on a cluster. context: pixels of the neighbour tiles
    the encoder sees around each tile (a multiple of 64, at most the tile size; 0 codes tiles
    blind to each other, with visible seams at decode). model: a MAGCModel, a model
    folder or a preset name. engine: where the tiles are coded (a
    ``magc_plugin.distributed.DaskEngine``), None for this process. stretch: (lo, hi) source values
    mapped to 0..255 in every band, None for the automatic one (raster_io.compute_stretch).
    Returns {"bytes", "bpp", "pixels", "tiles", "seconds", "guidance_bytes", "nodata_tiles", "dtype",
    "stretch" (per coded band, as stored), "path"}.
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
    report(progress, 0.0, "Loading the model")
    runner = runner_for(engine, model, rate, device)
    with open_raster(src_path) as src, bounded_gdal_cache(src.width, src.count, np.dtype(src.dtypes[0]).itemsize,
                                                          tile_size + 2 * context + src.block_shapes[0][0]):
        bands = choose_bands(src, bands)
        output_bands = list(dict.fromkeys(bands))
        report(progress, 0.0, "Computing the band stretch")
        stretch = compute_stretch(src, bands, stretch)
        grid = Grid(src.width, src.height, tile_size)
        head = {"width": src.width, "height": src.height, "bands": bands, "output_bands": output_bands,
                "dtype": src.dtypes[0], "stretch": stretch, "tile_size": tile_size,
                "tiles": [grid.cols, grid.rows], "embedded_guidance": bool(embed_guidance)}
        writer = MAGCWriter(dst_path, head, georef(src, output_bands), runner.identity())
        # Encoder and decoder hand the guidance the same CRS and transforms: both rebuilt from the file's record.
        crs, transform = crs_of(writer.georef), affine(writer.georef["transform"])
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
                yield (EncodeJob(n, pad_reflect(rgb, *window), pad_reflect(classes, *window), core, tile_valid,
                                 bool(embed_guidance)),)

        with writer, \
                closing(in_order(runner, encode_tile, jobs(), cancel)) as records:
            for n, (record, tile_fingerprint) in enumerate(records):
                nodata_tiles += record.mask_kind == MASK_ALL_NODATA
                guidance_bytes += len(record.guidance_bytes)
                writer.add_tile(record, tile_fingerprint)
                report(progress, (n + 1) / len(grid), f"Compressed tile {n + 1} of {len(grid)}")
            check_cancel(cancel)
            size = writer.commit()
    pixels = head["width"] * head["height"]
    report(progress, 1.0, "Done")
    return {"bytes": size, "bpp": 8.0 * size / pixels, "pixels": pixels, "tiles": len(grid),
            "seconds": time.time() - start, "guidance_bytes": guidance_bytes, "nodata_tiles": nodata_tiles,
            "dtype": head["dtype"], "stretch": writer.head["stretch"], "path": str(dst_path)}
