"""The .magc container: structure, validation, atomic writes (no model needed)."""
import struct
import zlib

import numpy as np
import pytest

from magc_plugin import container
from magc_plugin.codec.errors import MAGCError
from magc_plugin.container import MAGCReader, MAGCWriter, TileRecord, fingerprint


def make_head(width=200, height=130, tile_size=128, embedded=True):
    return {"width": width, "height": height, "bands": [1, 2, 3], "output_bands": [1, 2, 3], "dtype": "uint8",
            "stretch": [[0, 255]] * 3, "tile_size": tile_size, "overlap": 0,
            "tiles": list(container.tile_grid(width, height, tile_size)), "embedded_guidance": embedded}


GEOREF = {"crs_wkt": None, "crs_id": None, "transform": [0.5, 0.0, 100.0, 0.0, -0.5, 200.0], "nodata": [0, 0, "nan"]}
MODEL = {"preset": "tiny", "rate": "medium", "weights_sha256": "ab" * 32}


def write_file(path, head=None, payload=lambda i: bytes([i]) * (10 + i)):
    head = head or make_head()
    rng = np.random.default_rng(1)
    records = []
    with MAGCWriter(path, head, GEOREF, MODEL) as writer:
        for i in range(head["tiles"][0] * head["tiles"][1]):
            valid = [np.ones((128, 128), bool), np.zeros((128, 128), bool), rng.random((128, 128)) > 0.3][i % 3]
            classes = rng.integers(0, 6, (128, 128), dtype=np.uint8)
            record = TileRecord.build(i, valid, classes if head["embedded_guidance"] else None, payload(i))
            writer.add_tile(record, fingerprint(classes))
            records.append((record, valid, classes))
        writer.commit()
    return records


@pytest.fixture
def magc_file(tmp_path):
    path = tmp_path / "a.magc"
    return path, write_file(path)


def test_round_trip_and_random_access(magc_file):
    path, records = magc_file
    with MAGCReader(path) as reader:
        assert reader.head == make_head() and reader.georef == GEOREF and reader.model == MODEL
        assert len(reader.index) == 4
        for i in (3, 0, 2):  # any order: the index gives each tile's place
            record, valid, classes = records[i]
            got = reader.read_tile(i)
            assert got.payload == record.payload
            assert (got.valid_mask((128, 128)) == valid).all()
            assert (got.class_raster((128, 128)) == classes).all()
            assert reader.index[i].fingerprint == fingerprint(classes)
        assert [reader.read_tile(i).mask_kind for i in range(3)] == [container.MASK_ALL_VALID,
                                                                       container.MASK_ALL_NODATA, container.MASK_BITS]
        info = reader.info()
    assert info["bytes"] == path.stat().st_size and info["embedded_guidance_bytes"] > 0
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_signature_catches_text_mode_transfer(magc_file):
    path, _ = magc_file
    data = path.read_bytes()
    path.write_bytes(data.replace(b"\r\n", b"\n"))  # what a text-mode copy does
    with pytest.raises(MAGCError, match="binary mode"):
        MAGCReader(path)
    path.write_bytes(b"this is not a magc file" * 10)
    with pytest.raises(MAGCError, match="not a .magc file"):
        MAGCReader(path)
    path.write_bytes(b"")
    with pytest.raises(MAGCError, match="not a .magc file"):
        MAGCReader(path)


def test_unknown_major_version_refused_minor_accepted(magc_file):
    path, _ = magc_file
    data = bytearray(path.read_bytes())
    data[8:12] = struct.pack(">HH", 2, 7)
    path.write_bytes(bytes(data))
    assert MAGCReader(path).version == (2, 7)
    data[8:12] = struct.pack(">HH", 3, 0)
    path.write_bytes(bytes(data))
    with pytest.raises(MAGCError, match="version 3.0.*update the plugin"):
        MAGCReader(path)
    data[8:12] = struct.pack(">HH", 1, 0)  # before tile payloads carried their mean colour
    path.write_bytes(bytes(data))
    with pytest.raises(MAGCError, match="version 1.0.*compress the original raster again"):
        MAGCReader(path)


def _insert_before_end(path, chunk_type, payload):
    data = path.read_bytes()
    crc = struct.pack(">I", zlib.crc32(chunk_type + payload))
    chunk = struct.pack(">I4s", len(payload), chunk_type) + payload + crc
    path.write_bytes(data[:-12] + chunk + data[-12:])


def test_unknown_ancillary_chunk_skipped(magc_file):
    path, records = magc_file
    _insert_before_end(path, b"noTe", b"written by a future MAGC")
    with MAGCReader(path) as reader:
        assert reader.read_tile(3).payload == records[3][0].payload


def test_unknown_critical_chunk_refused(magc_file):
    path, _ = magc_file
    _insert_before_end(path, b"NEWS", b"must be understood")
    with pytest.raises(MAGCError, match="critical chunk 'NEWS'.*update"):
        MAGCReader(path)


@pytest.mark.parametrize("cut", [1, 12, 100, 400])
def test_truncated(magc_file, cut):
    path, _ = magc_file
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(MAGCError, match="truncated|damaged"):
        MAGCReader(path)


def test_every_single_byte_flip_is_caught(tmp_path):
    """Each byte of a small file, flipped: a MAGCError, or (minor version bytes) the same content."""
    path = tmp_path / "small.magc"
    write_file(path, make_head(64, 64, 64), payload=lambda i: b"xyz")
    data = path.read_bytes()
    bad = tmp_path / "bad.magc"
    for pos in range(len(data)):
        mutated = bytearray(data)
        mutated[pos] ^= 0x5A
        bad.write_bytes(bytes(mutated))
        try:
            with MAGCReader(bad) as reader:
                record = reader.read_tile(0)
                assert 10 <= pos < 12, pos  # only the minor version may change harmlessly
                assert record.payload == b"xyz"
        except MAGCError:
            pass


def test_json_chunk_with_valid_crc_but_bad_content(tmp_path):
    path = tmp_path / "a.magc"
    write_file(path)
    data = path.read_bytes()
    head = container._json_bytes(make_head())
    evil = head.replace(b'"tile_size":128', b'"tile_size":100')
    start = 12 + 8
    assert data[start:start + len(head)] == head
    forged = data[:12] + container._chunk(b"HEAD", evil) + data[12 + 12 + len(head):]
    path.write_bytes(forged)
    with pytest.raises(MAGCError, match="tile size"):
        MAGCReader(path)


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "x.magc"
    with pytest.raises(RuntimeError):
        with MAGCWriter(path, make_head(), GEOREF, MODEL) as writer:
            writer.add_tile(TileRecord.build(0, np.ones((4, 4), bool)), bytes(16))
            raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder(tmp_path):
    with pytest.raises(MAGCError, match="does not exist"):
        MAGCWriter(tmp_path / "missing" / "x.magc", make_head(), GEOREF, MODEL).__enter__()
    with pytest.raises(MAGCError, match="writable"):
        MAGCWriter("/proc/x.magc", make_head(), GEOREF, MODEL).__enter__()
