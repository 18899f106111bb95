"""SIGTERM during a CLI run, for real: the partial output is removed, exit status 143, one line on stderr."""
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from magc_plugin import tiling

ROOT = Path(__file__).resolve().parents[1]


def write_tif(path, side):
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=3, dtype="uint8",
                       crs="EPSG:32737", transform=from_origin(500000.0, 9330000.0, 0.5, 0.5)) as dst:
        dst.write(rng.integers(40, 200, (3, side, side), dtype=np.uint8))
    return path


def terminate_after(argv, marker, ready=lambda: True, timeout=300):
    """Run `python -m magc_plugin argv` with stderr on a terminal (so it shows its progress), send SIGTERM once
    `marker` is printed and ready() holds. Returns (whether it was sent, exit status, what stderr showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "magc_plugin", *map(str, argv)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    shown, sent, deadline = b"", False, time.time() + timeout
    try:
        while time.time() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the process closed its terminal
                    break
                if not chunk:
                    break
                shown += chunk
            if not sent and marker in shown and ready():
                proc.send_signal(signal.SIGTERM)
                sent = True
        return sent, proc.wait(timeout=60), shown.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_sigterm_while_compressing_leaves_nothing(tiny_model_dir, tmp_path):
    src = write_tif(tmp_path / "in.tif", 1024)
    sent, code, shown = terminate_after(["compress", src, tmp_path / "a.magc", "--tile-size", 64, "--model",
                                         tiny_model_dir, "--device", "cpu"], b"Compressed tile 1 of")
    assert sent and code == 128 + signal.SIGTERM, shown
    assert shown.rstrip().endswith("magc: terminated; nothing was written.") and "Traceback" not in shown
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_sigterm_while_decompressing_leaves_nothing(tiny_model, tiny_model_dir, tmp_path):
    tiling.compress_raster(write_tif(tmp_path / "in.tif", 512), tmp_path / "a.magc", None, tiny_model, tile_size=64)
    (tmp_path / "in.tif").unlink()

    def partial_file():
        return any(p.name.endswith(".part.tif") for p in tmp_path.iterdir())
    sent, code, shown = terminate_after(["decompress", tmp_path / "a.magc", tmp_path / "out.tif", "--steps", 4,
                                         "--model", tiny_model_dir, "--device", "cpu"], b"Decoded tile 1 of",
                                        partial_file)
    assert sent and code == 128 + signal.SIGTERM, shown
    assert shown.rstrip().endswith("magc: terminated; nothing was written.") and "Traceback" not in shown
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.magc"]


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from magc_plugin.codec.model import MAGCModel
    return MAGCModel.from_pretrained(tiny_model_dir, device="cpu")
