"""Compress and decompress rasters on a Dask cluster, with the tiling core's own tile functions.

::

    driver (this process)                                  Dask workers, one model each
    +-------------------------------------+  jobs          +------------------------------+
    | read tiles + guidance (the map)     | ------------>  | encode_tile                  |
    | keep the file order, a few ahead    |                | decode_tile                  |
    | write .magc / GeoTIFF (same writers)| <------------  | decode_window                |
    +-------------------------------------+  results       +------------------------------+

The driver runs :func:`magc_plugin.tiling.compress_raster` / ``decompress_raster`` with a
:class:`DaskEngine`: they read, order and write exactly as on one machine, so the .magc files
are byte-identical to the single-process ones and the GeoTIFFs equal up to PyTorch's CPU float
noise (see docs/ARCHITECTURE.md). Workers load the model once (by folder or
preset name, at the file's rate) and keep it. A worker that dies loses only tasks, which
the scheduler runs again elsewhere (tiles' y_hat are recomputed from their lineage);
the output files are written by the driver alone, through temporary files. The guidance
callable stays in the driver (QGIS layers cannot travel), so workers need neither the
map nor QGIS: only this package, PyTorch and the model.

Several rasters are processed at a time (FILES_IN_FLIGHT), each in its own driver
thread; one that fails (unreadable, corrupt, wrong model) is reported and the others go
on.
"""
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import tiling
from .codec.errors import MAGCError

CONNECT_TIMEOUT_S = 5
WORKERS_START_TIMEOUT_S = 120  # local worker processes import PyTorch before they join
POLL_S = 0.02               # how often a driver waiting on a result checks for it and for cancel
FILES_IN_FLIGHT = 2         # rasters coded at a time; each holds a few tiles and one strip in the driver
TASKS_PER_THREAD = 2        # tasks submitted ahead per worker thread, so no worker waits for the driver
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".vrt", ".png")


# -- on the workers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the model itself."""
    model: str               # a model folder (as the workers see it) or a shipped preset name
    rate: str                # None: the model's default rate
    device: str


_models = {}
_models_lock = threading.Lock()


def worker_model(spec):
    """The model of `spec` in this worker process: loaded on first use, then kept."""
    with _models_lock:
        if spec not in _models:
            model = tiling.load_model(spec.model, spec.rate, spec.device)
            # The default rate (None, when compressing) and its name (read from a file) share one model.
            _models[spec] = _models.setdefault(ModelSpec(spec.model, model.rate, spec.device), model)
        return _models[spec]


def run_with_model(fn, spec, *args):
    """The Dask task: fn(model, *args) with this worker's model."""
    return fn(worker_model(spec), *args)


def model_identity(model):
    return model.identity()


# -- in the driver ---------------------------------------------------------------------------------
class DaskRunner:
    """Submits the tile functions to the cluster (see tiling.LocalRunner for the protocol)."""
    runs_here = False

    def __init__(self, client, spec, resources=None):
        self.client, self.spec, self.resources = client, spec, resources
        self.lookahead = TASKS_PER_THREAD * max(1, sum(client.nthreads().values()))

    def submit(self, fn, *args):
        # pure=False: every call is its own task, even for two identical tiles.
        return self.client.submit(run_with_model, fn, self.spec, *args, pure=False, resources=self.resources)

    def identity(self):
        return self.result(self.submit(model_identity))

    def result(self, future, cancel=None):
        # Polls done() rather than result(timeout=...): under load the latter can fail with a spurious
        # UnboundLocalError when its timeout races the task's completion (dask/distributed#8514).
        while not future.done():
            tiling.check_cancel(cancel)
            time.sleep(POLL_S)
        return future.result()

    def cancel(self, futures):
        if futures:
            self.client.cancel(list(futures))


class DaskEngine:
    """Where compress_raster / decompress_raster run their tiles: ``engine=DaskEngine(client)``.

    resources: what each task needs of a worker's declared resources, e.g. {"GPU": 1}
    (workers started with ``--resources GPU=1``).
    """

    def __init__(self, client, resources=None):
        self.client, self.resources = client, resources

    def runner(self, model, rate, device):
        if not isinstance(model, (str, os.PathLike)):
            raise MAGCError("On a Dask cluster give the model as a folder or a preset name, not a loaded model: "
                            "each worker loads it.")
        folder = Path(model)
        name = str(folder.resolve()) if folder.exists() else str(model)  # workers may run in another folder
        return DaskRunner(self.client, ModelSpec(name, rate, device), self.resources)


def connect(scheduler=None, workers=None, timeout=CONNECT_TIMEOUT_S, python=None):
    """A Dask client: to the scheduler at `scheduler` (``tcp://host:8786``), else to a new local cluster
    of `workers` processes (default: one per CPU core) of one thread each, on the loopback interface.
    The local workers run `python` (default: this Python, or inside QGIS the python3 on the PATH).

    Use it as a context manager; closing the client closes a local cluster it started.
    """
    from distributed import Client
    if scheduler:
        try:
            return Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise MAGCError(f"No Dask scheduler answers at {scheduler} within {timeout} s ({exc}). Start one there "
                            f"('dask scheduler', then 'dask worker {scheduler}' on each machine), check the address "
                            "and the firewall, or give no address to use the CPU cores of this machine.") from exc
    workers = int(workers or os.cpu_count() or 1)
    python = python or _python_for_workers()
    if python is None:
        return Client(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None)
    client = _client_closing(_python_cluster(python, workers))
    client.wait_for_workers(workers, timeout=WORKERS_START_TIMEOUT_S)
    return client


def _python_for_workers():
    """None when this process is a Python (its worker processes start as usual), else the python3 on the PATH:
    inside QGIS, sys.executable is the QGIS program, which cannot run a worker."""
    if Path(sys.executable).name.lower().startswith("python"):
        return None
    python = shutil.which("python3") or shutil.which("python")
    if python is None:
        raise MAGCError("No Python found for the local Dask workers: set 'Python of local Dask workers' in "
                        "Processing > Options > Providers > MAGC to a Python with PyTorch and MAGC's requirements.")
    return python


def _python_cluster(python, workers):
    """A local cluster whose workers are `python -m dask spec` processes, one thread each: the executable goes
    to these processes only (multiprocessing.set_executable would change it for all of QGIS)."""
    import asyncio

    from distributed import Scheduler, SpecCluster
    from distributed.deploy.subprocess import SubprocessWorker

    # The workers unpickle this package's functions: they import it from where this process does.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")) if p))

    class PythonWorker(SubprocessWorker):
        async def _start(self):
            spec = json.dumps({"cls": self.worker_class, "opts": self.worker_kwargs})
            self.process = await asyncio.create_subprocess_exec(python, "-m", "dask", "spec", self.scheduler,
                                                                "--spec", spec, env=env)

    worker = {"cls": PythonWorker, "options": {"worker_kwargs": {"nthreads": 1, "host": "127.0.0.1"}}}
    return SpecCluster(scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False}},
                       workers={i: worker for i in range(workers)}, name="MAGC local cluster")


def _client_closing(cluster):
    """A client that closes the cluster it was made for, as Client(n_workers=...) does."""
    from distributed import Client

    class ClusterClosingClient(Client):
        def close(self, *args, **kwargs):
            try:
                return super().close(*args, **kwargs)
            finally:
                cluster.close()

    return ClusterClosingClient(cluster)


def find_rasters(inputs, suffixes=RASTER_SUFFIXES):
    """The files named in `inputs`, and the files with one of `suffixes` in the folders named (not recursive)."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        else:
            found.append(item)
    return list(dict.fromkeys(found))


def output_paths(sources, folder, suffix):
    """{source: folder/<source name><suffix>}, refusing two sources that would write the same file."""
    outputs = {src: Path(folder) / f"{src.stem}{suffix}" for src in sources}
    seen = {}
    for src, out in outputs.items():
        if out in seen:
            raise MAGCError(f"{seen[out].name} and {src.name} would both be written to {out.name}: rename one, or "
                            "code them in two runs.")
        seen[out] = src
    return outputs


class _OneAtATime:
    """A guidance callable called by one driver thread at a time (QGIS layers are not thread-safe)."""

    def __init__(self, guidance):
        self.guidance, self.lock = guidance, threading.Lock()

    def __call__(self, *args):
        with self.lock:
            return self.guidance(*args)


def _run_batch(inputs, input_suffixes, output_folder, output_suffix, code_one, client, guidance, resources,
               progress, cancel):
    """Code every source with code_one(src, dst, guidance, engine, progress); a failure stops that source only."""
    start = time.time()
    sources = find_rasters(inputs, input_suffixes)
    if not sources:
        raise MAGCError(f"Nothing to code in {', '.join(map(str, inputs))}: give files, or folders holding "
                        f"{' '.join(input_suffixes)} files.")
    folder = Path(output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    outputs = output_paths(sources, folder, output_suffix)
    engine = DaskEngine(client, resources)
    guidance = _OneAtATime(guidance) if guidance is not None else None
    # Progress: each file's fraction of finished tiles, weighted by its size on disk (a proxy for its pixels).
    weights = {src: max(1, src.stat().st_size) if src.is_file() else 1 for src in sources}
    fractions = {}
    lock = threading.Lock()

    def file_progress(src):
        def report(fraction, message):
            with lock:
                fractions[src] = fraction
                total = sum(weights[s] * f for s, f in fractions.items()) / sum(weights.values())
                if progress is not None:
                    progress(total, f"{src.name}: {message}")
        return report

    def one(src):
        tiling.check_cancel(cancel)
        entry = {"input": str(src), "output": str(outputs[src])}
        try:
            entry["report"] = code_one(src, outputs[src], guidance, engine, file_progress(src))
        except tiling.CancelledByUser:
            raise
        except Exception as exc:  # noqa: BLE001 (whatever breaks one raster must not stop the others)
            reason = str(exc) if isinstance(exc, MAGCError) else f"{type(exc).__name__}: {exc}"
            entry.update(output=None, error=reason)
        file_progress(src)(1.0, "failed" if "error" in entry else "done")
        return entry

    with ThreadPoolExecutor(min(FILES_IN_FLIGHT, len(sources))) as pool:
        files = list(pool.map(one, sources))
    failed = sum("error" in f for f in files)
    return {"files": files, "succeeded": len(files) - failed, "failed": failed,
            "workers": len(client.nthreads()), "seconds": time.time() - start}


def batch_compress(inputs, output_folder, guidance, model, client, *, tile_size=tiling.DEFAULT_TILE_SIZE,
                   embed_guidance=False, rate=None, device="auto", resources=None, progress=None, cancel=None):
    """Compress rasters (files, or the rasters of folders) to output_folder/<name>.magc on a Dask cluster.

    guidance and model as for tiling.compress_raster (model: a folder or preset name, as the
    workers see it). Returns {"files": [{"input", "output", "report" or "error"}], "succeeded",
    "failed", "workers", "seconds"}; raises only for a cancel or when nothing can start.
    """
    def code_one(src, dst, file_guidance, engine, file_progress):
        return tiling.compress_raster(src, dst, file_guidance, model, tile_size=tile_size,
                                      embed_guidance=embed_guidance, rate=rate, device=device, engine=engine,
                                      progress=file_progress, cancel=cancel)
    return _run_batch(inputs, RASTER_SUFFIXES, output_folder, ".magc", code_one, client, guidance, resources,
                      progress, cancel)


def batch_decompress(inputs, output_folder, guidance, model, client, *, steps=20, seed=0, strict_guidance=False,
                     skip_damaged=False, device="auto", resources=None, progress=None, cancel=None):
    """Decompress .magc files (or those of folders) to output_folder/<name>.tif on a Dask cluster.

    As batch_compress; each file is decoded at its own rate, with the seed and steps given.
    """
    def code_one(src, dst, file_guidance, engine, file_progress):
        report = tiling.decompress_raster(src, dst, file_guidance, model, steps=steps, seed=seed,
                                          strict_guidance=strict_guidance, skip_damaged=skip_damaged,
                                          device=device, engine=engine, progress=file_progress, cancel=cancel)
        report["guidance_mismatch"] = [list(t) for t in report["guidance_mismatch"]]
        return report
    return _run_batch(inputs, (".magc",), output_folder, ".tif", code_one, client, guidance, resources, progress,
                      cancel)
