"""Throughput on a local Dask cluster of 1 and 2 workers: python -m magc_plugin.benchmarks.scaling [OUT]

Writes a folder of synthetic RGB rasters, then batch-compresses and batch-decompresses it
on a LocalCluster of each worker count (a fresh cluster per count, its start-up and model
loading timed apart from the coding), checks that every run's files are byte-identical to
the first one's, and reports megapixels per second and the speed-up over one worker.
Uses the shipped model (models/compact) when installed, else a tiny random one (its
figures measure the engine's overheads more than the networks). Writes scaling.json and
scaling.md into OUT (default docs/bench).
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from .memory import synthetic_guidance, tiny_model, write_test_raster


def run_once(workers, rasters, work, model, tile_size, steps):
    from magc_plugin import distributed
    start = time.time()
    with distributed.connect(workers=workers) as client:
        client.wait_for_workers(workers)
        client.run(load_model_on_worker, distributed.ModelSpec(model, None, "cpu"))  # as in a long run: once
        started = time.time() - start
        figures = {"workers": workers, "startup_seconds": started}
        for kind, batch, inputs, options in (
                ("compress", distributed.batch_compress, rasters, {"tile_size": tile_size}),
                ("decompress", distributed.batch_decompress, [work / f"magc_{workers}"], {"steps": steps})):
            out = work / (f"magc_{workers}" if kind == "compress" else f"tif_{workers}")
            report = batch(inputs, out, synthetic_guidance, model, client, device="cpu", **options)
            if report["failed"]:
                raise RuntimeError(f"{kind} with {workers} workers: {report['files']}")
            figures[kind] = {"seconds": report["seconds"]}
    return figures


def load_model_on_worker(spec):
    from magc_plugin import distributed
    distributed.worker_model(spec)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m magc_plugin.benchmarks.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="docs/bench")
    parser.add_argument("--rasters", type=int, default=4, help="rasters in the folder")
    parser.add_argument("--side", type=int, default=768, help="raster side in pixels")
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", help="model folder (default: models/compact if installed, else a tiny one)")
    args = parser.parse_args(argv)

    from magc_plugin.codec.model import SHIPPED_MODELS
    out = Path(args.out)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "magc_scaling"
    (work / "rasters").mkdir(parents=True, exist_ok=True)
    shipped = SHIPPED_MODELS / "compact"
    model = args.model or (str(shipped) if (shipped / "config.json").is_file() else tiny_model(work / "tiny_model"))
    rasters = [write_test_raster(work / "rasters" / f"r{i}.tif", args.side) for i in range(args.rasters)]
    pixels = args.rasters * args.side ** 2
    results = {"model": model, "rasters": args.rasters, "side": args.side, "tile_size": args.tile_size,
               "steps": args.steps, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
               "platform": platform.platform(), "runs": []}
    for workers in args.workers:
        print(f"[{time.strftime('%H:%M:%S')}] {workers} worker(s)", flush=True)
        figures = run_once(workers, rasters, work, model, args.tile_size, args.steps)
        for kind in ("compress", "decompress"):
            figures[kind]["megapixels_per_second"] = pixels / 1e6 / figures[kind]["seconds"]
        results["runs"].append(figures)
        print(json.dumps(figures), flush=True)
    first = args.workers[0]
    results["identical_outputs"] = all(
        (work / f"{kind}_{w}" / f"r{i}.{ext}").read_bytes() == (work / f"{kind}_{first}" / f"r{i}.{ext}").read_bytes()
        for w in args.workers for i in range(args.rasters) for kind, ext in (("magc", "magc"), ("tif", "tif")))
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(results, indent=2))
    write_markdown(results, out / "scaling.md")
    return 0


def write_markdown(results, path):
    base = results["runs"][0]
    lines = ["# Throughput on a local Dask cluster", "",
             f"{results['rasters']} rasters of {results['side']} x {results['side']} px, tiles of "
             f"{results['tile_size']} px, {results['steps']} diffusion steps, model `{Path(results['model']).name}`, "
             f"{results['cpu_count']} CPUs (load average {results['load_average'][0]:.1f} at the start). "
             "Seconds exclude the cluster's start-up and model loading (shown apart).", "",
             "| workers | start-up s | compress s | compress MP/s | decompress s | decompress MP/s | speed-up "
             "(decompress) |", "|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        speedup = base["decompress"]["seconds"] / run["decompress"]["seconds"]
        lines.append(f"| {run['workers']} | {run['startup_seconds']:.0f} | {run['compress']['seconds']:.1f} | "
                     f"{run['compress']['megapixels_per_second']:.3f} | {run['decompress']['seconds']:.1f} | "
                     f"{run['decompress']['megapixels_per_second']:.3f} | {speedup:.2f} |")
    lines += ["", f"Outputs identical across worker counts: {results['identical_outputs']}."]
    Path(path).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
