"""Structure-aware fuzzing of the .magc reader and decoder: python -m magc_plugin.benchmarks.fuzz OUT_FOLDER

Seeds are small rasters compressed with the model in several layouts (nodata masks, embedded guidance, an EPSG
and a WKT CRS, 16-bit with a stretch, float with NaN nodata, a rotated grid). Each case mutates one seed and opens
and decodes the result (``MAGCReader.info`` then ``tiling.decompress_raster``, no diffusion steps) in a forked
child with a time and a memory limit. Most mutations keep every checksum consistent with the mutated content, so
the header validation, the record parser and the entropy decoder see the garbage; the rest are plain corruption.

Outcomes that pass: ``refused`` (the project's MAGCError), ``same`` (decoded to the seed's pixels), ``valid``
(a header field or a tile's raw mean colour changed to another value the format allows: a valid file that says
something else). Failures: ``crash`` (the child died), ``hang`` (over the time limit), ``exception`` (any other
exception type, MemoryError from the memory limit included), ``partial`` (a file left in the output folder after
a refusal), ``silent`` (a mutated tile record decoded to other pixels without an error).
Writes fuzz.json and fuzz.md into OUT_FOLDER.
"""
import argparse
import faulthandler
import json
import os
import platform
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from .. import container
from ..codec.folders import model_rates
from ..container import MAGCReader
from .memory import synthetic_guidance, tiny_model

TIME_LIMIT_S = 60
MEMORY_LIMIT_BYTES = 3 << 30  # beyond what the parent already maps
TILE_SIZE = 64
HOSTILE_NUMBERS = (float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 0.0, -1.0, 300.0, 5e-324)
HOSTILE_INTEGERS = (0, 1, 2, 63, 64, 65, 255, 256, 4095, 4096, 65536, 1 << 24, 1 << 31, (1 << 63) - 1)
FAILURES = ("crash", "hang", "exception", "partial", "silent")


# -- seeds -----------------------------------------------------------------------------------------
def _seed_raster(path, width, height, dtype, crs, transform, nodata, seed):
    import rasterio
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([120 + 60 * np.sin(xx / (9.0 + c)) * np.cos(yy / 7.0) for c in range(3)])
    data = base + rng.normal(0, 8, base.shape)
    if np.issubdtype(np.dtype(dtype), np.integer):
        data = np.clip(data * (40 if dtype == "uint16" else 1) + (1000 if dtype == "uint16" else 0), 1,
                       np.iinfo(dtype).max).astype(dtype)
    else:
        data = data.astype(dtype)
    if nodata is not None:
        data[:, : height // 2, : width // 3] = nodata  # a fully invalid tile and a partly valid one
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": dtype, "crs": crs,
               "transform": transform, "nodata": nodata}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def make_seeds(folder, model):
    """Compress the seed rasters; returns [(name, .magc path, embedded guidance)]."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from .. import tiling
    custom = CRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=124.3 +k=0.9996 +x_0=500000 +y_0=0 +ellps=WGS84 +units=m")
    layouts = [
        ("utm-rgb", 192, 128, "uint8", CRS.from_epsg(32651), from_origin(617452.35, 1505228.1, 0.3, 0.3), None, False),
        ("wgs84-nodata-embedded", 192, 128, "uint8", CRS.from_epsg(4326),
         from_origin(124.2170715332031, 13.8, 2.68e-6, 2.68e-6), 0, True),
        ("custom-crs-uint16", 128, 128, "uint16", custom, from_origin(500000.0, 1500000.0, 0.5, 0.5), 0, False),
        ("rotated-float32-nan", 128, 64, "float32", None,
         Affine(0.5, 0.1, 100.0, 0.1, -0.5, 200.0), float("nan"), True),
    ]
    seeds = []
    for n, (name, width, height, dtype, crs, transform, nodata, embed) in enumerate(layouts):
        tif, magc = Path(folder) / f"{name}.tif", Path(folder) / f"{name}.magc"
        _seed_raster(tif, width, height, dtype, crs, transform, nodata, n)
        tiling.compress_raster(tif, magc, synthetic_guidance, model, tile_size=TILE_SIZE, embed_guidance=embed,
                               device="cpu")
        seeds.append((name, magc, embed))
    return seeds


# -- the file's structure --------------------------------------------------------------------------
class Parsed:
    """A .magc file cut into its parts, to mutate them and join them again with consistent lengths and CRCs."""

    def __init__(self, path):
        data = Path(path).read_bytes()
        with MAGCReader(path) as reader:
            self.version, self.fields = bytes(reader.version), reader.fields
            self.embedded = reader.head["embedded_guidance"]
            self.entries = [[e.length, e.mask_kind, struct.pack(">I", e.crc), e.fingerprint] for e in reader.index]
            self.records = [bytearray(data[e.offset:e.offset + e.length]) for e in reader.index]

    def field_spans(self):
        """(start, end) of each field the reader reads, in the fields' bytes."""
        spans, depth = [], [0]

        def recording(method):
            def wrapped(cursor, *args):
                start = cursor.pos
                depth[0] += 1
                try:
                    return method(cursor, *args)
                finally:
                    depth[0] -= 1
                    if not depth[0]:
                        spans.append((start, cursor.pos))
            return wrapped

        saved = {name: getattr(container._Cursor, name) for name in ("raw", "varint", "number")}
        try:
            for name, method in saved.items():
                setattr(container._Cursor, name, recording(method))
            container.parse_fields(self.fields, container.VERSION[1])
        finally:
            for name, method in saved.items():
                setattr(container._Cursor, name, method)
        return spans

    def join(self, fields=None, repair=True):
        fields = self.fields if fields is None else fields
        index = b""
        for (length, kind, crc, fp), record in zip(self.entries, self.records):
            length, crc = (len(record), struct.pack(">I", zlib.crc32(record))) if repair else (length, crc)
            index += container._varint(length << 2 | kind) + crc + fp
        header = container.SIGNATURE + bytes(self.version) + container._varint(len(fields)) + fields + index
        return header + struct.pack(">I", zlib.crc32(header)) + b"".join(bytes(r) for r in self.records)

    def payload_start(self, n):
        """Where tile n's codec payload starts in its record (after its mask and guidance)."""
        cursor = container._Cursor(bytes(self.records[n]), "record")
        if self.entries[n][1] == container.MASK_BITS:
            cursor.raw(cursor.varint(1 << 40, "mask"))
        if self.embedded:
            cursor.raw(cursor.varint(1 << 40, "guidance"))
        return cursor.pos


# -- mutations: each returns (bytes, kind); kind "tile" means the oracle expects no silent decode ----------
def _hostile_value(rng, old):
    if rng.random() < 0.4:
        return container._varint(rng.choice(HOSTILE_INTEGERS))
    if rng.random() < 0.6:
        return container._number(rng.choice(HOSTILE_NUMBERS))
    return bytes(rng.getrandbits(8) for _ in range(max(0, len(old) + rng.randint(-2, 2))))


def mutate_header_field(p, rng):
    start, end = rng.choice(p.field_spans())
    old = p.fields[start:end]
    return p.join(p.fields[:start] + _hostile_value(rng, old) + p.fields[end:]), "header"


def mutate_header_bytes(p, rng):
    fields = bytearray(p.fields)
    for _ in range(rng.randint(1, 3)):
        fields[rng.randrange(len(fields))] = rng.getrandbits(8)
    return p.join(bytes(fields)), "header"


def mutate_crs(p, rng):
    """A CRS field of garbage WKT or an EPSG code that does not exist, in place of the seed's."""
    flags = p.fields[0] & ~(container.CRS_MASK << container.CRS_SHIFT)
    if rng.random() < 0.5:
        wkt = rng.choice([b"PROJCS[nonsense", b"GEOGCS[\"x\",DATUM[\"y\"]]", b"\xff\xfe", b"[" * 100000])
        packed = zlib.compress(wkt)
        field = container._varint(len(packed)) + packed
        flags |= container.CRS_WKT << container.CRS_SHIFT
    else:
        field = container._varint(rng.choice([0, 1, 99999, 32600, 1 << 30]))
        flags |= container.CRS_EPSG << container.CRS_SHIFT
    spans = p.field_spans()
    crs_span = _crs_span(p, spans)
    if crs_span is None:
        return mutate_header_field(p, rng)
    start, end = crs_span
    return p.join(bytes([flags]) + p.fields[1:start] + field + p.fields[end:]), "header"


def _crs_span(p, spans):
    """The span of the CRS field: the bytes between the last stretch/band field and the first transform number."""
    kind = (p.fields[0] >> container.CRS_SHIFT) & container.CRS_MASK
    skip = 5 + (3 if p.fields[0] & container.FLAG_BANDS else 0) + (6 if p.fields[0] & container.FLAG_STRETCH else 0)
    if kind == container.CRS_NONE:
        return (spans[skip][0], spans[skip][0]) if len(spans) > skip else None
    if kind == container.CRS_EPSG:
        return spans[skip]
    return spans[skip][0], spans[skip + 1][1]  # its length, then its bytes


def mutate_index_length(p, rng):
    """A tile's length moved by a few bytes, its neighbour's the other way: CRCs made to match."""
    n = rng.randrange(len(p.records))
    shift = rng.choice([-3, -2, -1, 1, 2, 3])
    if n + 1 < len(p.records) and rng.random() < 0.7:
        joined = p.records[n] + p.records[n + 1]
        cut = min(max(0, len(p.records[n]) + shift), len(joined))
        p.records[n], p.records[n + 1] = joined[:cut], joined[cut:]
    elif shift < 0:
        p.records[n] = p.records[n][:shift]
    else:
        p.records[n] += bytes(rng.getrandbits(8) for _ in range(shift))
    return p.join(), "tile"


def mutate_mask_kind(p, rng):
    n = rng.randrange(len(p.entries))
    p.entries[n][1] = rng.choice([k for k in range(4) if k != p.entries[n][1]])
    return p.join(), "tile"


def mutate_record_lengths(p, rng):
    """A record's mask or guidance length off by a little: it steals from, or lends to, what follows."""
    candidates = [n for n in range(len(p.records))
                  if p.entries[n][1] == container.MASK_BITS or p.embedded]
    if not candidates:
        return mutate_stream(p, rng)
    n = rng.choice(candidates)
    record = bytes(p.records[n])
    cursor = container._Cursor(record, "record")
    length = cursor.varint(1 << 40, "length")
    new = max(0, length + rng.choice([-2, -1, 1, 2, 64]))
    p.records[n] = bytearray(container._varint(new) + record[cursor.pos:])
    return p.join(), "tile"


def mutate_stream(p, rng):
    """A tile's entropy-coded stream cut, extended, flipped or replaced, its CRC and length made to match."""
    live = [n for n in range(len(p.records)) if p.entries[n][1] != container.MASK_ALL_NODATA]
    n = rng.choice(live)
    start = p.payload_start(n) + 3  # past the raw mean colour
    record = p.records[n]
    what = rng.choice(["truncate", "append", "flip", "random", "empty", "words"])
    if what == "truncate":
        p.records[n] = record[:rng.randrange(start, len(record))]
    elif what == "append":
        p.records[n] = record + bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 3, 4, 8, 64])))
    elif what == "flip" and len(record) > start:
        for _ in range(rng.randint(1, 4)):
            record[rng.randrange(start, len(record))] ^= 1 << rng.randrange(8)
    elif what == "random":
        p.records[n] = record[:start] + bytearray(rng.getrandbits(8) for _ in range(rng.randint(0, 2 * len(record))))
    elif what == "words":  # whole 32-bit words: passes the length check, only the decoder can tell
        p.records[n] = record[:start] + bytearray(rng.getrandbits(8) for _ in range(4 * rng.randint(1, 64)))
    else:
        p.records[n] = record[:start]
    return p.join(), "tile"


def mutate_colour(p, rng):
    """A tile's raw mean colour: any 3 bytes are a valid colour, so another value is a valid file."""
    live = [n for n in range(len(p.records)) if p.entries[n][1] != container.MASK_ALL_NODATA]
    n = rng.choice(live)
    p.records[n][p.payload_start(n) + rng.randrange(3)] ^= 1 << rng.randrange(8)
    return p.join(), "valid"


def mutate_plain(p, rng):
    """Plain corruption, no checksum repaired: flipped bytes, a cut, appended bytes."""
    data = bytearray(p.join())
    what = rng.choice(["flip", "cut", "append", "zero"])
    if what == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif what == "cut":
        data = data[:rng.randrange(len(data))]
    elif what == "append":
        data += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    else:
        start = rng.randrange(len(data))
        data[start:start + rng.randint(1, 32)] = bytes(min(32, len(data) - start))
    return bytes(data), "plain"


MUTATIONS = {"header-field": (mutate_header_field, 3), "header-bytes": (mutate_header_bytes, 1),
             "crs": (mutate_crs, 1), "index-length": (mutate_index_length, 2), "mask-kind": (mutate_mask_kind, 1),
             "record-lengths": (mutate_record_lengths, 2), "stream": (mutate_stream, 6),
             "colour": (mutate_colour, 1), "plain": (mutate_plain, 3)}


# -- running one case in a child -------------------------------------------------------------------
def decode_case(path, out_dir, model):
    """Open and decode one file; returns (outcome, detail, pixels digest or None)."""
    from .. import tiling
    from ..codec.errors import MAGCError
    try:
        with MAGCReader(path) as reader:
            reader.info()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tiling.decompress_raster(path, Path(out_dir) / "out.tif", None, model, steps=0, device="cpu")
    except MAGCError as exc:
        return "refused", str(exc)[:300], None
    except Exception as exc:  # noqa: BLE001 (what the fuzzer is looking for)
        return "exception", "".join(traceback.format_exception_only(type(exc), exc))[-600:], None
    import rasterio
    with rasterio.open(Path(out_dir) / "out.tif") as out:
        digest = zlib.crc32(out.read().tobytes()) ^ zlib.crc32(out.dataset_mask().tobytes()) << 1
    return "decoded", "", digest


def run_forked(fn, time_limit, memory_limit):
    """fn() in a forked child under the limits; returns its result, or ("crash"|"hang", detail, None)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        faulthandler.disable()  # a crash is the parent's to report, without a dump of every thread
        code = 0
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
            result = fn()
        except BaseException as exc:  # noqa: BLE001 (reported to the parent, then the child ends)
            result, code = ("exception", f"{type(exc).__name__}: {exc}"[:600], None), 1
        with os.fdopen(write_end, "w") as pipe:
            json.dump(result, pipe)
        os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + time_limit
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return "hang", f"over {time_limit} s", None
        time.sleep(0.005)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    if os.WIFSIGNALED(status) or not text:
        return "crash", f"status {status}", None
    return tuple(json.loads(text))


def _address_space():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def classify(kind, result, reference, out_dir):
    outcome, detail, digest = result
    left = sorted(os.listdir(out_dir))
    if outcome == "refused" and left:
        return "partial", f"{detail} | left: {left}"
    if outcome != "decoded":
        return outcome, detail
    if digest == reference:
        return "same", ""
    if kind in ("header", "valid"):
        return "valid", ""
    return "silent", "decoded to other pixels without an error"


def fuzz(out_folder, cases=5000, model=None, seed=0, time_limit=TIME_LIMIT_S, log=print):
    """Run the cases; returns the report dict (also written as fuzz.json and fuzz.md in out_folder)."""
    import torch
    from .. import tiling
    torch.set_num_threads(1)  # a forked child must not inherit a thread pool
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    shipped = Path(__file__).resolve().parent.parent / "models" / "compact"
    model_dir = model or (str(shipped) if (shipped / "config.json").is_file() else "tiny")
    with tempfile.TemporaryDirectory(prefix="magc-fuzz-") as work:
        work = Path(work)
        model_dir = tiny_model(work / "tiny_model") if model_dir == "tiny" else model_dir
        loaded = tiling.load_model(model_dir, model_rates(model_dir)[0], "cpu")
        seeds = make_seeds(work, loaded)
        memory_limit = _address_space() + MEMORY_LIMIT_BYTES
        references = {}
        for name, path, _ in seeds:
            out = work / f"ref-{name}"
            out.mkdir()
            outcome, detail, digest = run_forked(lambda: decode_case(path, out, loaded), time_limit, memory_limit)
            if outcome != "decoded":
                raise RuntimeError(f"the seed {name} does not decode: {outcome} {detail}")
            references[name] = digest
        rng = random.Random(seed)
        names, weights = zip(*((n, w) for n, (_, w) in MUTATIONS.items()))
        counts, failures, start = Counter(), [], time.time()
        for case in range(cases):
            name, path, _ = seeds[case % len(seeds)]
            mutation = rng.choices(names, weights)[0]
            data, kind = MUTATIONS[mutation][0](Parsed(path), rng)
            case_file = work / "case.magc"
            case_file.write_bytes(data)
            out = work / "case-out"
            out.mkdir()
            result = run_forked(lambda: decode_case(case_file, out, loaded), time_limit, memory_limit)
            outcome, detail = classify(kind, result, references[name], out)
            counts[(mutation, outcome)] += 1
            if outcome in FAILURES:
                failures.append({"case": case, "seed": name, "mutation": mutation, "outcome": outcome,
                                 "detail": detail})
                (out_folder / f"failure-{case}.magc").write_bytes(data)
            for leftover in out.iterdir():
                leftover.unlink()
            out.rmdir()
            if (case + 1) % 250 == 0:
                log(f"{case + 1} of {cases} cases, {len(failures)} failures, {time.time() - start:.0f} s")
    report = {"cases": cases, "seed": seed, "seconds": round(time.time() - start, 1), "model": str(model_dir),
              "time_limit_s": time_limit, "memory_limit_extra_bytes": MEMORY_LIMIT_BYTES,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "counts": {f"{m}/{o}": n for (m, o), n in sorted(counts.items())},
              "outcomes": dict(Counter(o for (_, o), n in counts.items() for _ in range(n))),
              "failures": failures}
    (out_folder / "fuzz.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_folder / "fuzz.md").write_text(markdown(report))
    return report


def markdown(report):
    mutations = sorted({k.split("/")[0] for k in report["counts"]})
    outcomes = ["refused", "same", "valid", *FAILURES]
    rows = ["| mutation | " + " | ".join(outcomes) + " |", "|---" * (len(outcomes) + 1) + "|"]
    for m in mutations:
        rows.append(f"| {m} | " + " | ".join(str(report["counts"].get(f"{m}/{o}", 0)) for o in outcomes) + " |")
    total = {o: report["outcomes"].get(o, 0) for o in outcomes}
    rows.append("| **all** | " + " | ".join(f"**{total[o]}**" for o in outcomes) + " |")
    return (f"# .magc fuzzing\n\n`python -m magc_plugin.benchmarks.fuzz OUT --cases {report['cases']}`: "
            f"{report['cases']} cases in {report['seconds']} s on {report['machine']}, model {report['model']}, "
            f"each in a forked child limited to {report['time_limit_s']} s and "
            f"{report['memory_limit_extra_bytes'] >> 30} GiB more address space than its parent.\n\n"
            + "\n".join(rows) + "\n\nPass: refused (MAGCError), same (the seed's pixels), valid (another value the "
            "format allows). Fail: " + ", ".join(FAILURES) + ".\n")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m magc_plugin.benchmarks.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder for fuzz.json, fuzz.md and the failing files")
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--model", help="model folder, or 'tiny' for a tiny random one (default: models/compact if "
                        "installed, else a tiny one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = fuzz(args.out, args.cases, args.model, args.seed)
    print(markdown(report))
    return 1 if any(report["outcomes"].get(o) for o in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
