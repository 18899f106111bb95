"""Command line: python -m magc_plugin compress|decompress|batch-compress|batch-decompress|rasterize|evaluate|info.

    python -m magc_plugin compress IN.tif OUT.magc --vectors osm.gpkg --layer-class building=bld.geojson
    python -m magc_plugin decompress OUT.magc DECODED.tif --vectors osm.gpkg --layer-class building=bld.geojson
    python -m magc_plugin rasterize IN.tif CLASSES.tif --vectors osm.gpkg
    python -m magc_plugin info OUT.magc
    python -m magc_plugin batch-compress FOLDER_OR_FILES... --output-folder OUT --scheduler tcp://host:8786
    python -m magc_plugin batch-decompress OUT --output-folder DECODED --workers 4

Vector files (any format fiona reads, any CRS) are classified feature by feature from
OpenStreetMap tags (--vectors) or mapped to one class per file (--layer-class).
Errors are one line on stderr with exit status 2; Ctrl-C (130) and SIGTERM (143) remove the partial
output. The batch commands run on a Dask cluster (a local one without --scheduler), print a JSON
report, and exit with status 1 when some rasters failed (one line each on stderr) while the others
were written.
"""
import argparse
import json
import signal
import sys
import warnings
from pathlib import Path

import numpy as np

from .codec.classes import CLASS_COLOURS, CLASS_NAMES, NOT_MAPPED
from .codec.errors import MAGCError
from .termination import Terminated, sigterm_unwinds, terminating

# Widest line buffer the rasterizer burns (a motorway, metres): features this far outside a tile still touch it.
LINE_MARGIN_M = 15
METRES_PER_DEGREE = 111_320
CLASS_ALIASES = {**{name: i for i, name in enumerate(CLASS_NAMES)}, "buildings": 1, "roads": 2,
                 "other": 5, "other-land": 5}


def _flatten(coords):
    if coords and isinstance(coords[0], (int, float)):
        yield coords[0]
        yield coords[1]
        return
    for part in coords:
        yield from _flatten(part)


class VectorGuidance:
    """guidance(transform, width, height, crs) -> class raster, from vector files (outside QGIS).

    sources: [(path, fixed class id or None)]. Features are read once per CRS, reprojected,
    and each tile burns only those whose bounding box touches it.
    """

    def __init__(self, sources):
        self.sources = [(str(p), c) for p, c in sources]
        self._cache = {}
        self.used = None  # which features touched a tile

    def __bool__(self):
        return bool(self.sources)

    def _load(self, crs):
        import fiona
        from .guidance import read_vector_features
        key = crs.to_wkt() if crs else None
        if key not in self._cache:
            features, boxes, owners = [], [], []
            for i, (path, fixed) in enumerate(self.sources):
                try:
                    dst = crs
                    if dst is None:  # an ungeoreferenced raster: take the vectors' coordinates as they are
                        with fiona.open(path) as layer:
                            dst = layer.crs_wkt or "EPSG:4326"
                    for geometry, class_id, width in read_vector_features(path, dst, fixed_class=fixed):
                        xy = np.array(list(_flatten(geometry["coordinates"])), dtype=np.float64).reshape(-1, 2) \
                            if "coordinates" in geometry else np.zeros((0, 2))
                        if not len(xy):
                            continue
                        features.append((geometry, class_id, width))
                        boxes.append((*xy.min(axis=0), *xy.max(axis=0)))
                        owners.append(i)
                except (OSError, ValueError, fiona.errors.FionaError) as exc:
                    raise MAGCError(f"Cannot read the vector file {path}: {exc}") from exc
            self._cache[key] = (features, np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(owners, int))
            self.used = np.zeros(len(features), bool)
        return self._cache[key]

    def __call__(self, transform, width, height, crs):
        from .guidance import rasterize_features
        features, boxes, owners = self._load(crs)
        geographic = bool(crs and crs.is_geographic)
        corners = np.array([transform * (x, y) for x in (0, width) for y in (0, height)])
        margin = LINE_MARGIN_M / (METRES_PER_DEGREE if geographic else 1.0)
        x0, y0 = corners.min(axis=0) - margin
        x1, y1 = corners.max(axis=0) + margin
        hit = np.flatnonzero((boxes[:, 0] <= x1) & (boxes[:, 2] >= x0) & (boxes[:, 1] <= y1) & (boxes[:, 3] >= y0))
        self.used[hit] = True
        return rasterize_features([features[i] for i in hit], transform, width, height, crs_is_geographic=geographic)

    def summary(self):
        """[(path, features that touched the raster)]."""
        if not self._cache:
            return [(path, 0) for path, _ in self.sources]
        owners = next(iter(self._cache.values()))[2]
        return [(path, int(self.used[owners == i].sum())) for i, (path, _) in enumerate(self.sources)]


def guidance_from_args(args):
    sources = [(Path(p), None) for p in args.vectors or []]
    for item in args.layer_class or []:
        name, sep, path = item.partition("=")
        if not sep or name.lower() not in CLASS_ALIASES or CLASS_ALIASES[name.lower()] == NOT_MAPPED:
            raise MAGCError(f"--layer-class takes CLASS=PATH with CLASS one of {', '.join(CLASS_NAMES[1:])}; "
                            f"got {item!r}.")
        sources.append((Path(path), CLASS_ALIASES[name.lower()]))
    for path, _ in sources:
        if not path.exists():
            raise MAGCError(f"The vector file {path} does not exist.")
    return VectorGuidance(sources) if sources else None


def report_guidance(guidance):
    for path, count in (guidance.summary() if guidance else []):
        if count == 0:
            warn(f"the guidance file {path} contributed nothing: it does not overlap the raster (check its CRS "
                 "and extent) or none of its features has a known class.")


def warn(message):
    print(f"magc: warning: {message}", file=sys.stderr)


def progress_printer(quiet):
    if quiet or not sys.stderr.isatty():
        return None

    def show(fraction, message):
        print(f"\r{100 * fraction:5.1f}% {message or ''}".ljust(60), end="", file=sys.stderr, flush=True)
    return show


# -- commands ----------------------------------------------------------------------------------------
def cmd_compress(args):
    from . import tiling
    guidance = guidance_from_args(args)
    report = tiling.compress_raster(args.input, args.output, guidance, args.model, bands=args.bands,
                                    stretch=args.stretch, tile_size=args.tile_size, embed_guidance=args.embed_guidance,
                                    rate=None if args.rate == "default" else args.rate, device=args.device,
                                    progress=progress_printer(args.quiet))
    report_guidance(guidance)
    return report


def cmd_decompress(args):
    from . import tiling
    guidance = guidance_from_args(args)
    report = tiling.decompress_raster(args.input, args.output, guidance, args.model, steps=args.steps,
                                      seed=args.seed, extent=args.extent, strict_guidance=args.strict_guidance,
                                      skip_damaged=args.skip_damaged, device=args.device,
                                      progress=progress_printer(args.quiet))
    report_guidance(guidance)
    report["guidance_mismatch"] = [list(t) for t in report["guidance_mismatch"]]
    return report


def batch_run(args, batch, **options):
    """Run a batch function of magc_plugin.distributed, with its `options`, on the cluster the arguments name."""
    from . import distributed
    guidance = guidance_from_args(args)
    resources = dict(parse_resource(r) for r in args.resources or [])
    with distributed.connect(args.scheduler, args.workers) as client:
        report = batch(args.inputs, args.output_folder, guidance, args.model, client, device=args.device,
                       resources=resources or None, progress=progress_printer(args.quiet), cancel=terminating,
                       **options)
    for entry in report["files"]:
        if "error" in entry:
            print(f"magc: error: {entry['input']}: {entry['error']}", file=sys.stderr)
    report_guidance(guidance)
    return report


def parse_resource(item):
    name, sep, amount = item.partition("=")
    try:
        return name, float(amount)
    except ValueError:
        raise MAGCError(f"--resources takes NAME=AMOUNT, such as GPU=1; got {item!r}.") from None


def cmd_batch_compress(args):
    from .distributed import batch_compress
    return batch_run(args, batch_compress, tile_size=args.tile_size, embed_guidance=args.embed_guidance,
                     rate=None if args.rate == "default" else args.rate)


def cmd_batch_decompress(args):
    from .distributed import batch_decompress
    return batch_run(args, batch_decompress, steps=args.steps, seed=args.seed, strict_guidance=args.strict_guidance,
                     skip_damaged=args.skip_damaged)


def cmd_rasterize(args):
    """The class raster on the grid of IN, written strip by strip with a colour table."""
    from rasterio.windows import Window
    from . import tiling
    guidance = guidance_from_args(args)
    if guidance is None:
        raise MAGCError("Give guidance vector files with --vectors or --layer-class.")
    output = tiling.check_output(args.output)
    mapped = 0
    with tiling.open_raster(args.input) as src:
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": "uint8",
                   "crs": src.crs, "transform": src.transform, "tiled": True, "blockxsize": 256, "blockysize": 256,
                   "compress": "deflate"}
        rows = max(1, min(src.height, (1 << 22) // src.width))
        with tiling.GeoTIFFWriter(output, profile) as out:
            out.dataset.write_colormap(1, {k: (*v, 255) for k, v in CLASS_COLOURS.items()})
            for row in range(0, src.height, rows):
                n = min(rows, src.height - row)
                strip = tiling.guidance_for(guidance, src.transform, src.crs, 0, row, src.width, n)
                out.write(strip[None], Window(0, row, src.width, n))
                mapped += int((strip != NOT_MAPPED).sum())
            out.commit()
        pixels = src.width * src.height
    report_guidance(guidance)
    return {"path": str(output), "pixels": pixels, "mapped_fraction": mapped / pixels}


def cmd_info(args):
    from .container import MAGCReader
    with MAGCReader(args.input) as reader:
        return reader.info()


def cmd_evaluate(args):
    from .evaluation.metrics import evaluate_rasters, write_html_report
    figures = evaluate_rasters(args.original, args.decoded, magc_path=args.magc)
    if args.html:
        write_html_report(figures, args.html)
    return figures


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m magc_plugin", description="MAGC: map-assisted generative "
                                     "compression of georeferenced rasters.")
    sub = parser.add_subparsers(dest="command", required=True)

    def guidance_options(p):
        p.add_argument("--vectors", nargs="+", metavar="FILE", help="vector files classified by OSM tags")
        p.add_argument("--layer-class", action="append", metavar="CLASS=FILE",
                       help=f"a vector file whose features are all one class ({', '.join(CLASS_NAMES[1:])})")

    def model_options(p):
        p.add_argument("--model", default="default", help="model folder or shipped preset (default: 'default')")
        p.add_argument("--device", default="auto", help="auto, cpu or cuda")
        p.add_argument("--quiet", action="store_true", help="no progress display")

    def encoder_options(p):
        p.add_argument("--rate", default="default", help="rate preset of the model (low, medium, high...)")
        p.add_argument("--tile-size", type=int, default=512)
        p.add_argument("--embed-guidance", action="store_true", help="store the class raster in the file (costs bits)")

    def decoder_options(p):
        p.add_argument("--steps", type=int, default=20)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--strict-guidance", action="store_true", help="fail if the map differs from the encoder's")
        p.add_argument("--skip-damaged", action="store_true",
                       help="decode what can be: damaged tiles become nodata (a warning each), the file is not refused")

    def batch_options(p, what):
        p.add_argument("inputs", nargs="+", metavar="INPUT", help=f"{what} files, or folders holding them")
        p.add_argument("--output-folder", "-o", required=True, help="where the outputs go (same names)")
        p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786); default: a local cluster")
        p.add_argument("--workers", type=int, help="local cluster: worker processes (default: one per CPU core)")
        p.add_argument("--resources", nargs="+", metavar="NAME=AMOUNT",
                       help="what each task needs of the workers' --resources, such as GPU=1")

    p = sub.add_parser("compress", help="raster + vector map -> .magc")
    p.add_argument("input")
    p.add_argument("output")
    guidance_options(p)
    model_options(p)
    encoder_options(p)
    p.add_argument("--bands", type=int, nargs="+", help="source bands coded as red green blue (one band: grey)")
    p.add_argument("--stretch", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="source values mapped to 0..255 in every band (default: 8-bit as is, others from each band's "
                        "2%%-98%% percentiles; the report gives the range used)")
    p.set_defaults(run=cmd_compress)

    p = sub.add_parser("decompress", help=".magc + the same vector map -> GeoTIFF")
    p.add_argument("input")
    p.add_argument("output")
    guidance_options(p)
    model_options(p)
    decoder_options(p)
    p.add_argument("--extent", type=float, nargs=4, metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
                   help="decode only this region (in the raster's CRS)")
    p.set_defaults(run=cmd_decompress)

    p = sub.add_parser("batch-compress", help="rasters (or folders of them) -> .magc files, on a Dask cluster")
    batch_options(p, "raster")
    guidance_options(p)
    model_options(p)
    encoder_options(p)
    p.set_defaults(run=cmd_batch_compress)

    p = sub.add_parser("batch-decompress", help=".magc files (or folders of them) -> GeoTIFFs, on a Dask cluster")
    batch_options(p, ".magc")
    guidance_options(p)
    model_options(p)
    decoder_options(p)
    p.set_defaults(run=cmd_batch_decompress)

    p = sub.add_parser("rasterize", help="vector map -> class raster on a raster's grid")
    p.add_argument("input")
    p.add_argument("output")
    guidance_options(p)
    p.set_defaults(run=cmd_rasterize)

    p = sub.add_parser("evaluate", help="compare a decoded raster with the original")
    p.add_argument("original")
    p.add_argument("decoded")
    p.add_argument("--magc", help="the .magc file, for its bits per pixel")
    p.add_argument("--html", help="write an HTML report here")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("info", help="print a .magc file's header as JSON")
    p.add_argument("input")
    p.set_defaults(run=cmd_info)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from .tiling import GuidanceMismatchWarning
    if issubclass(category, GuidanceMismatchWarning) or "magc_plugin" in str(filename):
        warn(str(message))


def main(argv=None):
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning  # our warnings as one line; library chatter is dropped
    try:
        with sigterm_unwinds():
            result = args.run(args)
    except MAGCError as exc:
        print(f"magc: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # files the libraries cannot read or write
        print(f"magc: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"magc: error: the Python package '{exc.name}' is missing: pip install -r requirements.txt",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nmagc: interrupted; nothing was written.", file=sys.stderr)
        return 130
    except Terminated:
        progress_line = "\n" if progress_printer(getattr(args, "quiet", True)) else ""
        print(f"{progress_line}magc: terminated; nothing was written.", file=sys.stderr)
        return 128 + signal.SIGTERM  # the shell's status for a process that SIGTERM ended
    if progress_printer(getattr(args, "quiet", True)):
        print(file=sys.stderr)
    print(json.dumps(result, indent=2, default=str))
    return 1 if result.get("failed") else 0  # a batch where some rasters failed
