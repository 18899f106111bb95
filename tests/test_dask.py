"""Dask scale-out on loopback: a 2-worker local cluster codes a folder byte-identically to the in-process
path, survives a worker killed mid-run, fails a bad raster alone; an absent scheduler fails fast."""
import os
import signal
import time

import numpy as np
import pytest
import rasterio

from magc_plugin import container, distributed, tiling
from magc_plugin.codec.errors import MAGCError
from test_tiling import rgb, stripes, write_tif

pytest.importorskip("distributed")

TILE = 128
STEPS = 2


@pytest.fixture
def client(dask_client):
    return dask_client


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three small rasters: several tiles with blending, odd sizes with nodata, 16-bit."""
    root = tmp_path_factory.mktemp("rasters")
    write_tif(root / "a.tif", rgb(300, 200))
    odd = rgb(131, 67, seed=1)
    odd[:, :20, :30] = 0
    write_tif(root / "b.tif", odd, nodata=0)
    write_tif(root / "c.tif", rgb(96, 80, seed=2).astype(np.uint16) * 40 + 1000)
    return root


@pytest.fixture(scope="module")
def in_process(folder, tiny_model_dir, tmp_path_factory):
    """The single-process .magc files and decoded GeoTIFFs of `folder`."""
    out = tmp_path_factory.mktemp("in_process")
    for src in sorted(folder.glob("*.tif")):
        tiling.compress_raster(src, out / f"{src.stem}.magc", stripes, tiny_model_dir, tile_size=TILE, device="cpu")
        tiling.decompress_raster(out / f"{src.stem}.magc", out / f"{src.stem}.tif", stripes, tiny_model_dir,
                                 steps=STEPS, device="cpu")
    return out


def assert_same_rasters(a, b):
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert (x.crs, x.transform, x.nodata, x.dtypes) == (y.crs, y.transform, y.nodata, y.dtypes)
        assert (x.read() == y.read()).all() and (x.dataset_mask() == y.dataset_mask()).all()
    assert a.read_bytes() == b.read_bytes()


def round_trip(client, folder, model, out, progress=None):
    packed = distributed.batch_compress([folder], out / "magc", stripes, str(model), client, tile_size=TILE,
                                        device="cpu", progress=progress)
    decoded = distributed.batch_decompress([out / "magc"], out / "tif", stripes, str(model), client, steps=STEPS,
                                           device="cpu", progress=progress)
    return packed, decoded


def test_folder_round_trip_is_byte_identical(client, folder, in_process, tiny_model_dir, tmp_path):
    seen = []
    packed, decoded = round_trip(client, folder, tiny_model_dir, tmp_path, lambda f, m: seen.append(f))
    errors = [f["error"] for f in packed["files"] + decoded["files"] if "error" in f]
    assert (packed["succeeded"], packed["failed"], packed["workers"]) == (3, 0, 2), errors
    assert (decoded["succeeded"], decoded["failed"]) == (3, 0), errors
    for name in ("a", "b", "c"):
        assert (tmp_path / "magc" / f"{name}.magc").read_bytes() == (in_process / f"{name}.magc").read_bytes()
        assert_same_rasters(tmp_path / "tif" / f"{name}.tif", in_process / f"{name}.tif")
    assert seen[-1] == pytest.approx(1.0) and max(seen) <= 1.0 + 1e-9


def test_a_killed_worker_changes_nothing(client, folder, in_process, tiny_model_dir, tmp_path):
    """A worker busy with tiles is killed (SIGKILL) mid-decode; its tasks run again elsewhere."""
    killed = []

    def kill_a_busy_worker(fraction, message):
        if killed or not 0 < fraction < 1 or "Decoded" not in message:
            return
        busy = [addr for addr, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    packed, decoded = round_trip(client, folder, tiny_model_dir, tmp_path, kill_a_busy_worker)
    assert killed, "no worker was busy when the decode reported progress"
    assert decoded["failed"] == 0 and packed["failed"] == 0
    for name in ("a", "b", "c"):
        assert_same_rasters(tmp_path / "tif" / f"{name}.tif", in_process / f"{name}.tif")
    client.wait_for_workers(2, timeout=120)  # the nanny restarts the killed worker


def test_a_bad_raster_fails_alone(client, folder, tiny_model_dir, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.tif").write_bytes((folder / "b.tif").read_bytes())
    (tmp_path / "in" / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    report = distributed.batch_compress([tmp_path / "in"], tmp_path / "magc", None, str(tiny_model_dir), client,
                                        tile_size=TILE, device="cpu")
    by_name = {os.path.basename(f["input"]): f for f in report["files"]}
    assert (report["succeeded"], report["failed"]) == (1, 1)
    assert "Cannot read the raster" in by_name["broken.tif"]["error"] and by_name["broken.tif"]["output"] is None
    assert by_name["good.tif"]["report"]["tiles"] == 2
    assert sorted(p.name for p in (tmp_path / "magc").iterdir()) == ["good.magc"]

    # A tile that passes its checksum but cannot be decoded fails on a worker: that file alone.
    good = tmp_path / "magc" / "good.magc"
    damaged = tmp_path / "magc" / "damaged.magc"
    with container.MAGCReader(good) as reader:
        records = [reader.read_tile(n) for n in range(len(reader.index))]
        with container.MAGCWriter(damaged, reader.head, reader.georef, reader.model) as writer:
            records[1].payload = b"\x01"
            for record, entry in zip(records, reader.index):
                writer.add_tile(record, entry.fingerprint)
            writer.commit()
    report = distributed.batch_decompress([tmp_path / "magc"], tmp_path / "tif", None, str(tiny_model_dir), client,
                                          steps=0, device="cpu")
    by_name = {os.path.basename(f["input"]): f for f in report["files"]}
    assert (report["succeeded"], report["failed"]) == (1, 1)
    assert by_name["damaged.magc"]["error"].startswith("Tile (1,0) of the .magc file: ")
    assert sorted(p.name for p in (tmp_path / "tif").iterdir()) == ["good.tif"]


def test_skip_damaged_finds_a_bad_stream_on_the_workers(client, folder, tiny_model_dir, tmp_path):
    """A tile that passes its checksum but whose stream cannot be decoded: written as nodata, the rest decoded."""
    tiling.compress_raster(folder / "b.tif", tmp_path / "good.magc", None, tiny_model_dir, tile_size=64, device="cpu")
    (tmp_path / "in").mkdir()
    with container.MAGCReader(tmp_path / "good.magc") as reader:
        records = [reader.read_tile(n) for n in range(len(reader.index))]
        records[1].payload = records[1].payload[:4]
        with container.MAGCWriter(tmp_path / "in" / "damaged.magc", reader.head, reader.georef,
                                  reader.model) as writer:
            for record, entry in zip(records, reader.index):
                writer.add_tile(record, entry.fingerprint)
            writer.commit()
    report = distributed.batch_decompress([tmp_path / "in"], tmp_path / "tif", None, str(tiny_model_dir), client,
                                          steps=0, device="cpu", skip_damaged=True)
    assert [t[:2] for t in report["files"][0]["report"]["damaged_tiles"]] == [(1, 0)]
    with rasterio.open(tmp_path / "tif" / "damaged.tif") as out:
        mask = out.dataset_mask()
    assert (mask[:64, 64:128] == 0).all() and mask[20:, :30].all() and mask[64:].all()


def test_cancel_cancels_the_futures(client, folder, tiny_model_dir, tmp_path):
    calls = []
    with pytest.raises(tiling.CancelledByUser):
        distributed.batch_compress([folder], tmp_path, stripes, str(tiny_model_dir), client, tile_size=64,
                                   device="cpu", cancel=lambda: calls.append(1) or len(calls) > 3)
    assert list(tmp_path.iterdir()) == []
    deadline = time.time() + 30
    while any(client.processing().values()) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(client.processing().values())


def test_results_are_collected_whatever_the_poll_interval(client, monkeypatch):
    """Waiting with Future.result(timeout=...) fails spuriously when the timeout is short for the
    event loop (dask/distributed#8514); the runner must not."""
    monkeypatch.setattr(distributed, "POLL_S", 0.001)
    runner = distributed.DaskRunner(client, distributed.ModelSpec("unused", None, "cpu"))
    futures = [client.submit(time.sleep, 0.01 * (i % 3), pure=False) for i in range(40)]
    assert [runner.result(f) for f in futures] == [None] * 40


def test_scheduler_that_does_not_answer_fails_fast():
    start = time.time()
    with pytest.raises(MAGCError, match="No Dask scheduler answers at tcp://127.0.0.1:9 .*dask scheduler"):
        distributed.connect("tcp://127.0.0.1:9", timeout=2)
    assert time.time() - start < 15


def test_model_must_be_a_folder_or_preset(client, tiny_model_dir, folder, tmp_path):
    from magc_plugin.codec.model import MAGCModel
    model = MAGCModel.from_pretrained(tiny_model_dir, device="cpu")
    with pytest.raises(MAGCError, match="folder or a preset name"):
        tiling.compress_raster(folder / "a.tif", tmp_path / "a.magc", None, model,
                               engine=distributed.DaskEngine(client))


def test_two_inputs_for_one_output_refused(tmp_path):
    with pytest.raises(MAGCError, match="would both be written to a.magc"):
        distributed.output_paths([tmp_path / "x" / "a.tif", tmp_path / "y" / "a.png"], tmp_path, ".magc")


def test_local_workers_run_the_python_given(folder, in_process, tiny_model_dir, tmp_path, monkeypatch):
    """Inside QGIS sys.executable is QGIS: the local workers run a Python of their own, given to them alone
    (the process-wide multiprocessing executable is left as it is)."""
    import multiprocessing.spawn
    import sys
    executable = multiprocessing.spawn.get_executable()
    with distributed.connect(workers=1, python=sys.executable) as client:
        assert list(client.run(lambda: sys.executable).values()) == [sys.executable]
        distributed.batch_compress([folder / "c.tif"], tmp_path, stripes, str(tiny_model_dir), client,
                                   tile_size=TILE, device="cpu")
    assert (tmp_path / "c.magc").read_bytes() == (in_process / "c.magc").read_bytes()
    assert multiprocessing.spawn.get_executable() == executable
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis")
    assert distributed._python_for_workers() and "python" in os.path.basename(distributed._python_for_workers())
