"""Tile seams with a real model: python -m magc_plugin.benchmarks.seams [OUT]

Codes square crops of held-out aerial images (Dubai tile 7, from ../shared/data; a synthetic
raster where that is absent), three tiles a side, with the shipped model, three ways:

- one tile covering the whole crop (no seam can exist: the reference for the decoder's texture);
- tiles coded blind to each other (encoder context 0: what the encoder did before context);
- tiles coded with the default encoder context (neighbour pixels seen, not coded).

All decode with the default blend margin. The seam figure is the mean |gradient| across the
lines where tiles meet, over the mean |gradient| across the lines that sit at the same place
in the 64-pixel grid of the latents but inside tiles: the codec leaves a faint texture on that
grid, which a comparison with every line would charge to the seams. The ratio over all inside
lines (the unit test's figure) is reported too, and the original is measured the same way.
Writes seams.json and seams.md into OUT (default docs/bench).
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRID = 64  # pixels per hyper-latent cell: the codec's coarsest grid


def seam_gradients(image, tile, grid=GRID):
    """Mean |gradient| of a (bands, H, W) image across tile seams, inside tiles, and inside tiles on
    the lines that share the seams' position in the codec's grid; both axes, all bands."""
    a = image.astype(np.float32)
    sums = {"seam": [], "inside": [], "same_phase": []}
    for g in (np.abs(np.diff(a, axis=2)), np.abs(np.diff(a, axis=1)).transpose(0, 2, 1)):
        line = np.arange(g.shape[2])  # line i lies between pixels i and i + 1
        seam = line % tile == tile - 1
        sums["seam"].append(g[:, :, seam].ravel())
        sums["inside"].append(g[:, :, ~seam].ravel())
        sums["same_phase"].append(g[:, :, ~seam & (line % grid == grid - 1)].ravel())
    return {k: float(np.concatenate(v).mean()) for k, v in sums.items()}


def dubai_crops(side, count):
    """(name, image (H, W, 3), class raster) crops of the held-out Dubai tile 7, or nothing without the data."""
    from magc_plugin.data import dubai_images, have_data
    if not have_data():
        return []
    crops = []
    for name, image, classes in dubai_images(["tile_7"]):
        if min(classes.shape) >= side:
            crops.append((name, image[:side, :side], classes[:side, :side]))
        if len(crops) == count:
            break
    return crops


def write_crop(path, image):
    import rasterio
    from rasterio.transform import from_origin
    with rasterio.open(path, "w", driver="GTiff", width=image.shape[1], height=image.shape[0], count=3,
                       dtype="uint8", crs="EPSG:32640", transform=from_origin(0, image.shape[0], 1, 1)) as dst:
        dst.write(image.transpose(2, 0, 1))


def class_lookup(classes):
    """A guidance callable over a class raster georeferenced like write_crop's rasters."""
    def guidance(transform, width, height, crs):
        x0, y0 = int(round(transform.c)), int(round(classes.shape[0] - transform.f))
        return classes[y0:y0 + height, x0:x0 + width]
    return guidance


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m magc_plugin.benchmarks.seams", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="docs/bench")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", default="default")
    args = parser.parse_args(argv)

    import rasterio
    from magc_plugin import tiling
    from magc_plugin.benchmarks.memory import synthetic_guidance, write_test_raster
    from magc_plugin.codec.model import MAGCModel
    side = 3 * args.tile_size
    model = MAGCModel.from_pretrained(args.model, device="cpu")
    work = Path(tempfile.mkdtemp(prefix="magc-seams-"))
    try:
        samples = []
        for i, (name, image, classes) in enumerate(dubai_crops(side, args.images)):
            write_crop(work / f"src{i}.tif", image)
            samples.append((name, work / f"src{i}.tif", class_lookup(classes)))
        if not samples:
            samples = [("synthetic", write_test_raster(work / "src.tif", side), synthetic_guidance)]
        ways = {"one tile (reference)": (side, 0), "tiles, encoder context 0": (args.tile_size, 0),
                f"tiles, encoder context {tiling.ENCODE_CONTEXT}": (args.tile_size, tiling.ENCODE_CONTEXT)}
        rows = {"original": []}
        for name, src, guidance in samples:
            with rasterio.open(src) as f:
                rows["original"].append({"image": name, **seam_gradients(f.read(), args.tile_size)})
            for way, (tile_size, context) in ways.items():
                start = time.time()
                coded = tiling.compress_raster(src, work / "a.magc", guidance, model, tile_size=tile_size,
                                               context=context)
                tiling.decompress_raster(work / "a.magc", work / "out.tif", guidance, model, steps=args.steps)
                with rasterio.open(work / "out.tif") as f:
                    figures = seam_gradients(f.read(), args.tile_size)
                rows.setdefault(way, []).append({"image": name, "bpp": coded["bpp"], "seconds": time.time() - start,
                                                 **figures})
                print(f"[{time.strftime('%H:%M:%S')}] {name} {way}: {json.dumps(rows[way][-1])}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {"model": str(args.model), "tile_size": args.tile_size, "side": side, "steps": args.steps,
               "blend_margin": tiling.BLEND_MARGIN, "platform": platform.platform(), "cpu_count": os.cpu_count(),
               "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seams.json").write_text(json.dumps(results, indent=2))
    write_markdown(results, out / "seams.md")
    return 0


def write_markdown(results, path):
    images = sorted({r["image"] for r in results["rows"]["original"]})
    lines = ["# Tile seams", "",
             f"{len(images)} crops of {results['side']} x {results['side']} px ({', '.join(images)}), tiles of "
             f"{results['tile_size']} px, {results['steps']} diffusion steps, blend margin {results['blend_margin']} "
             "px, "
             f"model `{results['model']}`. Seam lines: where tiles meet (also measured on the images that are one "
             "tile). Ratios of the mean |gradient| across seam lines to that across the lines inside tiles at the "
             f"same place in the {GRID}-pixel latent grid, and to that across every inside line (means over the "
             "crops' pixels). At most 1: no seam stands out.", "",
             "| coded as | seam / same-grid lines | seam / all inside lines | bpp | seconds per crop |",
             "|---|---|---|---|---|"]
    for way, rows in results["rows"].items():
        seam = np.mean([r["seam"] for r in rows])
        lines.append(f"| {way} | {seam / np.mean([r['same_phase'] for r in rows]):.3f} | "
                     f"{seam / np.mean([r['inside'] for r in rows]):.3f} | "
                     + (f"{np.mean([r['bpp'] for r in rows]):.4f} | {np.mean([r['seconds'] for r in rows]):.0f} |"
                        if "bpp" in rows[0] else "- | - |"))
    Path(path).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
