"""The structure-aware fuzzer on a few hundred cases (the full run's figures are in docs/bench/fuzz.md)."""
import pytest

from magc_plugin.benchmarks import fuzz


def test_a_few_hundred_crafted_files_are_refused_or_decoded_never_worse(tmp_path):
    report = fuzz.fuzz(tmp_path, cases=300, model="tiny", seed=1, log=lambda _: None)
    assert {o: report["outcomes"].get(o, 0) for o in fuzz.FAILURES} == dict.fromkeys(fuzz.FAILURES, 0), \
        report["failures"][:5]
    refused = {key.split("/")[0] for key, n in report["counts"].items() if key.endswith("/refused") and n}
    # every kind of mutation reached a check that refused it (none only lands on harmless bytes)
    assert refused >= set(fuzz.MUTATIONS) - {"colour"}, refused
    assert report["outcomes"]["refused"] > 0.8 * report["cases"]


def test_a_crashing_or_hanging_child_is_reported_not_fatal():
    import os
    import signal
    assert fuzz.run_forked(lambda: os.kill(os.getpid(), signal.SIGSEGV), 10, 1 << 40)[0] == "crash"
    assert fuzz.run_forked(lambda: __import__("time").sleep(30), 1, 1 << 40)[0] == "hang"
    assert fuzz.run_forked(lambda: bytearray(1 << 33), 10, fuzz._address_space() + (1 << 30))[0] == "exception"
    assert tuple(fuzz.run_forked(lambda: ("refused", "x", None), 10, 1 << 40)) == ("refused", "x", None)


@pytest.mark.parametrize("value", [0.3, -1e308, 617452.35])
def test_parsed_files_join_back_to_the_same_bytes(tmp_path, value):
    from magc_plugin.container import MAGCWriter, TileRecord
    import numpy as np
    head = {"width": 100, "height": 70, "bands": [1, 2, 3], "dtype": "float64", "stretch": [[value, 1e6]] * 3,
            "tile_size": 64, "embedded_guidance": True}
    georef = {"crs_wkt": None, "transform": [value, 0.0, 1.0, 0.0, -1.0, 2.0], "nodata": [None] * 3}
    model = {"rate": "low", "stream_sha256": "ab" * 32, "weights_sha256": "cd" * 32}
    path = tmp_path / "a.magc"
    with MAGCWriter(path, head, georef, model) as writer:
        for n in range(4):
            writer.add_tile(TileRecord.build(n, np.ones((64, 64), bool), np.zeros((64, 64), np.uint8), b"abc"),
                            b"fp")
        writer.commit()
    data = path.read_bytes()
    assert fuzz.Parsed(path).join() == data
