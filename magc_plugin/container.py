"""The ``.magc`` file (format 3): a compact binary header with the tile index, CRC-checked, then the tiles.

Layout (integers big-endian; varint = unsigned LEB128, at most 9 bytes; docs/CONTAINER.md gives every field
and what a reader checks)::

    signature   8 bytes  89 4D 47 43 0D 0A 1A 0A   ("\\x89MGC\\r\\n\\x1a\\n", as PNG)
    version     u8 major, u8 minor
    fields      varint length, then the raster, its georeferencing and the model that coded it
    index       per tile, row-major: varint (record length << 2 | nodata mask kind), u32 CRC-32 of the
                record, 2-byte guidance fingerprint
    CRC-32      u32 of every byte above
    tiles       the tile records in index order; the file ends with the last one

At 0.02 bpp a 512-px tile is about 650 bytes, so the container's own bytes are counted: about 50 for a raster
whose CRS has an EPSG code and 8 per tile. The signature catches text-mode transfers (the high byte is
stripped, CR LF and LF are rewritten, ^Z ends a DOS read). A new major version is unreadable by older readers;
a minor one may only append fields that older readers skip. The index sits before the tiles, as in a
Cloud-Optimized GeoTIFF, so one region is decoded by seeking to its tiles only.

Reader limits are the writer's: the writer checks its header by parsing it back with the reader's rules. Every
problem a reader meets is a :class:`MAGCError` that names what is wrong in the file.
"""
import hashlib
import math
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from .codec.errors import MAGCError
from .outputs import give_ordinary_permissions

SIGNATURE = b"\x89MGC\r\n\x1a\n"
# 2.0: each tile's codec payload starts with its mean colour. 3.0: the compact binary header.
VERSION = (3, 0)
CRC = struct.Struct(">I")
TILE_MULTIPLE = 64
MAX_TILE_SIZE = 4096
MAX_SIDE = 1 << 24
MAX_FIELDS_BYTES = 1 << 20  # the WKT of the most complex CRS, compressed, is a few kB
MAX_RATE_NAME = 32
FINGERPRINT_SIZE = 2  # a different map differs on many tiles: 2 bytes each make a miss on all unlikely
STREAM_HASH_BYTES, WEIGHTS_HASH_BYTES = 8, 4
MIN_INDEX_ENTRY = 1 + CRC.size + FINGERPRINT_SIZE

# Per-tile validity mask codes (IndexEntry.mask_kind).
MASK_ALL_VALID, MASK_ALL_NODATA, MASK_BITS = 0, 1, 2

DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")
DEFAULT_BANDS = [1, 2, 3]
DEFAULT_STRETCH = [[0.0, 255.0]] * 3

# Header flags.
FLAG_EMBEDDED, FLAG_BANDS, FLAG_STRETCH, FLAG_ROTATED, FLAG_NODATA = 1, 2, 4, 8, 16
CRS_SHIFT, CRS_MASK = 5, 0b11
CRS_NONE, CRS_EPSG, CRS_WKT = 0, 1, 2
NODATA_SHARED = 0x80  # in the nodata band mask: one value for every band it names
KNOWN_FLAGS = FLAG_EMBEDDED | FLAG_BANDS | FLAG_STRETCH | FLAG_ROTATED | FLAG_NODATA | (CRS_MASK << CRS_SHIFT)

# Numbers (transform, stretch): a tag byte, then either the leading bytes of the IEEE 754 double (tag = their
# count, 0..8, trailing zero bytes dropped) or a decimal: tag 9 + exponent + 123, zigzag varint mantissa.
DECIMAL_TAG, DECIMAL_EXP_BIAS = 9, 123
MAX_VARINT_BYTES = 9


def fingerprint(class_raster):
    """A short hash of a tile's guidance class raster (shape and values)."""
    arr = np.ascontiguousarray(class_raster, dtype=np.uint8)
    digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
    digest.update(struct.pack(">II", *arr.shape))
    digest.update(arr.tobytes())
    return digest.digest()


def tile_grid(width, height, tile_size):
    """(columns, rows) of the tile grid."""
    return -(-width // tile_size), -(-height // tile_size)


class Invalid(ValueError):
    """A field breaks the format's rules; the reader and the writer each say it in their own words."""


def _need(cond, what):
    if not cond:
        raise Invalid(what)


# -- encoding --------------------------------------------------------------------------------------
def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _zigzag(n):
    return 2 * n if n >= 0 else -2 * n - 1


def _number(x):
    """The fewest bytes that give float `x` back bit for bit (0.3 -> 2 bytes, 2**-20 -> 3, any double -> 9)."""
    raw = struct.pack(">d", x)
    leading = raw.rstrip(b"\0")
    best = bytes([len(leading)]) + leading
    if math.isfinite(x):
        sign, digits, exponent = Decimal(repr(x)).normalize().as_tuple()
        mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
        if abs(exponent) <= DECIMAL_EXP_BIAS and struct.pack(">d", float(f"{mantissa}e{exponent}")) == raw:
            decimal = bytes([DECIMAL_TAG + DECIMAL_EXP_BIAS + exponent]) + _varint(_zigzag(mantissa))
            best = min(best, decimal, key=len)
    return best


def _string(text, limit):
    _need(text.isascii() and text.isprintable() and 0 < len(text) <= limit, f"the text {text!r} is too long or not "
          f"printable ASCII (at most {limit} characters)")
    return _varint(len(text)) + text.encode("ascii")


def _version_bytes(version):
    parts = [int(p) if p.isdigit() else 0 for p in str(version).split(".")[:3]]
    return bytes(min(p, 255) for p in parts + [0] * (3 - len(parts)))


def version_text(version):
    """A plugin version as the file keeps it (three numbers up to 255: "0.3.0rc1" is "0.3.0")."""
    return ".".join(str(v) for v in _version_bytes(version))


def _crs(kind, value):
    """A rasterio CRS from an EPSG code or WKT text, GDAL's messages kept off the console; Invalid if it fails."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import CRSError
    try:
        with rasterio.Env():  # routes GDAL's "ERROR 1: ..." to logging
            return CRS.from_epsg(value) if kind == CRS_EPSG else CRS.from_wkt(value)
    except CRSError as exc:
        raise Invalid(f"its CRS does not parse ({exc})") from None


def _epsg(crs):
    """The EPSG code that names this very CRS, or None."""
    import rasterio
    with rasterio.Env():
        code = crs.to_epsg(confidence_threshold=100)
        return code if code and _crs(CRS_EPSG, code) == crs else None


def _crs_field(crs_wkt):
    """(CRS kind, bytes): an EPSG code where it names this very CRS, else the WKT, compressed."""
    if not crs_wkt:
        return CRS_NONE, b""
    crs = _crs(CRS_WKT, crs_wkt)
    code = _epsg(crs)
    if code:
        return CRS_EPSG, _varint(code)
    wkt = zlib.compress(crs.to_wkt(version="WKT2_2019").encode("utf-8"), 9)
    return CRS_WKT, _varint(len(wkt)) + wkt


def _nodata_field(nodata, dtype):
    """(band bit mask, values in the data type itself, once where every band has the same): a value the type
    cannot hold is refused."""
    mask, values = 0, []
    big_endian = np.dtype(dtype).newbyteorder(">")
    for i, value in enumerate(nodata):
        if value is None:
            continue
        if np.issubdtype(big_endian, np.integer):
            lo, hi = dtype_range(dtype)
            fits = math.isfinite(value) and value == int(value) and lo <= value <= hi
        else:
            with np.errstate(over="ignore"):
                fits = math.isnan(value) or float(np.array(value).astype(big_endian)) == value
        _need(fits, f"its nodata value {value} does not fit its data type {dtype}: set a nodata value the "
              "type can hold (gdal_edit.py -a_nodata) and compress again")
        mask |= 1 << i
        values.append(np.array(value).astype(big_endian).tobytes())
    if len(values) > 1 and len(set(values)) == 1:
        return bytes([mask | NODATA_SHARED]) + values[0]
    return bytes([mask]) + b"".join(values)


def encode_fields(head, georef, model):
    """The header's fields (without their length) from the raster's head, georef and model identity dicts."""
    transform = [float(v) for v in georef["transform"]]
    rotated = transform[1] != 0 or transform[3] != 0
    crs_kind, crs_bytes = _crs_field(georef.get("crs_wkt"))
    nodata = [None if v is None else float(v) for v in georef["nodata"]]
    flags = ((FLAG_EMBEDDED if head["embedded_guidance"] else 0) | (FLAG_BANDS if head["bands"] != DEFAULT_BANDS
             else 0) | (FLAG_STRETCH if head["stretch"] != DEFAULT_STRETCH else 0)
             | (FLAG_ROTATED if rotated else 0) | (FLAG_NODATA if any(v is not None for v in nodata) else 0)
             | crs_kind << CRS_SHIFT)
    _need(head["dtype"] in DTYPES, f"its data type {head['dtype']!r} is not one of {', '.join(DTYPES)}")
    _need(isinstance(head["tile_size"], int) and head["tile_size"] % TILE_MULTIPLE == 0
          and 0 < head["tile_size"] <= MAX_TILE_SIZE, f"tile size {head['tile_size']} is not a multiple of "
          f"{TILE_MULTIPLE} up to {MAX_TILE_SIZE}")
    cols, rows = tile_grid(head["width"], head["height"], head["tile_size"])
    _need(head.get("tiles", [cols, rows]) == [cols, rows], "the tile grid does not match the raster size")
    out = bytes([flags]) + _varint(head["width"]) + _varint(head["height"])
    out += bytes([head["tile_size"] // TILE_MULTIPLE, DTYPES.index(head["dtype"])])
    if flags & FLAG_BANDS:
        out += b"".join(_varint(b) for b in head["bands"])
    if flags & FLAG_STRETCH:
        out += b"".join(_number(float(v)) for pair in head["stretch"] for v in pair)
    out += crs_bytes
    out += b"".join(_number(v) for v in (transform if rotated else transform[0:1] + transform[2:3] + transform[4:6]))
    if flags & FLAG_NODATA:
        out += _nodata_field(nodata, head["dtype"])
    out += _string(model["rate"], MAX_RATE_NAME) + _version_bytes(model.get("versions", {}).get("magc", ""))
    for key, size in (("stream_sha256", STREAM_HASH_BYTES), ("weights_sha256", WEIGHTS_HASH_BYTES)):
        checksum = bytes.fromhex(model.get(key) or "")[:size]
        _need(len(checksum) == size, f"the model has no {key} (load it from its folder)")
        out += checksum
    return out


# -- decoding --------------------------------------------------------------------------------------
class _Cursor:
    """Reads fields from bytes, refusing to run past them."""

    def __init__(self, data, what):
        self.data, self.pos, self.what = data, 0, what

    def raw(self, n):
        _need(0 <= n <= len(self.data) - self.pos, f"{self.what} is cut short")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def u8(self):
        return self.raw(1)[0]

    def varint(self, limit, what):
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                _need(value <= limit, f"{what} {value} is over its limit {limit}")
                return value
        raise Invalid(f"{what} is not a valid number")

    def number(self, what):
        tag = self.u8()
        if tag < DECIMAL_TAG:
            return struct.unpack(">d", self.raw(tag) + b"\0" * (8 - tag))[0]
        zigzag = self.varint(1 << 63, what)
        mantissa = zigzag >> 1 if not zigzag & 1 else -(zigzag >> 1) - 1
        return float(f"{mantissa}e{tag - DECIMAL_TAG - DECIMAL_EXP_BIAS}")

    def rest(self):
        return len(self.data) - self.pos


def dtype_range(dtype):
    """(lowest, highest) value of a raster data type, as floats."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    return float(info.min), float(info.max)


def _parse_crs(cursor, kind):
    if kind == CRS_NONE:
        return None, None
    if kind == CRS_EPSG:
        code = cursor.varint(1 << 31, "the EPSG code")
        return _crs(CRS_EPSG, code).to_wkt(version="WKT2_2019"), f"EPSG:{code}"
    _need(kind == CRS_WKT, "its CRS kind is unknown")
    packed = cursor.raw(cursor.varint(cursor.rest(), "the CRS length"))
    try:
        wkt = inflate_exactly(packed, None, "its CRS").decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("its CRS is not UTF-8 text") from None
    code = _epsg(_crs(CRS_WKT, wkt))
    return wkt, f"EPSG:{code}" if code else None


def parse_fields(data, minor):
    """(head, georef, model) from the header's fields; raises Invalid naming the first field that is wrong."""
    c = _Cursor(data, "the header")
    flags = c.u8()
    _need(not flags & ~KNOWN_FLAGS, f"unknown header flags {flags:#04x}")
    width, height = c.varint(MAX_SIDE, "the raster width"), c.varint(MAX_SIDE, "the raster height")
    _need(width > 0 and height > 0, "the raster has no pixels")
    tile_units, dtype_code = c.u8(), c.u8()
    tile_size = tile_units * TILE_MULTIPLE
    _need(0 < tile_size <= MAX_TILE_SIZE, f"tile size {tile_size} is not between {TILE_MULTIPLE} and "
          f"{MAX_TILE_SIZE}")
    _need(dtype_code < len(DTYPES), f"unknown data type code {dtype_code}")
    dtype = DTYPES[dtype_code]
    bands = [c.varint(1 << 16, "a band number") for _ in range(3)] if flags & FLAG_BANDS else list(DEFAULT_BANDS)
    _need(all(b >= 1 for b in bands), "band number 0")
    output_bands = list(dict.fromkeys(bands))
    stretch = DEFAULT_STRETCH
    if flags & FLAG_STRETCH:
        lo_limit, hi_limit = dtype_range(dtype)
        stretch = [[c.number("a stretch value"), c.number("a stretch value")] for _ in range(3)]
        _need(all(lo_limit <= lo < hi <= hi_limit and math.isfinite(hi - lo) for lo, hi in stretch),
              f"its band stretch {stretch} is not an ordered range within {dtype}")
    crs_wkt, crs_id = _parse_crs(c, (flags >> CRS_SHIFT) & CRS_MASK)
    values = [c.number("a geotransform value") for _ in range(6 if flags & FLAG_ROTATED else 4)]
    transform = values if flags & FLAG_ROTATED else [values[0], 0.0, values[1], 0.0, values[2], values[3]]
    _need(all(map(math.isfinite, transform)) and math.isfinite(transform[0] * transform[4] - transform[1]
          * transform[3]) and transform[0] * transform[4] - transform[1] * transform[3] != 0,
          "its geotransform is degenerate")
    nodata = [None] * len(output_bands)
    if flags & FLAG_NODATA:
        mask = c.u8()
        shared, mask = mask & NODATA_SHARED, mask & ~NODATA_SHARED
        _need(mask, "its nodata flag is set but no band has a nodata value")
        _need(mask < 1 << len(output_bands), f"its nodata band mask {mask:#04x} names bands it does not have")
        big_endian = np.dtype(dtype).newbyteorder(">")
        value = None
        for i in range(len(output_bands)):
            if mask >> i & 1:
                if value is None or not shared:
                    value = float(np.frombuffer(c.raw(big_endian.itemsize), big_endian)[0])
                nodata[i] = value
    rate = c.raw(c.varint(MAX_RATE_NAME, "the rate name's length"))
    _need(rate.isascii() and rate.decode("ascii").isprintable() and rate, "the rate name is not printable text")
    version = ".".join(str(v) for v in c.raw(3))
    stream, weights = c.raw(STREAM_HASH_BYTES).hex(), c.raw(WEIGHTS_HASH_BYTES).hex()
    _need(c.rest() == 0 or minor > VERSION[1], f"{c.rest()} bytes follow the header's last field")
    cols, rows = tile_grid(width, height, tile_size)
    head = {"width": width, "height": height, "bands": bands, "output_bands": output_bands, "dtype": dtype,
            "stretch": stretch, "tile_size": tile_size, "tiles": [cols, rows],
            "embedded_guidance": bool(flags & FLAG_EMBEDDED)}
    georef = {"crs_wkt": crs_wkt, "crs_id": crs_id, "transform": transform, "nodata": nodata}
    model = {"rate": rate.decode("ascii"), "stream_sha256": stream, "weights_sha256": weights,
             "versions": {"magc": version}}
    return head, georef, model


def inflate_exactly(data, size, what):
    """zlib-decompress `data` into exactly `size` bytes (None: up to MAX_FIELDS_BYTES), refusing anything else,
    trailing bytes included, and never inflating past the limit."""
    limit = MAX_FIELDS_BYTES if size is None else size
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, limit + 1)
        ok = (len(raw) == size or size is None and len(raw) <= limit) and inflater.eof \
            and not inflater.unconsumed_tail and not inflater.unused_data
    except zlib.error:
        ok = False
    _need(ok, f"{what} cannot be unpacked")
    return raw


# -- tile records ----------------------------------------------------------------------------------
@dataclass
class TileRecord:
    """One tile's data. Its mask kind is in the index; the record's bytes are::

        [varint n | n mask bytes (zlib of packed bits)]          if the mask kind is MASK_BITS
        [varint m | m guidance bytes (zlib of the uint8 map)]    if the file embeds its guidance
        codec payload                                             the rest; empty for an all-nodata tile
    """
    number: int
    mask_kind: int = MASK_ALL_VALID
    mask_bytes: bytes = b""
    guidance_bytes: bytes = b""
    payload: bytes = b""

    @classmethod
    def build(cls, number, valid, class_raster=None, payload=b""):
        """From a boolean validity mask (H, W), an optional class raster to embed and the codec payload."""
        if valid.all():
            kind, mask = MASK_ALL_VALID, b""
        elif not valid.any():
            kind, mask = MASK_ALL_NODATA, b""
        else:
            kind, mask = MASK_BITS, zlib.compress(np.packbits(valid, axis=None).tobytes(), 9)
        guidance = b""
        if class_raster is not None:
            guidance = zlib.compress(np.ascontiguousarray(class_raster, np.uint8).tobytes(), 9)
        return cls(number, kind, mask, guidance, payload)

    def to_bytes(self, embedded):
        out = _varint(len(self.mask_bytes)) + self.mask_bytes if self.mask_kind == MASK_BITS else b""
        if embedded:
            out += _varint(len(self.guidance_bytes)) + self.guidance_bytes
        return out + self.payload

    @classmethod
    def from_bytes(cls, data, number, mask_kind, embedded):
        """The record of tile `number`; raises Invalid where its structure is wrong."""
        c = _Cursor(data, f"tile {number}")
        mask = c.raw(c.varint(c.rest(), "its mask length")) if mask_kind == MASK_BITS else b""
        _need(mask_kind != MASK_BITS or mask, f"tile {number} has an empty nodata mask")
        guidance = c.raw(c.varint(c.rest(), "its guidance length")) if embedded else b""
        _need(not embedded or guidance, f"tile {number} lacks its embedded guidance")
        payload = c.raw(c.rest())
        _need(bool(payload) == (mask_kind != MASK_ALL_NODATA),
              f"tile {number} has a codec payload although none of its pixels is valid" if payload else
              f"tile {number} has no codec payload although some of its pixels are valid")
        return cls(number, mask_kind, bytes(mask), bytes(guidance), bytes(payload))

    def valid_mask(self, shape):
        """The boolean validity mask (H, W) of the tile."""
        if self.mask_kind == MASK_ALL_VALID:
            return np.ones(shape, bool)
        if self.mask_kind == MASK_ALL_NODATA:
            return np.zeros(shape, bool)
        count = shape[0] * shape[1]
        what = f"the nodata mask of tile {self.number}"
        bits = np.unpackbits(np.frombuffer(_unpack(self.mask_bytes, (count + 7) // 8, what), np.uint8))
        valid = bits[:count].astype(bool)
        # a writer packs a mixed mask with zero padding: anything else is damage the format can tell
        if bits[count:].any() or valid.all() or not valid.any():
            raise MAGCError(f"The .magc file is damaged: {what} is not a mixed mask. Copy the file again.")
        return valid.reshape(shape)

    def class_raster(self, shape):
        """The embedded class raster (H, W), or None if the guidance was not embedded."""
        if not self.guidance_bytes:
            return None
        raw = _unpack(self.guidance_bytes, shape[0] * shape[1], f"the embedded guidance of tile {self.number}")
        return np.frombuffer(raw, np.uint8).reshape(shape)


def _unpack(data, size, what):
    try:
        return inflate_exactly(data, size, what)
    except Invalid as exc:
        raise MAGCError(f"The .magc file is damaged: {exc}. Copy the file again.") from None


# -- writing ---------------------------------------------------------------------------------------
class MAGCWriter:
    """Write a .magc file; ``commit()`` writes it to a temporary file next to `path` and renames it into place.

    The tiles wait in a nameless temporary file until commit() knows the index, so a failed or cancelled write
    (leaving the ``with`` block without ``commit()``, a signal, a crash before commit) leaves nothing behind::

        with MAGCWriter(path, head, georef, model_identity) as writer:
            for record in records:
                writer.add_tile(record, fingerprint)
            writer.commit()
    """

    def __init__(self, path, head, georef, model_identity):
        self.path = Path(path)
        try:
            self.fields = encode_fields(head, georef, model_identity)
            self.head, self.georef, self.model = parse_fields(self.fields, VERSION[1])
        except Invalid as exc:
            raise MAGCError(f"Cannot write {self.path.name}: {exc}.") from None
        self.count = self.head["tiles"][0] * self.head["tiles"][1]
        self.index = bytearray()
        self.tiles = None
        self.written = 0

    def __enter__(self):
        folder = self.path.parent
        if not folder.is_dir():
            raise MAGCError(f"Cannot write {self.path}: the folder {folder} does not exist.")
        try:
            self.tiles = tempfile.TemporaryFile(dir=folder)  # nameless: gone with the process, whatever ends it
        except OSError as exc:
            raise MAGCError(f"Cannot write in {folder} ({exc.strerror}): choose a writable folder.") from exc
        return self

    def add_tile(self, record, tile_fingerprint):
        """Append the next tile (records come in index order)."""
        if record.number != self.written or self.written >= self.count:
            raise ValueError(f"tile {record.number} written out of order")
        if len(tile_fingerprint) != FINGERPRINT_SIZE:
            raise ValueError(f"a guidance fingerprint is {FINGERPRINT_SIZE} bytes (container.fingerprint)")
        data = record.to_bytes(self.head["embedded_guidance"])
        try:
            TileRecord.from_bytes(data, record.number, record.mask_kind, self.head["embedded_guidance"])
        except Invalid as exc:
            raise MAGCError(f"Cannot write {self.path.name}: {exc}.") from None
        self.index += _varint(len(data) << 2 | record.mask_kind) + CRC.pack(zlib.crc32(data))
        self.index += tile_fingerprint[:FINGERPRINT_SIZE]
        self._write(self.tiles, data)
        self.written += 1

    def _write(self, file, data):
        try:
            file.write(data)
        except OSError as exc:
            raise MAGCError(f"Writing {self.path} failed ({exc.strerror or exc}): free some disk space or choose "
                            "another folder; nothing was written.") from exc

    def commit(self):
        """Write the header, the index and the tiles, flush to disk, rename into place; returns the file size."""
        if self.written != self.count:
            raise ValueError(f"{self.written} of {self.count} tiles written")
        header = SIGNATURE + bytes(VERSION) + _varint(len(self.fields)) + self.fields + bytes(self.index)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
            give_ordinary_permissions(fd)
            with os.fdopen(fd, "wb") as out:
                self._write(out, header + CRC.pack(zlib.crc32(header)))
                self.tiles.seek(0)
                shutil.copyfileobj(self.tiles, out)
                size = out.tell()
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise MAGCError(f"Writing {self.path} failed ({exc.strerror or exc}); nothing was written.") from exc
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        return size

    def __exit__(self, *exc):
        if self.tiles is not None:
            self.tiles.close()
        return False


# -- reading ---------------------------------------------------------------------------------------
@dataclass
class IndexEntry:
    offset: int         # the record's first byte in the file
    length: int
    mask_kind: int
    crc: int
    fingerprint: bytes


class MAGCReader:
    """Open and validate a .magc file: signature, version, every header field, the index, the file's length.
    Tiles are read (and CRC-checked) on demand::

        with MAGCReader(path) as reader:
            reader.head, reader.georef, reader.model, reader.index
            record = reader.read_tile(number)
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.file = open(self.path, "rb")
        except OSError as exc:
            raise MAGCError(f"Cannot open {self.path}: {exc.strerror}.") from exc
        try:
            self._parse()
        except Invalid as exc:
            self.file.close()
            raise self._corrupt(str(exc)) from None
        except BaseException:
            self.file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self.file.close()

    def _corrupt(self, what):
        return MAGCError(f"{self.path.name} is a damaged .magc file ({what}): copy or download it again.")

    def _parse(self):
        self.size = os.fstat(self.file.fileno()).st_size
        start = self.file.read(len(SIGNATURE) + 2)
        if start[:len(SIGNATURE)] != SIGNATURE:
            if start and SIGNATURE.startswith(start):
                raise self._corrupt("the file is truncated inside its signature")
            if start[1:4] == b"MGC":
                raise self._corrupt("its signature was altered, probably by a text-mode transfer; transfer it "
                                    "in binary mode")
            raise MAGCError(f"{self.path.name} is not a .magc file (no MAGC signature): give a file written by "
                            "MAGC's compress tool.")
        _need(len(start) == len(SIGNATURE) + 2, "the file is truncated after its signature")
        self.version = tuple(start[len(SIGNATURE):])
        if self.version[0] != VERSION[0]:
            what = "update the plugin" if self.version[0] > VERSION[0] else \
                "compress the original raster again, or decode the file with the older MAGC that wrote it"
            raise MAGCError(f"{self.path.name} is in .magc format version {self.version[0]}.{self.version[1]}, which "
                            f"this MAGC (format {VERSION[0]}.{VERSION[1]}) cannot read: {what}.")
        # Everything the header can take, bounded by the file: no allocation beyond what the file holds.
        c = _Cursor(start + self.file.read(min(self.size, MAX_FIELDS_BYTES + 16) - len(start)), "the header")
        c.pos = len(start)
        self.fields = bytes(c.raw(c.varint(MAX_FIELDS_BYTES, "the header length")))  # kept for tools that rewrite
        self.head, self.georef, self.model = parse_fields(self.fields, self.version[1])
        count = self.head["tiles"][0] * self.head["tiles"][1]
        _need(count * MIN_INDEX_ENTRY <= self.size - c.pos, f"its tile index of {count} tiles is cut short, the "
              "file is truncated")
        header_end = c.pos
        self.file.seek(0)
        c = _Cursor(self.file.read(header_end + count * (MAX_VARINT_BYTES + CRC.size + FINGERPRINT_SIZE)
                                   + CRC.size), "the tile index")
        c.pos = header_end
        entries = []
        for _ in range(count):
            packed = c.varint(self.size << 2 | 3, "a tile length")
            entries.append((packed >> 2, packed & 3, CRC.unpack(c.raw(CRC.size))[0], c.raw(FINGERPRINT_SIZE)))
        (crc,) = CRC.unpack(c.raw(CRC.size))
        _need(zlib.crc32(c.data[:c.pos - CRC.size]) == crc, "checksum error in its header")
        offset, self.index = c.pos, []
        for number, (length, kind, tile_crc, tile_fingerprint) in enumerate(entries):
            _need(kind in (MASK_ALL_VALID, MASK_ALL_NODATA, MASK_BITS), f"tile {number} has an unknown mask kind")
            self.index.append(IndexEntry(offset, length, kind, tile_crc, bytes(tile_fingerprint)))
            offset += length
        _need(offset <= self.size, "its tiles run past the end of the file, which is truncated")
        _need(offset == self.size, f"{self.size - offset} bytes follow its last tile")
        self.header_bytes = c.pos

    def read_tile(self, number):
        """The TileRecord of tile `number` (row-major), CRC-checked against the index."""
        entry = self.index[number]
        self.file.seek(entry.offset)
        data = self.file.read(entry.length)
        if len(data) != entry.length:
            raise self._corrupt(f"tile {number} is cut short, the file is truncated")
        if zlib.crc32(data) != entry.crc:
            raise self._corrupt(f"checksum error in tile {number}")
        try:
            return TileRecord.from_bytes(data, number, entry.mask_kind, self.head["embedded_guidance"])
        except Invalid as exc:
            raise self._corrupt(str(exc)) from None

    def info(self):
        """Everything but the tiles, as a JSON-ready dict (what `python -m magc_plugin info` prints), with the
        bytes the container itself takes: the header and index, and each record's own length fields."""
        pixels = self.head["width"] * self.head["height"]
        records = [self.read_tile(i) for i in range(len(self.index))]
        stream = sum(len(r.payload) for r in records)
        embedded = sum(len(r.guidance_bytes) for r in records)
        masks = sum(len(r.mask_bytes) for r in records)
        return {"file": str(self.path), "format_version": "%d.%d" % self.version, "bytes": self.size,
                "bpp": 8 * self.size / pixels, "tile_stream_bytes": stream, "embedded_guidance_bytes": embedded,
                "nodata_mask_bytes": masks, "container_bytes": self.size - stream - embedded - masks,
                "tiles": len(records), "header": self.head, "georef": self.georef, "model": self.model}
