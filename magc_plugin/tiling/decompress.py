"""Decode a .magc file (or a region of it) into a GeoTIFF, streaming a row of tile windows at a time.

For each row of windows, top to bottom: read the records of the tiles under it and rasterize
their guidance (records.TileRows), entropy-decode their streams and decode each window
(windows.py, through a runner), feather-blend the windows into a strip of output rows
(blend.Strip), write the rows no later window reaches, and release the rows of tiles behind.
Memory and time to the first progress are those of a row of windows, not of the raster.
"""
import math
import time
import warnings
from contextlib import closing
from pathlib import Path

import numpy as np

from .. import __version__
from ..codec.errors import MAGCError
from ..container import MASK_ALL_NODATA, MASK_ALL_VALID, MAGCReader, version_text
from ..raster_io import GeoTIFFWriter, affine, bounded_gdal_cache, check_output, crs_of, from_u8, output_profile
from .blend import Strip
from .grid import BLEND_MARGIN, TILE_MULTIPLE, Grid, dilate
from .records import TileRows, guidance_differs
from .runners import check_cancel, in_order, report, runner_for
from .windows import Windows, decode_window

WRITE_ROWS = 64            # decoded rows mapped back and written at a time: their temporaries grow with the width


def decompress_raster(src_path, dst_path, guidance=None, model="default", *, steps=20, seed=0, extent=None,
                      strict_guidance=False, skip_damaged=False, device="auto", blend_margin=BLEND_MARGIN, engine=None,
                      progress=None, cancel=None):
    """Decode a .magc file (or the tiles covering `extent`) into a GeoTIFF like the source raster.

    guidance: the same kind of callable as for compress_raster; None uses the map embedded in
    the file, if any. model: a MAGCModel, a model folder or a preset name (loaded at the file's
    rate). extent: (xmin, ymin, xmax, ymax) in the raster's CRS. blend_margin: pixels of
    neighbour context per side (a multiple of 64; 0 decodes tiles independently). engine:
    where the windows are decoded (as for compress_raster). strict_guidance: refuse, at the first
    tile whose guidance differs from the encoder's, leaving no output (else a warning at the end).
    skip_damaged: write the tiles whose bytes cannot be read or decoded as nodata (each with a
    warning; their neighbours do not blend into them) instead of refusing the file; still refused
    when its header is damaged or no tile of the output can be decoded. It checks every tile's
    stream as its row is read: one more entropy decoding.
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
        crs, transform = crs_of(geo), affine(geo["transform"])
        ox0, oy0, ox1, oy1 = _output_window(head, transform, extent)
        out_tiles = {(c, r) for c in range(ox0 // grid.tile, (ox1 - 1) // grid.tile + 1)
                     for r in range(oy0 // grid.tile, (oy1 - 1) // grid.tile + 1)}
        margin = min(int(blend_margin), grid.tile // 2) // TILE_MULTIPLE * TILE_MULTIPLE
        # The windows that touch the output, and the tiles whose y_hat those windows read.
        windows = dilate(out_tiles, grid, 1 if margin else 0)
        needed = dilate(windows, grid, 1 if margin else 0)

        def mask_kind(tile):  # from the header's index: known before the tile is read
            return reader.index[grid.number(*tile)].mask_kind

        report(progress, 0.0, "Loading the model")
        runner = runner_for(engine, model, identity.get("rate"), device)
        _check_model(runner.identity(), identity, src_path)
        rows = TileRows(reader, grid, needed, guidance, transform, crs, runner, strict=strict_guidance,
                        skip_damaged=skip_damaged, cancel=cancel)
        decoder = Windows(runner, grid, rows.tiles, margin, steps, seed)
        profile = output_profile(head, geo, transform, ox0, oy0, ox1 - ox0, oy1 - oy0)
        # Without a nodata value, invalid pixels go to an internal mask, created for every strip or none
        # (with skip_damaged, for every strip: damaged tiles are found as the rows are read).
        with_mask = profile["nodata"] is None and (skip_damaged or any(mask_kind(t) != MASK_ALL_VALID for t in needed))
        window_rows = sorted({r for _, r in windows})
        row_windows = {row: sorted((c, r) for c, r in windows if r == row) for row in window_rows}
        total = sum(mask_kind(t) != MASK_ALL_NODATA for t in windows)  # damaged ones count as done when found
        done = [0]

        def to_decode(row):  # the windows of `row` over a tile with data, once the tiles they read are read
            rows.through(row + 1)
            return [t for t in row_windows[row] if rows.tiles[t].has_data]

        def step_progress(i, steps_total):  # called after each diffusion step, when the runner runs here
            check_cancel(cancel)
            report(progress, (done[0] + (i + 1) / steps_total) / total, f"Decoding tile {done[0] + 1} of {total}")

        callback = step_progress if runner.runs_here else None
        tasks = (decoder.task(col, row) + (callback,) for r in window_rows for col, row in to_decode(r))
        with bounded_gdal_cache(ox1 - ox0, profile["count"], np.dtype(profile["dtype"]).itemsize,
                                grid.tile + 2 * margin), GeoTIFFWriter(dst_path, profile) as out, \
                closing(in_order(runner, decode_window, tasks, cancel)) as decoded:
            previous = None
            for i, row in enumerate(window_rows):
                todo = to_decode(row)  # the same windows, in the same order, as `decoded` yields for this row
                done[0] += sum(mask_kind(t) != MASK_ALL_NODATA for t in row_windows[row]) - len(todo)
                _, y0, _, h = grid.window(0, row)
                strip = Strip(max(oy0, y0 - margin), min(oy1, y0 + h + margin), ox0, ox1)
                for _ in todo:
                    check_cancel(cancel)
                    strip.add(*next(decoded))
                    done[0] += 1
                    report(progress, done[0] / total, f"Decoded tile {done[0]} of {total}")
                if previous is not None:
                    strip.merge(previous)
                last = i == len(window_rows) - 1
                ready = strip.y1 if last else min(strip.y1, y0 + grid.tile - margin)
                for ya in range(strip.y0, ready, WRITE_ROWS):  # in slices: bounded temporaries
                    _write_rows(out, strip, ya, min(ready, ya + WRITE_ROWS), head, grid, rows.tiles, ox0, oy0,
                                with_mask)
                previous = strip.tail(ready)
                del strip
                rows.release(row)  # the next row of windows reads and writes over the tiles from this row on
            check_cancel(cancel)
            if rows.damaged and all(mask_kind(t) == MASK_ALL_NODATA or t in rows.damaged for t in out_tiles):
                c, r, why = _damaged_list(rows.damaged)[0]
                raise MAGCError(f"Every tile to decode is damaged or holds only nodata, so nothing can be decoded "
                                f"({len(rows.damaged)} damaged, such as tile ({c},{r}): {why})")
            out.commit()
    if rows.mismatch:
        guidance_differs(rows.mismatch, rows.total, strict=False)
    damaged = _damaged_list(rows.damaged)
    for c, r, why in damaged[:20]:
        warnings.warn(f"Skipped the damaged tile ({c},{r}): its pixels are nodata. {why}", stacklevel=2)
    if len(damaged) > 20:
        warnings.warn(f"... and {len(damaged) - 20} more damaged tiles, skipped alike.", stacklevel=2)
    report(progress, 1.0, "Done")
    return {"pixels": (ox1 - ox0) * (oy1 - oy0), "tiles": len(out_tiles), "seconds": time.time() - start,
            "width": ox1 - ox0, "height": oy1 - oy0, "window": (ox0, oy0, ox1, oy1),
            "guidance_mismatch": rows.mismatch, "damaged_tiles": damaged, "path": str(dst_path)}


def raster_info(path):
    """Size, CRS (WKT or None), geotransform and bounds of a .magc file, read from its header."""
    with MAGCReader(path) as reader:
        head, geo = reader.head, reader.georef
    transform = affine(geo["transform"])
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


def _damaged_list(damaged):
    """[(col, row, why)] of the damaged tiles, row by row."""
    return [(c, r, damaged[(c, r)]) for c, r in sorted(damaged, key=lambda t: (t[1], t[0]))]


def _write_rows(out, strip, ya, yb, head, grid, tiles, ox0, oy0, with_mask):
    """Map strip rows [ya, yb) back to source values, restore nodata and write them."""
    from rasterio.windows import Window
    rgb = strip.image(ya, yb)
    valid = np.ones((yb - ya, strip.x1 - strip.x0), bool)
    for (c, r), tile in tiles.items():
        x0, y0, w, h = grid.window(c, r)
        xa, xb, ra, rb = max(x0, strip.x0), min(x0 + w, strip.x1), max(y0, ya), min(y0 + h, yb)
        if xa < xb and ra < rb and tile.record.mask_kind != MASK_ALL_VALID:
            valid[ra - ya:rb - ya, xa - strip.x0:xb - strip.x0] = \
                tile.record.valid_mask((h, w))[ra - y0:rb - y0, xa - x0:xb - x0]
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
