"""The ``.magc`` file: signature, version, typed CRC32 chunks, a tile index before the tiles.

Layout (every integer big-endian)::

    signature   8 bytes  89 4D 47 43 0D 0A 1A 0A   ("\\x89MGC\\r\\n\\x1a\\n", as PNG)
    version     2 x u16  major, minor
    chunks      u32 length | 4-byte type | payload | u32 CRC32(type + payload)

    HEAD  raster: size, bands, source dtype and stretch, tiling       (JSON)
    GEOR  georeferencing: CRS (WKT2 + authority id), geotransform, nodata (JSON)
    MODL  the model that coded it: model.identity()                     (JSON)
    TIDX  tile index: u32 count, then per tile offset u64, length u32,
          CRC32 u32 and a 16-byte guidance fingerprint
    TILE  one chunk per tile, in index order (see TileRecord)
    IEND  empty: the end

The signature catches text-mode transfers (the high byte is stripped, CR LF and LF are
rewritten, ^Z ends a DOS read). As in PNG, an upper-case first letter of a chunk type
marks a critical chunk: a reader refuses a critical type it does not know, and skips
an unknown ancillary (lower-case) one. The index sits before the tiles, as in a
Cloud-Optimized GeoTIFF, so one region is decoded by seeking to its tiles only.

Every problem a reader meets is a :class:`MAGCError` that says what went wrong.
"""
import hashlib
import json
import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .codec.errors import MAGCError

SIGNATURE = b"\x89MGC\r\n\x1a\n"
# A new major version is unreadable by older readers; a minor one only adds ancillary chunks.
# 2.0: each tile's codec payload starts with the tile's mean colour (codec.tile_colour).
VERSION = (2, 0)
CHUNK_HEAD = struct.Struct(">I4s")
CRC = struct.Struct(">I")
INDEX_ENTRY = struct.Struct(">QII16s")
MAX_JSON_CHUNK = 16 << 20
MAX_SIDE = 1 << 31
FINGERPRINT_SIZE = 16

# Per-tile validity mask codes (TileRecord.mask_kind).
MASK_ALL_VALID, MASK_ALL_NODATA, MASK_BITS = 0, 1, 2

KNOWN_CHUNKS = (b"HEAD", b"GEOR", b"MODL", b"TIDX", b"TILE", b"IEND")
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def is_critical(chunk_type):
    """PNG's rule: an upper-case first letter means a reader must understand the chunk."""
    return chunk_type[:1].isupper()


def fingerprint(class_raster):
    """A 16-byte hash of a tile's guidance class raster (shape and values)."""
    arr = np.ascontiguousarray(class_raster, dtype=np.uint8)
    digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
    digest.update(struct.pack(">II", *arr.shape))
    digest.update(arr.tobytes())
    return digest.digest()


def _chunk(chunk_type, payload):
    return CHUNK_HEAD.pack(len(payload), chunk_type) + payload + CRC.pack(zlib.crc32(chunk_type + payload))


def _json_bytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


# -- tile records ----------------------------------------------------------------------------------
@dataclass
class TileRecord:
    """One tile's data. Payload of a TILE chunk::

        u32 tile number | u8 mask kind | u32 n | n mask bytes (zlib of packed bits, MASK_BITS only)
        | u32 m | m guidance bytes (zlib of the uint8 class raster, empty if not embedded) | codec payload
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

    def to_bytes(self):
        return (struct.pack(">IBI", self.number, self.mask_kind, len(self.mask_bytes)) + self.mask_bytes
                + struct.pack(">I", len(self.guidance_bytes)) + self.guidance_bytes + self.payload)

    @classmethod
    def from_bytes(cls, data, number):
        where = f"tile {number}"
        try:
            n, kind, mask_len = struct.unpack_from(">IBI", data, 0)
            pos = 9
            mask = data[pos:pos + mask_len]
            pos += mask_len
            (guidance_len,) = struct.unpack_from(">I", data, pos)
            pos += 4
            guidance = data[pos:pos + guidance_len]
            pos += guidance_len
        except struct.error:
            raise MAGCError(f"The .magc file is corrupt: {where} is cut short. Copy the file again.") from None
        if pos > len(data) or n != number or kind not in (MASK_ALL_VALID, MASK_ALL_NODATA, MASK_BITS):
            raise MAGCError(f"The .magc file is corrupt: {where} has an invalid record. Copy the file again.")
        if (kind == MASK_BITS) != bool(mask_len):
            raise MAGCError(f"The .magc file is corrupt: {where} has an inconsistent nodata mask.")
        return cls(n, kind, bytes(mask), bytes(guidance), bytes(data[pos:]))

    def valid_mask(self, shape):
        """The boolean validity mask (H, W) of the tile."""
        if self.mask_kind == MASK_ALL_VALID:
            return np.ones(shape, bool)
        if self.mask_kind == MASK_ALL_NODATA:
            return np.zeros(shape, bool)
        count = shape[0] * shape[1]
        bits = _inflate(self.mask_bytes, (count + 7) // 8, f"the nodata mask of tile {self.number}")
        return np.unpackbits(np.frombuffer(bits, np.uint8), count=count).astype(bool).reshape(shape)

    def class_raster(self, shape):
        """The embedded class raster (H, W), or None if the guidance was not embedded."""
        if not self.guidance_bytes:
            return None
        raw = _inflate(self.guidance_bytes, shape[0] * shape[1], f"the embedded guidance of tile {self.number}")
        return np.frombuffer(raw, np.uint8).reshape(shape)


def _inflate(data, size, what):
    """zlib-decompress exactly `size` bytes, refusing anything else (and never inflating past it)."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, size + 1)
        ok = len(raw) == size and inflater.eof and not inflater.unconsumed_tail
    except zlib.error:
        ok = False
    if not ok:
        raise MAGCError(f"The .magc file is corrupt: {what} cannot be unpacked. Copy the file again.")
    return raw


# -- header validation -----------------------------------------------------------------------------
def _need(cond, what):
    if not cond:
        raise MAGCError(f"The .magc file is corrupt or from an incompatible writer: {what}.")


def _is_int(v, lo=0, hi=MAX_SIDE):
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def tile_grid(width, height, tile_size):
    """(columns, rows) of the tile grid."""
    return -(-width // tile_size), -(-height // tile_size)


def validate_header(head):
    """Check the HEAD chunk's fields; returns it."""
    _need(isinstance(head, dict), "the header is not a record")
    for key in ("width", "height"):
        _need(_is_int(head.get(key), 1), f"bad raster {key}")
    _need(_is_int(head.get("tile_size"), 64, 1 << 16) and head["tile_size"] % 64 == 0, "bad tile size")
    _need(head.get("overlap") == 0, f"tile overlap {head.get('overlap')!r} is not supported by this version")
    bands = head.get("bands")
    _need(isinstance(bands, list) and len(bands) == 3 and all(_is_int(b, 1, 1 << 16) for b in bands),
          "bad band list")
    out = head.get("output_bands")
    _need(isinstance(out, list) and out == list(dict.fromkeys(bands)), "bad output band list")
    _need(head.get("dtype") in DTYPES, f"unknown source data type {head.get('dtype')!r}")
    stretch = head.get("stretch")
    _need(isinstance(stretch, list) and len(stretch) == 3
          and all(isinstance(s, list) and len(s) == 2 and all(map(_is_num, s)) and s[1] > s[0] for s in stretch),
          "bad band stretch")
    cols, rows = tile_grid(head["width"], head["height"], head["tile_size"])
    _need(head.get("tiles") == [cols, rows], "the tile grid does not match the raster size")
    _need(isinstance(head.get("embedded_guidance"), bool), "bad embedded-guidance flag")
    return head


def validate_georef(geo, n_bands):
    _need(isinstance(geo, dict), "the georeferencing is not a record")
    _need(geo.get("crs_wkt") is None or isinstance(geo["crs_wkt"], str), "bad CRS")
    _need(geo.get("crs_id") is None or isinstance(geo["crs_id"], str), "bad CRS id")
    t = geo.get("transform")
    _need(isinstance(t, list) and len(t) == 6 and all(map(_is_num, t)) and t[0] * t[4] - t[1] * t[3] != 0,
          "bad geotransform")
    nodata = geo.get("nodata")
    _need(isinstance(nodata, list) and len(nodata) == n_bands
          and all(v is None or v == "nan" or _is_num(v) for v in nodata), "bad nodata values")
    return geo


def validate_model(ident):
    _need(isinstance(ident, dict) and isinstance(ident.get("weights_sha256"), str)
          and isinstance(ident.get("rate"), str), "bad model identity")
    return ident


def nodata_to_json(value):
    if value is None:
        return None
    return "nan" if math.isnan(value) else float(value)


def nodata_from_json(value):
    return float("nan") if value == "nan" else value


# -- writing ---------------------------------------------------------------------------------------
class MAGCWriter:
    """Write a .magc file to a temporary file next to `path`; ``commit()`` renames it into place.

    Leaving the ``with`` block without ``commit()`` (an error, a cancel) deletes the temporary
    file, so a failed or cancelled write leaves nothing behind::

        with MAGCWriter(path, head, georef, model_identity) as writer:
            for record in records:
                writer.add_tile(record, fingerprint)
            writer.commit()
    """

    def __init__(self, path, head, georef, model_identity):
        self.path = Path(path)
        self.head = validate_header(head)
        self.georef = validate_georef(georef, len(head["output_bands"]))
        self.model = validate_model(model_identity)
        self.count = head["tiles"][0] * head["tiles"][1]
        self.entries = []
        self.file = None
        self.tmp = None

    def __enter__(self):
        folder = self.path.parent
        if not folder.is_dir():
            raise MAGCError(f"Cannot write {self.path}: the folder {folder} does not exist.")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=folder)
        except OSError as exc:
            raise MAGCError(f"Cannot write in {folder} ({exc.strerror}): choose a writable folder.") from exc
        self.tmp = Path(tmp)
        try:
            self.file = os.fdopen(fd, "w+b")
            self._write(SIGNATURE + struct.pack(">HH", *VERSION))
            for chunk_type, obj in ((b"HEAD", self.head), (b"GEOR", self.georef), (b"MODL", self.model)):
                self._write(_chunk(chunk_type, _json_bytes(obj)))
            self.index_at = self.file.tell()
            # A placeholder of the final size; filled in by commit() once the tiles are written.
            self._write(b"\0" * (CHUNK_HEAD.size + 4 + self.count * INDEX_ENTRY.size + CRC.size))
        except BaseException:
            self.__exit__()  # `with` calls __exit__ only once __enter__ has returned
            raise
        return self

    def _write(self, data):
        try:
            self.file.write(data)
        except OSError as exc:
            raise MAGCError(f"Writing {self.path} failed ({exc.strerror or exc}): free some disk space or choose "
                            "another folder; nothing was written.") from exc

    def add_tile(self, record, tile_fingerprint):
        """Append the next tile (records come in index order)."""
        if record.number != len(self.entries) or len(self.entries) >= self.count:
            raise ValueError(f"tile {record.number} written out of order")
        chunk = _chunk(b"TILE", record.to_bytes())
        offset = self.file.tell()
        self._write(chunk)
        crc = CRC.unpack_from(chunk, len(chunk) - CRC.size)[0]
        self.entries.append((offset, len(chunk) - CHUNK_HEAD.size - CRC.size, crc, tile_fingerprint))

    def commit(self):
        """Write the index and the end chunk, flush to disk, rename into place; returns the file size."""
        if len(self.entries) != self.count:
            raise ValueError(f"{len(self.entries)} of {self.count} tiles written")
        self._write(_chunk(b"IEND", b""))
        size = self.file.tell()
        index = struct.pack(">I", self.count) + b"".join(INDEX_ENTRY.pack(*e) for e in self.entries)
        self.file.seek(self.index_at)
        self._write(_chunk(b"TIDX", index))
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            raise MAGCError(f"Writing {self.path} failed ({exc.strerror or exc}); nothing was written.") from exc
        self.tmp = None
        return size

    def __exit__(self, *exc):
        if self.file is not None and not self.file.closed:
            self.file.close()
        if self.tmp is not None:
            try:
                self.tmp.unlink()
            except OSError:
                pass
        return False


# -- reading ---------------------------------------------------------------------------------------
@dataclass
class IndexEntry:
    offset: int
    length: int
    crc: int
    fingerprint: bytes


class MAGCReader:
    """Open and validate a .magc file: signature, version, every chunk's structure, the header
    chunks' CRC and content, the tile index. Tiles are read (and CRC-checked) on demand::

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

    def _read_exact(self, offset, size, what):
        self.file.seek(offset)
        data = self.file.read(size)
        if len(data) != size:
            raise self._corrupt(f"{what} is cut short, the file is truncated")
        return data

    def _parse(self):
        self.size = os.fstat(self.file.fileno()).st_size
        start = self.file.read(len(SIGNATURE) + 4)
        if start[:len(SIGNATURE)] != SIGNATURE:
            if start[1:4] == b"MGC":
                raise self._corrupt("its signature was altered, probably by a text-mode transfer; transfer it "
                                    "in binary mode")
            raise MAGCError(f"{self.path.name} is not a .magc file (no MAGC signature): give a file written by "
                            "MAGC's compress tool.")
        if len(start) < len(SIGNATURE) + 4:
            raise self._corrupt("the file is truncated after its signature")
        self.version = struct.unpack_from(">HH", start, len(SIGNATURE))
        if self.version[0] != VERSION[0]:
            what = "update the plugin" if self.version[0] > VERSION[0] else \
                "compress the original raster again, or decode the file with the older MAGC that wrote it"
            raise MAGCError(f"{self.path.name} is in .magc format version {self.version[0]}.{self.version[1]}, which "
                            f"this MAGC (format {VERSION[0]}.{VERSION[1]}) cannot read: {what}.")
        chunks = self._walk(len(start))
        types = [c[0] for c in chunks]
        order = [t for t in types if t in KNOWN_CHUNKS]
        tiles = order.count(b"TILE")
        if order != [b"HEAD", b"GEOR", b"MODL", b"TIDX"] + [b"TILE"] * tiles + [b"IEND"]:
            raise self._corrupt("its chunks are missing or out of order")
        by_type = {t: (offset, length) for t, offset, length in chunks if t != b"TILE"}
        self.head = validate_header(self._json(b"HEAD", *by_type[b"HEAD"]))
        self.georef = validate_georef(self._json(b"GEOR", *by_type[b"GEOR"]), len(self.head["output_bands"]))
        self.model = validate_model(self._json(b"MODL", *by_type[b"MODL"]))
        self.index = self._index(*by_type[b"TIDX"])
        self._payload(b"IEND", *by_type[b"IEND"])  # its CRC: the last bytes of the file are intact
        tile_chunks = [(offset, length) for t, offset, length in chunks if t == b"TILE"]
        if [(e.offset, e.length) for e in self.index] != tile_chunks:
            raise self._corrupt("its tile index does not match its tiles")

    def _walk(self, pos):
        """(type, offset, payload length) of every chunk up to IEND; refuses unknown critical chunks."""
        chunks = []
        while True:
            if pos + CHUNK_HEAD.size + CRC.size > self.size:
                raise self._corrupt("the file is truncated")
            length, chunk_type = CHUNK_HEAD.unpack(self._read_exact(pos, CHUNK_HEAD.size, "a chunk header"))
            if not all(65 <= c <= 90 or 97 <= c <= 122 for c in chunk_type):
                raise self._corrupt(f"invalid chunk type at byte {pos}")
            if pos + CHUNK_HEAD.size + length + CRC.size > self.size:
                raise self._corrupt(f"chunk {chunk_type.decode()} runs past the end of the file, which is truncated")
            if chunk_type not in KNOWN_CHUNKS and is_critical(chunk_type):
                raise MAGCError(f"{self.path.name} holds a critical chunk '{chunk_type.decode()}' that this MAGC "
                                "does not know: it was written by a newer version; update the plugin.")
            chunks.append((chunk_type, pos, length))
            pos += CHUNK_HEAD.size + length + CRC.size
            if chunk_type == b"IEND":
                if pos != self.size:
                    raise self._corrupt("bytes follow its end chunk")
                return chunks

    def _payload(self, chunk_type, offset, length):
        data = self._read_exact(offset + CHUNK_HEAD.size, length + CRC.size, f"chunk {chunk_type.decode()}")
        payload, (crc,) = data[:length], CRC.unpack_from(data, length)
        if zlib.crc32(chunk_type + payload) != crc:
            raise self._corrupt(f"checksum error in chunk {chunk_type.decode()}")
        return payload, crc

    def _json(self, chunk_type, offset, length):
        if length > MAX_JSON_CHUNK:
            raise self._corrupt(f"chunk {chunk_type.decode()} is implausibly large")
        payload, _ = self._payload(chunk_type, offset, length)
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self._corrupt(f"chunk {chunk_type.decode()} is not valid JSON") from None

    def _index(self, offset, length):
        cols, rows = self.head["tiles"]
        count = cols * rows
        if length != 4 + count * INDEX_ENTRY.size:
            raise self._corrupt("its tile index has the wrong size")
        payload, _ = self._payload(b"TIDX", offset, length)
        if struct.unpack_from(">I", payload)[0] != count:
            raise self._corrupt("its tile index has the wrong number of tiles")
        return [IndexEntry(*INDEX_ENTRY.unpack_from(payload, 4 + i * INDEX_ENTRY.size)) for i in range(count)]

    def read_tile(self, number):
        """The TileRecord of tile `number` (row-major), CRC-checked against the chunk and the index."""
        entry = self.index[number]
        payload, crc = self._payload(b"TILE", entry.offset, entry.length)
        if crc != entry.crc:
            raise self._corrupt(f"tile {number} does not match its index entry")
        return TileRecord.from_bytes(payload, number)

    def info(self):
        """Everything but the tiles, as a JSON-ready dict (what `python -m magc_plugin info` prints)."""
        pixels = self.head["width"] * self.head["height"]
        embedded = sum(len(self.read_tile(i).guidance_bytes) for i in range(len(self.index))) \
            if self.head["embedded_guidance"] else 0
        return {"file": str(self.path), "format_version": "%d.%d" % self.version, "bytes": self.size,
                "bpp": 8 * self.size / pixels, "embedded_guidance_bytes": embedded,
                "header": self.head, "georef": self.georef, "model": self.model}
