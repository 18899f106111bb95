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
            "stretch": [[0.0, 255.0]] * 3, "tile_size": tile_size,
            "tiles": list(container.tile_grid(width, height, tile_size)), "embedded_guidance": embedded}


GEOREF = {"crs_wkt": None, "crs_id": None, "transform": [0.5, 0.0, 100.0, 0.0, -0.5, 200.0], "nodata": [0.0, None, 255.0]}
MODEL = {"preset": "tiny", "rate": "medium", "weights_sha256": "ab" * 32, "stream_sha256": "cd" * 32,
         "versions": {"magc": "0.3.0", "torch": "2.14.1"}}
# What the file keeps of the model: the rate, the plugin version and the leading bytes of the checksums.
MODEL_IN_FILE = {"rate": "medium", "weights_sha256": "ab" * 4, "stream_sha256": "cd" * 8, "versions": {"magc": "0.3.0"}}


def write_file(path, head=None, payload=lambda i: bytes([i]) * (10 + i), georef=GEOREF):
    head = head or make_head()
    rng = np.random.default_rng(1)
    records = []
    with MAGCWriter(path, head, georef, MODEL) as writer:
        for i in range(head["tiles"][0] * head["tiles"][1]):
            valid = [np.ones((128, 128), bool), np.zeros((128, 128), bool), rng.random((128, 128)) > 0.3][i % 3]
            classes = rng.integers(0, 6, (128, 128), dtype=np.uint8)
            record = TileRecord.build(i, valid, classes if head["embedded_guidance"] else None,
                                      payload(i) if valid.any() else b"")
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
        assert reader.head == make_head() and reader.georef == GEOREF and reader.model == MODEL_IN_FILE
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


def forge(path, fields=None, minor=0, tiles_extra=b""):
    """Rewrite a file's header fields (and minor version) with consistent length and CRC, as a hostile or buggy
    writer would; returns the original fields."""
    data = path.read_bytes()
    with MAGCReader(path) as reader:
        header_end, original = reader.header_bytes, reader.fields
    index = data[10 + len(container._varint(len(original))) + len(original):header_end - 4]
    fields = original if fields is None else fields
    header = container.SIGNATURE + bytes([3, minor]) + container._varint(len(fields)) + fields + index
    path.write_bytes(header + struct.pack(">I", zlib.crc32(header)) + data[header_end:] + tiles_extra)
    return original


def test_unknown_major_version_refused_minor_may_append_fields(magc_file):
    path, records = magc_file
    fields = forge(path)
    forge(path, fields + b"a field of format 3.1", minor=1)
    with MAGCReader(path) as reader:  # a newer minor version: its extra fields are skipped
        assert reader.version == (3, 1) and reader.read_tile(3).payload == records[3][0].payload
    forge(path, fields + b"!", minor=0)  # this version's fields end where this reader says
    with pytest.raises(MAGCError, match="1 bytes follow the header's last field"):
        MAGCReader(path)
    data = bytearray(path.read_bytes())
    data[8:10] = bytes([4, 0])
    path.write_bytes(bytes(data))
    with pytest.raises(MAGCError, match="version 4.0.*update the plugin"):
        MAGCReader(path)
    data[8:10] = bytes([2, 0])  # the JSON-chunk format of MAGC 0.2
    path.write_bytes(bytes(data))
    with pytest.raises(MAGCError, match="version 2.0.*compress the original raster again"):
        MAGCReader(path)


@pytest.mark.parametrize("cut", [1, 12, 100, 400])
def test_truncated(magc_file, cut):
    path, _ = magc_file
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(MAGCError, match="truncated|damaged"):
        MAGCReader(path)


def test_bytes_after_the_last_tile_refused(magc_file):
    path, _ = magc_file
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(MAGCError, match="1 bytes follow its last tile"):
        MAGCReader(path)


def test_every_single_byte_flip_is_caught(tmp_path):
    """Each byte of a small file, flipped: a MAGCError (the header CRC covers the version bytes too)."""
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
                reader.read_tile(0)
        except MAGCError:
            continue
        raise AssertionError(f"a flip at byte {pos} went unnoticed")


def _fields(head=None, georef=GEOREF, model=MODEL):
    return container.encode_fields(head or make_head(), georef, model)


@pytest.mark.parametrize("change, message", [
    (lambda f: f[:1] + b"\x00" + f[2:], "no pixels"),                                    # width 0
    (lambda f: f[:1] + b"\xff\xff\xff\xff\x7f" + f[3:], "width .* over its limit"),       # width 2^35
    (lambda f: f[:5] + b"\x41" + f[6:], "tile size 4160"),                              # 65 x 64
    (lambda f: f[:5] + b"\x00" + f[6:], "tile size 0"),
    (lambda f: f[:6] + b"\x09" + f[7:], "unknown data type"),
    (lambda f: b"\x80" + f[1:], "unknown header flags"),
    (lambda f: f[:-30], "cut short"),
])
def test_forged_fields_with_a_valid_checksum_are_refused(magc_file, change, message):
    path, _ = magc_file
    fields = forge(path)
    assert fields[:5] == _fields()[:5] and fields[1:3] == container._varint(200)  # flags, width 200, height 130
    forge(path, change(fields))
    with pytest.raises(MAGCError, match=message):
        MAGCReader(path)


@pytest.mark.parametrize("head, georef, message", [
    ({"dtype": "uint8"}, {"nodata": [300.0, None, None]}, "nodata value 300.0 does not fit its data type uint8"),
    ({"dtype": "uint8"}, {"nodata": [float("nan"), None, None]}, "nodata value nan does not fit"),
    ({"dtype": "uint16"}, {"nodata": [-1.0, None, None]}, "nodata value -1.0 does not fit"),
    ({"dtype": "float32"}, {"nodata": [1e308, None, None]}, "nodata value 1e\\+308 does not fit"),
    ({"dtype": "float64", "stretch": [[-1e308, 1e308]] * 3}, {}, "band stretch"),
    ({"dtype": "uint16", "stretch": [[5.0, 5.0]] * 3}, {}, "band stretch"),
    ({"dtype": "uint16", "stretch": [[0.0, float("inf")]] * 3}, {}, "band stretch"),
    ({"tile_size": 8192}, {}, "tile size 8192"),
    ({}, {"crs_wkt": "PROJCS[nonsense"}, "CRS does not parse"),
    ({}, {"transform": [0.0, 0.0, 1.0, 0.0, 0.0, 2.0]}, "geotransform is degenerate"),
])
def test_writer_refuses_what_the_reader_would(tmp_path, head, georef, message):
    """Reader limits are the writer's: a field a reader would refuse is refused before anything is written."""
    with pytest.raises(MAGCError, match="Cannot write a.magc: .*" + message):
        MAGCWriter(tmp_path / "a.magc", {**make_head(), **head}, {**GEOREF, **georef}, MODEL)


def test_nodata_in_the_data_type(tmp_path):
    for dtype, nodata in (("float32", [float("nan")] * 3), ("int16", [-32768.0] * 3), ("float64", [-1e308] * 3)):
        path = tmp_path / f"{dtype}.magc"
        head = {**make_head(), "dtype": dtype, "stretch": [[-3.5, 99.25]] * 3}
        write_file(path, head, georef={**GEOREF, "nodata": nodata})
        with MAGCReader(path) as reader:
            assert str(reader.georef["nodata"]) == str(nodata) and reader.head["stretch"] == head["stretch"]


def test_crs_stored_as_its_epsg_code_or_compressed_wkt(tmp_path):
    from rasterio.crs import CRS
    utm = CRS.from_epsg(32651).to_wkt(version="WKT2_2019")
    custom = CRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=124.3 +k=0.9996 +x_0=500000 +y_0=0 +ellps=WGS84 "
                            "+units=m +no_defs").to_wkt(version="WKT2_2019")
    for name, wkt, crs_id in (("utm", utm, "EPSG:32651"), ("custom", custom, None)):
        path = tmp_path / f"{name}.magc"
        write_file(path, georef={**GEOREF, "crs_wkt": wkt})
        with MAGCReader(path) as reader:
            assert CRS.from_wkt(reader.georef["crs_wkt"]) == CRS.from_wkt(wkt)
            assert reader.georef["crs_id"] == crs_id


def test_container_overhead_is_a_few_bytes(tmp_path):
    """512 x 300 in 4 tiles with an EPSG CRS: at most 64 bytes plus 8 a tile besides the tile streams."""
    from rasterio.crs import CRS
    head = make_head(512, 300, 256, embedded=False)
    georef = {"crs_wkt": CRS.from_epsg(32651).to_wkt(), "transform": [0.3, 0.0, 617452.35, 0.0, -0.3, 1505228.1],
              "nodata": [None] * 3}
    path = tmp_path / "a.magc"
    with MAGCWriter(path, head, georef, MODEL) as writer:
        for i in range(4):
            writer.add_tile(TileRecord.build(i, np.ones((256, 256), bool), None, bytes(300)), bytes(2))
        writer.commit()
    with MAGCReader(path) as reader:
        info = reader.info()
    assert info["tile_stream_bytes"] == 1200 and info["container_bytes"] <= 64 + 8 * 4, info["container_bytes"]


@pytest.mark.parametrize("value", [0.0, -0.0, 0.3, -0.3, 500000.0, 617452.35, 2.0 ** -20, 124.2170715332031,
                                   1e-300, 5e-324, 1.7976931348623157e308, float("inf"), float("-inf"), 1 / 3])
def test_numbers_round_trip_bit_for_bit(value):
    packed = container._number(value)
    cursor = container._Cursor(packed, "test")
    assert struct.pack(">d", cursor.number("x")) == struct.pack(">d", value) and cursor.rest() == 0
    assert len(packed) <= 9


def test_numbers_are_short_where_they_can_be():
    assert [len(container._number(v)) for v in (0.3, 500000.0, 617452.35, 2.0 ** -20)] == [2, 2, 5, 3]
    rng = np.random.default_rng(0)
    for value in rng.standard_normal(2000) * 10.0 ** rng.integers(-30, 30, 2000):
        cursor = container._Cursor(container._number(float(value)), "test")
        assert cursor.number("x") == value


def test_guidance_length_one_byte_too_long_is_refused(tmp_path):
    """The record's guidance must unpack to exactly its bytes: a length that steals the payload's first byte fails."""
    record = TileRecord.build(0, np.ones((64, 64), bool), np.zeros((64, 64), np.uint8), b"payload")
    data = record.to_bytes(True)
    forged = container._varint(len(record.guidance_bytes) + 1) + data[1:]
    stolen = TileRecord.from_bytes(forged, 0, container.MASK_ALL_VALID, True)
    assert stolen.payload == b"ayload"
    with pytest.raises(MAGCError, match="embedded guidance of tile 0 cannot be unpacked"):
        stolen.class_raster((64, 64))


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "x.magc"
    with pytest.raises(RuntimeError):
        with MAGCWriter(path, make_head(), GEOREF, MODEL) as writer:
            writer.add_tile(TileRecord.build(0, np.ones((4, 4), bool), np.zeros((4, 4), np.uint8), b"x"), bytes(2))
            raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder(tmp_path):
    with pytest.raises(MAGCError, match="does not exist"):
        MAGCWriter(tmp_path / "missing" / "x.magc", make_head(), GEOREF, MODEL).__enter__()
    with pytest.raises(MAGCError, match="writable"):
        MAGCWriter("/proc/x.magc", make_head(), GEOREF, MODEL).__enter__()


def test_writer_refuses_records_the_reader_would(tmp_path):
    head = make_head(64, 64, 64, embedded=False)
    with MAGCWriter(tmp_path / "a.magc", head, GEOREF, MODEL) as writer:
        with pytest.raises(MAGCError, match="payload although none of its pixels is valid"):
            writer.add_tile(TileRecord.build(0, np.zeros((64, 64), bool), None, b"xyz"), bytes(2))
        with pytest.raises(ValueError, match="fingerprint is 2 bytes"):
            writer.add_tile(TileRecord.build(0, np.ones((64, 64), bool), None, b"xyz"), bytes(16))
    with pytest.raises(MAGCError, match="no stream_sha256"):
        MAGCWriter(tmp_path / "a.magc", head, GEOREF, {**MODEL, "stream_sha256": ""})
    assert list(tmp_path.iterdir()) == []


def test_mask_that_is_not_mixed_or_has_padding_bits_is_refused():
    for bits in (np.ones(64 * 64, bool), np.r_[np.ones(10, bool), np.zeros(64 * 64 - 10, bool)]):
        record = TileRecord(0, container.MASK_BITS, zlib.compress(np.packbits(bits).tobytes()), b"", b"xyz")
        if bits.all():
            with pytest.raises(MAGCError, match="not a mixed mask"):
                record.valid_mask((64, 64))
        else:
            assert record.valid_mask((64, 64)).sum() == 10
            with pytest.raises(MAGCError, match="not a mixed mask"):  # 4,095 pixels: the last bit is padding
                TileRecord(0, container.MASK_BITS, zlib.compress(np.packbits(np.r_[bits[:-1], True]).tobytes()),
                           b"", b"xyz").valid_mask((63, 65))


def test_a_file_cut_inside_its_signature(tmp_path):
    path = tmp_path / "a.magc"
    path.write_bytes(container.SIGNATURE[:5])
    with pytest.raises(MAGCError, match="truncated inside its signature"):
        MAGCReader(path)


def test_a_crs_that_does_not_parse_is_refused_quietly(tmp_path, capfd):
    """A crafted EPSG code or WKT: the reader's message, nothing from GDAL on the console."""
    from rasterio.crs import CRS
    path = tmp_path / "a.magc"
    write_file(path, georef={**GEOREF, "crs_wkt": CRS.from_epsg(32651).to_wkt()})
    fields, original = forge(path), path.read_bytes()
    forge(path, fields.replace(container._varint(32651), container._varint(99999), 1))
    with pytest.raises(MAGCError, match="its CRS does not parse"):
        MAGCReader(path)
    path.write_bytes(original)
    packed = zlib.compress(b"PROJCS[nonsense")
    wkt_fields = bytes([fields[0] ^ (3 << container.CRS_SHIFT)]) + fields[1:].replace(
        container._varint(32651), container._varint(len(packed)) + packed, 1)  # CRS kind 1 -> 2
    forge(path, wkt_fields)
    with pytest.raises(MAGCError, match="its CRS does not parse"):
        MAGCReader(path)
    assert "ERROR" not in capfd.readouterr().err


def test_the_file_gets_ordinary_permissions(tmp_path):
    """Not mkstemp's 0600: what an ordinary write under the process's umask would give."""
    import os
    old = os.umask(0o027)
    try:
        write_file(tmp_path / "a.magc")
    finally:
        os.umask(old)
    assert (tmp_path / "a.magc").stat().st_mode & 0o777 == 0o640
