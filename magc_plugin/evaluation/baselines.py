"""Classical image codecs at a target bitrate, counted in real bytes.

Every codec goes through a Python package (no hand-built binaries). What is counted
as the coded size, per codec:

| codec | package | setting searched | bytes counted |
|---|---|---|---|
| ``jpeg`` | Pillow (libjpeg-turbo), 4:2:0, optimised Huffman | quality 1..95 | the whole JFIF file (headers and tables included) |
| ``webp`` | Pillow (libwebp), method 6 | quality 0..100 | the whole RIFF/WebP file |
| ``jpeg2000`` | Pillow (OpenJPEG), ``quality_mode='rates'`` | the rate asked of OpenJPEG | the raw J2K codestream (no JP2 boxes) |
| ``avif`` | pillow-avif-plugin (libavif + libaom), 4:2:0, speed 6 | quality 0..100 | the whole AVIF file (HEIF boxes included) |
| ``hevc`` | PyAV (FFmpeg + libx265), intra, 4:2:0 | QP 51..0 | the Annex-B stream: VPS+SPS+PPS+slice with start codes; x265's SEI info message (~2 KB of encoder settings) is switched off (``info=0``) |
| ``svtav1`` | PyAV (FFmpeg + SVT-AV1), still picture (``avif=1``), 4:2:0, preset 4; decoded by libdav1d | CRF 63..1 | the low-overhead OBUs: sequence header (reduced still-picture header) + frame; the 2-byte temporal delimiter OBUs are dropped (no IVF or other container) |

Container and header bytes are real costs of each format as a file, so they are
kept (JPEG's tables are about 0.07 bpp of a 256x256 tile). A codec has a floor: at
its lowest setting it cannot go lower; :func:`encode_at_bpp` then returns that
floor's real bpp, and :func:`lowest_bpp` reports it.
"""
import io
import os
import time
from fractions import Fraction
from typing import NamedTuple

import numpy as np
from PIL import Image

from .metrics import bits_per_pixel


class Codec:
    """One classical codec: `encode(image, setting) -> bytes`, `decode(bytes) -> image`.

    Settings run from `low` (fewest bits) to `high` (most bits); bpp is assumed to
    grow with the setting, as it does for all of these up to small wiggles.
    """

    name = ""
    low, high = 0, 100
    integer = True

    def encode(self, image, setting):
        raise NotImplementedError

    def decode(self, data):
        raise NotImplementedError


class PillowCodec(Codec):
    format = ""

    def options(self, setting):
        return {"quality": int(setting)}

    def encode(self, image, setting):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=self.format, **self.options(setting))
        return buf.getvalue()

    def decode(self, data):
        with Image.open(io.BytesIO(data)) as im:
            return np.array(im.convert("RGB"))


class JPEG(PillowCodec):
    name, format = "jpeg", "JPEG"
    low, high = 1, 95

    def options(self, setting):
        return {"quality": int(setting), "optimize": True, "subsampling": "4:2:0"}


class WebP(PillowCodec):
    name, format = "webp", "WEBP"

    def options(self, setting):
        return {"quality": int(setting), "method": 6}


class JPEG2000(PillowCodec):
    """OpenJPEG with one quality layer at a compression ratio of 24 bits / target bpp."""

    name, format = "jpeg2000", "JPEG2000"
    low, high = 0.002, 8.0
    integer = False

    def options(self, setting):
        return {"quality_mode": "rates", "quality_layers": [24.0 / setting], "no_jp2": True}


class AVIF(PillowCodec):
    name, format = "avif", "AVIF"

    def options(self, setting):
        return {"quality": int(setting), "speed": 6, "subsampling": "4:2:0", "codec": "aom", "max_threads": 1}

    def encode(self, image, setting):
        import pillow_avif  # noqa: F401  (registers the AVIF format with Pillow)
        return super().encode(image, setting)

    def decode(self, data):
        import pillow_avif  # noqa: F401
        return super().decode(data)


class HEVC(Codec):
    """x265 intra coding of one frame (setting = 51 - QP), decoded by FFmpeg's HEVC decoder.

    Sides must be even for 4:2:0: odd images are padded by edge replication, and
    :func:`encode` crops the decoded frame back.
    """

    name = "hevc"
    low, high = 0, 51

    def encode(self, image, setting):
        import av
        h, w = image.shape[:2]
        padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        ctx = av.CodecContext.create("libx265", "w")
        ctx.width, ctx.height = padded.shape[1], padded.shape[0]
        ctx.pix_fmt, ctx.time_base = "yuv420p", Fraction(1, 1)
        ctx.options = {"x265-params": f"qp={51 - int(setting)}:keyint=1:info=0:log-level=none:pools=1:frame-threads=1"}
        frame = av.VideoFrame.from_ndarray(padded, format="rgb24").reformat(format="yuv420p")
        packets = list(ctx.encode(frame)) + list(ctx.encode(None))
        header = bytes(ctx.extradata or b"")  # empty: x265 writes VPS/SPS/PPS in-band here
        return header + b"".join(bytes(p) for p in packets)

    def decode(self, data):
        import av
        ctx = av.CodecContext.create("hevc", "r")
        frames = list(ctx.decode(av.Packet(data))) + list(ctx.decode(None))
        return frames[0].to_ndarray(format="rgb24")


OBU_TEMPORAL_DELIMITER = 2


def _leb128(data, pos):
    """(value, next position) of an unsigned LEB128 number at data[pos:]."""
    value = 0
    for i in range(8):
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError("LEB128 number longer than 8 bytes.")


def av1_obus(data):
    """[(OBU type, the OBU's bytes)] of a low-overhead AV1 stream (every OBU with its size field)."""
    obus, pos = [], 0
    while pos < len(data):
        header = data[pos]
        if not header & 0x02:
            raise ValueError(f"OBU at byte {pos} has no size field: not a low-overhead stream.")
        start = pos + 1 + (header >> 2 & 1)  # the extension byte, when present
        size, payload = _leb128(data, start)
        obus.append((header >> 3 & 0x0F, data[pos:payload + size]))
        pos = payload + size
    return obus


class SVTAV1(Codec):
    """SVT-AV1 still-picture coding of one frame (setting = 63 - CRF), decoded by libdav1d.

    ``avif=1`` is SVT-AV1's still-image mode: all intra, one key frame, the reduced
    still-picture sequence header (the AV1 layout an AVIF file holds). Odd sides are padded
    for 4:2:0 as in :class:`HEVC`. Only the OBUs count: the temporal delimiters PyAV's
    packets start with are framing, which a tile format would not store.
    """

    name = "svtav1"
    low, high = 0, 62  # CRF 63..1: FFmpeg's wrapper reads CRF 0 as "unset" and falls back to its default QP

    def encode(self, image, setting):
        import av
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration to stderr per encoder
        h, w = image.shape[:2]
        padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        ctx = av.CodecContext.create("libsvtav1", "w")
        ctx.width, ctx.height = padded.shape[1], padded.shape[0]
        ctx.pix_fmt, ctx.time_base = "yuv420p", Fraction(1, 1)
        ctx.options = {"crf": str(63 - int(setting)), "preset": "4", "svtav1-params": "avif=1:lp=1"}
        frame = av.VideoFrame.from_ndarray(padded, format="rgb24").reformat(format="yuv420p")
        packets = list(ctx.encode(frame)) + list(ctx.encode(None))
        stream = bytes(ctx.extradata or b"") + b"".join(bytes(p) for p in packets)  # no extradata: headers in-band
        return b"".join(obu for kind, obu in av1_obus(stream) if kind != OBU_TEMPORAL_DELIMITER)

    def decode(self, data):
        import av
        ctx = av.CodecContext.create("libdav1d", "r")
        frames = list(ctx.decode(av.Packet(data))) + list(ctx.decode(None))
        return frames[0].to_ndarray(format="rgb24")


CODECS = {c.name: c for c in (JPEG(), WebP(), JPEG2000(), AVIF(), HEVC(), SVTAV1())}


def get_codec(codec):
    if isinstance(codec, Codec):
        return codec
    if codec not in CODECS:
        raise ValueError(f"Unknown codec {codec!r}: choose one of {sorted(CODECS)}.")
    return CODECS[codec]


class Coded(NamedTuple):
    """One coding of an image: the decoded image, its real rate, the setting and the time each way."""

    decoded: np.ndarray
    bpp: float
    num_bytes: int
    encode_s: float
    decode_s: float
    setting: float


def encode(codec, image, setting):
    """Code an image at one setting of a codec -> :class:`Coded`."""
    codec = get_codec(codec)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    t0 = time.perf_counter()
    data = codec.encode(image, setting)
    t1 = time.perf_counter()
    decoded = np.ascontiguousarray(codec.decode(data)[:h, :w])
    t2 = time.perf_counter()
    return Coded(decoded, bits_per_pixel(len(data), h * w), len(data), t1 - t0, t2 - t1, setting)


def lowest_bpp(codec, image):
    """The real bpp of a codec at its lowest setting on this image: its floor."""
    codec = get_codec(codec)
    return encode(codec, image, codec.low).bpp


def code_at_bpp(codec, image, target_bpp, iterations=12):
    """:class:`Coded` at the largest setting whose real bpp <= target_bpp.

    Bisection on the codec's setting. If even the lowest setting costs more than the
    target, the lowest setting's result is returned: its real bpp (above the target)
    is then the codec's floor on this image. Times are those of the chosen setting.
    """
    codec = get_codec(codec)
    lo, hi = codec.low, codec.high
    best = encode(codec, image, lo)
    if best.bpp > target_bpp:
        return best
    top = encode(codec, image, hi)
    if top.bpp <= target_bpp:
        return top
    for _ in range(iterations):  # invariant: bpp(lo) <= target < bpp(hi)
        if codec.integer and hi - lo <= 1:
            break
        mid = (lo + hi) // 2 if codec.integer else (lo * hi) ** 0.5
        result = encode(codec, image, mid)
        if result.bpp <= target_bpp:
            lo, best = mid, result
        else:
            hi = mid
    return best


def encode_at_bpp(codec, image, target_bpp):
    """(decoded image, real bpp) at the largest setting whose real bpp <= target_bpp
    (the codec's floor, above the target, when it cannot go that low)."""
    coded = code_at_bpp(codec, image, target_bpp)
    return coded.decoded, coded.bpp
