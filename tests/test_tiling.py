"""Whole-raster compress/decompress with a tiny random model: georeferencing, regions, bad inputs, seams."""
import errno
import os
import random
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin
from rasterio.windows import Window

import magc_plugin
from magc_plugin import container, tiling
from magc_plugin.benchmarks.seams import seam_gradients
from magc_plugin.codec.errors import MAGCError

CRS = "EPSG:32737"
ORIGIN = from_origin(500000.0, 9330000.0, 0.5, 0.5)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from magc_plugin.codec.model import MAGCModel
    return MAGCModel.from_pretrained(tiny_model_dir, device="cpu")


def write_tif(path, data, crs=CRS, transform=ORIGIN, nodata=None):
    """A GeoTIFF from a (bands, H, W) array."""
    count, height, width = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
                       crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
    return path


def rgb(width, height, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([128 + 60 * np.sin(xx / 9), 128 + 60 * np.cos(yy / 7), 60 + (xx + yy) % 128])
    return (image + rng.normal(0, 12, image.shape)).clip(1, 255).astype(np.uint8)


def stripes(transform, width, height, crs):
    """A guidance callable: class depends on the map position, so windows must be placed right."""
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x, _ = transform * (cols, rows)
    return ((np.floor(x / 16.0) % 3) + 1).astype(np.uint8)


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("width,height,tile", [(200, 130, 128), (31, 17, 64), (131, 67, 64)])
def test_round_trip_keeps_georeferencing(tiny_model, tmp_path, width, height, tile):
    """Non-square, odd, smaller-than-a-tile sizes; nodata pixels come back as nodata, the rest does not."""
    data = rgb(width, height)
    data[:, :5, :7] = 0
    src = write_tif(tmp_path / "in.tif", data, nodata=0)
    report = tiling.compress_raster(src, tmp_path / "a.magc", stripes, tiny_model, tile_size=tile)
    assert report["bytes"] == (tmp_path / "a.magc").stat().st_size
    assert report["pixels"] == width * height and report["bpp"] == pytest.approx(8 * report["bytes"] / (width * height))
    out = tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", stripes, tiny_model, steps=1)
    assert out["pixels"] == width * height and out["guidance_mismatch"] == []
    with rasterio.open(src) as a, rasterio.open(tmp_path / "out.tif") as b:
        assert (b.width, b.height, b.count, b.dtypes, b.nodata) == (a.width, a.height, 3, a.dtypes, 0)
        assert b.crs == a.crs and b.transform == a.transform
        assert (b.dataset_mask() == a.dataset_mask()).all()
        assert b.profile["tiled"] and b.profile["compress"] == "deflate"
    assert files_in(tmp_path) == ["a.magc", "in.tif", "out.tif"]


def test_region_decode_equals_full_decode(tiny_model, tmp_path):
    src = write_tif(tmp_path / "in.tif", rgb(300, 200))
    tiling.compress_raster(src, tmp_path / "a.magc", stripes, tiny_model, tile_size=64)
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "full.tif", stripes, tiny_model, steps=2, seed=3)
    extent = ORIGIN * (130, 150) + ORIGIN * (205, 70)  # xmin, ymin, xmax, ymax
    report = tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "part.tif", stripes, tiny_model, steps=2,
                                      seed=3, extent=extent)
    x0, y0, x1, y1 = report["window"]
    assert (x0, y0, x1, y1) == (130, 70, 205, 150) and report["tiles"] == 2 * 2
    with rasterio.open(tmp_path / "full.tif") as full, rasterio.open(tmp_path / "part.tif") as part:
        assert (part.read() == full.read(window=Window(x0, y0, x1 - x0, y1 - y0))).all()
        assert part.transform == full.window_transform(Window(x0, y0, x1 - x0, y1 - y0))
    with pytest.raises(MAGCError, match="does not overlap"):
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "x.tif", stripes, tiny_model, extent=(0, 0, 1, 1))


def test_same_seed_same_image_other_seed_differs(tiny_model, tmp_path):
    src = write_tif(tmp_path / "in.tif", rgb(128, 64))
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    images = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / f"{name}.tif", None, tiny_model, steps=2, seed=seed)
        with rasterio.open(tmp_path / f"{name}.tif") as f:
            images.append(f.read())
    assert (images[0] == images[1]).all() and (images[0] != images[2]).any()


def test_16_bit_stretch(tiny_model, tmp_path):
    data = (rgb(96, 80).astype(np.uint16) * 40 + 1000)
    src = write_tif(tmp_path / "in.tif", data, nodata=0)
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    with container.MAGCReader(tmp_path / "a.magc") as reader:
        stretch = reader.head["stretch"]
    for band, (lo, hi) in enumerate(stretch):
        assert lo == pytest.approx(np.percentile(data[band], 2), rel=0.05)
        assert hi == pytest.approx(np.percentile(data[band], 98), rel=0.05)
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=0)
    with rasterio.open(tmp_path / "out.tif") as out:
        decoded = out.read()
        assert out.dtypes == ("uint16",) * 3 and out.nodata == 0
    for band, (lo, hi) in enumerate(stretch):
        assert decoded[band].min() >= int(lo) and decoded[band].max() <= int(np.ceil(hi))


def test_four_bands_with_band_choice(tiny_model, tmp_path):
    data = np.concatenate([rgb(64, 64), rgb(64, 64, seed=1)[:1]])
    src = write_tif(tmp_path / "in.tif", data)
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, bands=[4, 3, 2], tile_size=64)
    assert tiling.raster_info(tmp_path / "a.magc")["width"] == 64
    with container.MAGCReader(tmp_path / "a.magc") as reader:
        assert reader.head["bands"] == [4, 3, 2]
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=0)
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.count == 3
    with pytest.raises(MAGCError, match="do not exist"):
        tiling.compress_raster(src, tmp_path / "b.magc", None, tiny_model, bands=[5, 1, 2], tile_size=64)
    with pytest.raises(MAGCError, match="one band .* or three"):
        tiling.compress_raster(src, tmp_path / "b.magc", None, tiny_model, bands=[1, 2], tile_size=64)


def test_single_band_is_coded_as_grey(tiny_model, tmp_path):
    src = write_tif(tmp_path / "in.tif", rgb(64, 64)[:1])
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=0)
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.count == 1


def test_all_nodata_tiles(tiny_model, tmp_path):
    data = rgb(128, 128)
    data[:, :64, :64] = 0  # one whole tile of nodata
    src = write_tif(tmp_path / "in.tif", data, nodata=0)
    report = tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    assert report["nodata_tiles"] == 1
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=1)
    with rasterio.open(tmp_path / "out.tif") as out:
        mask = out.dataset_mask()
    assert (mask[:64, :64] == 0).all() and (mask[64:] == 255).all() and (mask[:, 64:] == 255).all()


def test_nan_pixels_without_nodata_value_use_a_mask(tiny_model, tmp_path):
    data = rgb(64, 64).astype(np.float32)
    data[:, :, :10] = np.nan
    src = write_tif(tmp_path / "in.tif", data)
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=0)
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.dtypes[0] == "float32"
        assert (out.dataset_mask()[:, :10] == 0).all() and (out.dataset_mask()[:, 10:] == 255).all()


def test_rotated_geotransform_and_no_crs(tiny_model, tmp_path):
    rotated = Affine(0.4, 0.1, 1000.0, 0.1, -0.4, 2000.0)
    seen = []

    def guidance(transform, width, height, crs):
        seen.append((transform, crs))
        return stripes(transform, width, height, crs)
    src = write_tif(tmp_path / "in.tif", rgb(100, 70), crs=None, transform=rotated)
    tiling.compress_raster(src, tmp_path / "a.magc", guidance, tiny_model, tile_size=64)
    # the second tile's window starts with the encoder's context (neighbour pixels) on its left
    assert seen[0] == (rotated, None) and seen[1][0] == rotated * Affine.translation(64 - tiling.ENCODE_CONTEXT, 0)
    report = tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", guidance, tiny_model, steps=0)
    assert report["guidance_mismatch"] == []
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.crs is None and out.transform == rotated


def test_guidance_mismatch_warns_and_strict_refuses(tiny_model, tmp_path):
    src = write_tif(tmp_path / "in.tif", rgb(128, 64))
    tiling.compress_raster(src, tmp_path / "a.magc", stripes, tiny_model, tile_size=64)

    def other(transform, width, height, crs):
        out = stripes(transform, width, height, crs)
        if transform.c > 500000.0 + 20:  # only the right-hand tile differs
            out[:] = 4
        return out
    with pytest.warns(tiling.GuidanceMismatchWarning, match=r"1 of 2 tiles .*\(1,0\)"):
        report = tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", other, tiny_model, steps=0)
    assert report["guidance_mismatch"] == [(1, 0)]
    with pytest.raises(MAGCError, match="differs .*strict"):
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "strict.tif", other, tiny_model, steps=0,
                                 strict_guidance=True)
    assert not (tmp_path / "strict.tif").exists()
    with pytest.warns(tiling.GuidanceMismatchWarning):  # no guidance at all, and none embedded
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "none.tif", None, tiny_model, steps=0)


def test_embedded_guidance_decodes_without_the_map(tiny_model, tmp_path):
    src = write_tif(tmp_path / "in.tif", rgb(128, 64))
    plain = tiling.compress_raster(src, tmp_path / "plain.magc", stripes, tiny_model, tile_size=64)
    embedded = tiling.compress_raster(src, tmp_path / "a.magc", stripes, tiny_model, tile_size=64, embed_guidance=True)
    assert embedded["guidance_bytes"] > 0  # counted in the size, with each tile's guidance length (a varint)
    assert 0 < embedded["bytes"] - plain["bytes"] - embedded["guidance_bytes"] <= 2 * embedded["tiles"]
    assert embedded["bpp"] > plain["bpp"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", tiling.GuidanceMismatchWarning)
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "emb.tif", None, tiny_model, steps=1)
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "map.tif", stripes, tiny_model, steps=1)
    with rasterio.open(tmp_path / "emb.tif") as a, rasterio.open(tmp_path / "map.tif") as b:
        assert (a.read() == b.read()).all()


def test_wrong_model_weights_refused(tiny_model, tmp_path, monkeypatch):
    import torch
    from magc_plugin.codec.model import MAGCModel
    torch.manual_seed(1)
    other = MAGCModel.from_config(tiny_model.config)
    other.update_tables()
    other.save_pretrained(tmp_path / "other_model")
    src = write_tif(tmp_path / "in.tif", rgb(64, 64))
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    with pytest.raises(MAGCError, match="compressed at rate 'medium' by a model whose stream checksum begins .*"
                                        r"decompress with the model folder and rate that compressed it\.$"):
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, str(tmp_path / "other_model"))
    assert not (tmp_path / "out.tif").exists()
    # a file from another plugin version: its shipped model may have been retrained since
    monkeypatch.setattr(magc_plugin, "__version__", "0.1.0")
    tiling.compress_raster(src, tmp_path / "old.magc", None, tiny_model, tile_size=64)
    monkeypatch.undo()
    with pytest.raises(MAGCError, match=r"rate that compressed it \(the file was written by MAGC 0\.1\.0: "):
        tiling.decompress_raster(tmp_path / "old.magc", tmp_path / "out.tif", None, str(tmp_path / "other_model"))


def _refit_copy(src, dst, part):
    """A copy of the model folder src whose autoencoder tensors under `part` (and, with the decoder, its denoiser)
    are nudged: a decoder refit, or an encoder change."""
    import shutil
    import torch
    from safetensors.torch import load_file, save_file
    shutil.copytree(src, dst)
    nudged = {"autoencoder.safetensors": part, **({"denoiser.safetensors": ""} if part == "decoder." else {})}
    for name, prefix in nudged.items():
        weights = load_file(dst / name)
        save_file({k: v + 0.01 if k.startswith(prefix) else v for k, v in weights.items()}, dst / name)
    return dst


def test_weights_refit_behind_the_same_stream_decode_with_a_warning(tiny_model, tiny_model_dir, tmp_path):
    src = write_tif(tmp_path / "in.tif", rgb(64, 64))
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    refit = _refit_copy(tiny_model_dir, tmp_path / "refit", "decoder.")
    with pytest.warns(UserWarning, match="compressed with other weights .* differs in detail"):
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "refit.tif", None, str(refit), steps=1)
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "same.tif", None, tiny_model, steps=1)
    with rasterio.open(tmp_path / "refit.tif") as a, rasterio.open(tmp_path / "same.tif") as b:
        assert a.shape == b.shape and (a.read() != b.read()).any()
    other_encoder = _refit_copy(tiny_model_dir, tmp_path / "encoder", "encoder.")
    with pytest.raises(MAGCError, match="compressed at rate .* reads other streams .*decompress with the model folder"):
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, str(other_encoder))
    assert not (tmp_path / "out.tif").exists()


def test_unreadable_and_empty_inputs(tiny_model, tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "text.tif").write_text("not a raster")
    for name in ("empty.tif", "text.tif", "missing.tif"):
        with pytest.raises(MAGCError, match="Cannot read the raster"):
            tiling.compress_raster(tmp_path / name, tmp_path / "a.magc", None, tiny_model)
    src = write_tif(tmp_path / "in.tif", rgb(64, 64))
    with pytest.raises(MAGCError, match="multiple of 64"):
        tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=100)
    assert not (tmp_path / "a.magc").exists()


def test_output_not_writable(tiny_model, tmp_path):
    src = write_tif(tmp_path / "in.tif", rgb(64, 64))
    with pytest.raises(MAGCError, match="does not exist"):
        tiling.compress_raster(src, tmp_path / "no" / "a.magc", None, tiny_model, tile_size=64)
    with pytest.raises(MAGCError, match="is a folder"):
        tiling.compress_raster(src, tmp_path, None, tiny_model, tile_size=64)
    with pytest.raises(MAGCError, match="writable"):
        tiling.compress_raster(src, "/proc/a.magc", None, tiny_model, tile_size=64)
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    with pytest.raises(MAGCError, match="writable|Cannot write"):
        tiling.decompress_raster(tmp_path / "a.magc", "/proc/out.tif", None, tiny_model, steps=0)


class FullDisk:
    """A file object whose writes fail with ENOSPC once `room` bytes have been written."""

    def __init__(self, inner, room):
        self.inner, self.room = inner, room

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.inner.close()

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.inner.write(data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("room", [20, 150])  # full while writing the header, or the tiles
def test_disk_full_while_compressing_leaves_nothing(tiny_model, tmp_path, monkeypatch, room):
    src = write_tif(tmp_path / "in.tif", rgb(128, 128))
    real_fdopen = container.os.fdopen
    monkeypatch.setattr(container.os, "fdopen", lambda *a, **k: FullDisk(real_fdopen(*a, **k), room))
    with pytest.raises(MAGCError, match="No space left.*nothing was written"):
        tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    assert files_in(tmp_path) == ["in.tif"]


def test_disk_full_while_decompressing_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    src = write_tif(tmp_path / "in.tif", rgb(128, 128))
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    real_enter = tiling.GeoTIFFWriter.__enter__

    class FailingDataset:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def write(self, *args, **kwargs):
            self.calls += 1
            if self.calls > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.inner.write(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    def enter(self):
        real_enter(self)
        self.dataset = FailingDataset(self.dataset)
        return self
    monkeypatch.setattr(tiling.GeoTIFFWriter, "__enter__", enter)
    with pytest.raises(MAGCError, match="No space left"):
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=0)
    assert files_in(tmp_path) == ["a.magc", "in.tif"]


def test_cancel_leaves_nothing(tiny_model, tmp_path):
    src = write_tif(tmp_path / "in.tif", rgb(128, 128))
    calls = []

    def cancel_after(n):
        calls.clear()
        return lambda: calls.append(1) or len(calls) > n
    with pytest.raises(MAGCError, match="Canceled"):
        tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64, cancel=cancel_after(2))
    assert files_in(tmp_path) == ["in.tif"]
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
    progress = []
    with pytest.raises(tiling.CancelledByUser):  # stops inside the diffusion loop of the first window
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=5,
                                 cancel=cancel_after(6), progress=lambda f, m: progress.append(m))
    assert files_in(tmp_path) == ["a.magc", "in.tif"]
    assert any("Decoding tile 1 " in m for m in progress) and not any("tile 2 " in m for m in progress)


def test_progress_reaches_one(tiny_model, tmp_path):
    src = write_tif(tmp_path / "in.tif", rgb(128, 64))
    seen = []
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64,
                           progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    seen.clear()
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=2,
                             progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_decode_streams_row_by_row(tiny_model, tmp_path):
    """Progress moves once the first row of windows' tiles are read, not after every tile's guidance."""
    src = write_tif(tmp_path / "in.tif", rgb(256, 512))
    tiling.compress_raster(src, tmp_path / "a.magc", stripes, tiny_model, tile_size=128)  # 2 x 4 tiles
    calls, at_first = [], []

    def counted(*args):
        calls.append(args)
        return stripes(*args)

    def progress(fraction, message):
        if fraction > 0 and not at_first:
            at_first.append(len(calls))
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", counted, tiny_model, steps=1,
                             progress=progress)
    assert at_first == [4] and len(calls) == 8  # rows 0 and 1 (the first windows' neighbours), then the rest


def test_no_visible_seams(tiny_model, tmp_path):
    """On a real decode (diffusion steps), tile seams are no sharper than the lines inside tiles at the same place
    in the codec's grid (where an untrained model's stage 1 leaves its own grid), nor much sharper than the texture
    inside tiles. (With the shipped model: python -m magc_plugin.benchmarks.seams, docs/bench/seams.md.)
    512 pixels a side give three seam lines and four same-grid lines each way: with fewer, the blocky 8-pixel colour
    layout of a random model made the comparison a matter of which lines it fell on (seam / same-grid 0.92 to 1.03
    over three random models on 256 pixels, 0.88 to 0.98 on 512)."""
    src = write_tif(tmp_path / "in.tif", rgb(512, 512))
    tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=128)
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=2)
    with rasterio.open(tmp_path / "out.tif") as out:
        figures = seam_gradients(out.read(), 128)
    assert figures["seam"] <= 1.02 * figures["same_phase"] and figures["seam"] <= 1.1 * figures["inside"], figures


def test_tiles_decode_to_their_mean_colour(tiny_model, tmp_path):
    """Each window is re-centred on its tile's mean colour (from the payload); the feather blend with
    the neighbour, re-centred on its own tile, moves the tile's mean by a small part of their difference."""
    data = rgb(512, 256)
    data[0, :, 256:] //= 3
    src = write_tif(tmp_path / "in.tif", data)
    tiling.compress_raster(src, tmp_path / "a.magc", stripes, tiny_model, tile_size=256)
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", stripes, tiny_model, steps=1)
    with rasterio.open(tmp_path / "out.tif") as out:
        decoded = out.read().astype(float)
    means = [(image[:, :, :256].mean(axis=(1, 2)), image[:, :, 256:].mean(axis=(1, 2))) for image in (data, decoded)]
    apart = np.abs(means[0][0] - means[0][1])
    for tile in (0, 1):
        assert (np.abs(means[1][tile] - means[0][tile]) <= 0.1 * apart + 1.5).all(), means


def test_grid_constants_match_the_codec():
    """tiling keeps its own copies (it must import without torch): they must agree with the codec's."""
    from magc_plugin.codec import autoencoder, model
    assert (tiling.TILE_MULTIPLE, tiling.Y_DOWNSCALE, tiling.DOWNSCALE) == \
        (model.TILE_MULTIPLE, model.Y_DOWNSCALE, autoencoder.DOWNSCALE)


def test_seam_gradients_finds_a_step_at_the_seam():
    image = np.zeros((1, 64, 64), np.float32)
    image[:, :, 32:] = 10
    figures = seam_gradients(image, 32, grid=16)
    assert figures["seam"] == pytest.approx(5.0) and figures["inside"] == 0 and figures["same_phase"] == 0


def tile_payloads(path):
    with container.MAGCReader(path) as reader:
        return [reader.read_tile(i).payload for i in range(len(reader.index))]


def test_encoder_sees_neighbour_pixels_but_codes_only_its_tile(tiny_model, tmp_path):
    """With context, a tile's bits depend on the pixels next to it (so tile edges agree at decode);
    without, they do not. Either way each tile decodes from its own bits."""
    data = rgb(128, 64)
    changed = data.copy()
    changed[:, :, 64:96] = 255 - changed[:, :, 64:96]  # the second tile, next to the first one
    for name, image in (("a", data), ("b", changed)):
        src = write_tif(tmp_path / f"{name}.tif", image)
        for context in (0, 64):
            tiling.compress_raster(src, tmp_path / f"{name}{context}.magc", stripes, tiny_model, tile_size=64,
                                   context=context)
    assert tile_payloads(tmp_path / "a0.magc")[0] == tile_payloads(tmp_path / "b0.magc")[0]
    assert tile_payloads(tmp_path / "a64.magc")[0] != tile_payloads(tmp_path / "b64.magc")[0]
    report = tiling.decompress_raster(tmp_path / "a64.magc", tmp_path / "out.tif", stripes, tiny_model, steps=0)
    assert report["guidance_mismatch"] == []


@pytest.mark.parametrize("context", [32, -64, 128])
def test_bad_encoder_context_is_refused(tiny_model, tmp_path, context):
    src = write_tif(tmp_path / "in.tif", rgb(128, 64))
    with pytest.raises(MAGCError, match="encoder context"):
        tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64, context=context)
    assert files_in(tmp_path) == ["in.tif"]


def test_positional_noise_agrees_where_windows_overlap():
    a = tiling.PositionalNoise(7, 0, 0, 16)(3, (1, 4, 24, 40))
    b = tiling.PositionalNoise(7, 8, 16, 16)(3, (1, 4, 24, 24))
    assert (a[0, :, 16:24, 8:32] == b[0, :, :8, :24]).all()
    assert not (tiling.PositionalNoise(8, 0, 0, 16)(3, (1, 4, 24, 40)) == a).all()


def test_fuzzed_files_fail_cleanly_or_decode_correctly(tiny_model, tmp_path):
    """Thousands of mutated small files: each gives a MAGCError or exactly the right image."""
    data = rgb(128, 96)
    data[:, :20, :30] = 0
    src = write_tif(tmp_path / "in.tif", data, nodata=0)
    tiling.compress_raster(src, tmp_path / "a.magc", stripes, tiny_model, tile_size=64, embed_guidance=True)
    good = (tmp_path / "a.magc").read_bytes()
    tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "ref.tif", None, tiny_model, steps=0)
    with rasterio.open(tmp_path / "ref.tif") as ref:
        expected = ref.read()
    rng = random.Random(0)
    bad, out = tmp_path / "bad.magc", tmp_path / "out.tif"
    outcomes = {"error": 0, "decoded": 0}
    for trial in range(2500):
        mutated = bytearray(good)
        kind = trial % 5
        if kind == 0:  # truncate
            mutated = mutated[:rng.randrange(len(good))]
        elif kind == 1:  # insert bytes
            pos = rng.randrange(len(good))
            mutated[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        else:  # flip 1..3 random bytes anywhere (header, index and tiles alike)
            for _ in range(kind - 1):
                mutated[rng.randrange(len(good))] ^= rng.randrange(1, 256)
        bad.write_bytes(bytes(mutated))
        try:
            tiling.decompress_raster(bad, out, None, tiny_model, steps=0)
        except MAGCError:
            outcomes["error"] += 1
            assert not out.exists()
            continue
        with rasterio.open(out) as decoded:
            assert (decoded.read() == expected).all(), trial
        out.unlink()
        outcomes["decoded"] += 1
    assert outcomes["error"] > 2300, outcomes


def test_outputs_get_ordinary_permissions(tiny_model, tmp_path):
    """The .magc file and the GeoTIFF appear by rename from temporary files, with what the umask gives, not 0600."""
    src = write_tif(tmp_path / "in.tif", rgb(64, 64))
    old = os.umask(0o022)
    try:
        tiling.compress_raster(src, tmp_path / "a.magc", None, tiny_model, tile_size=64)
        tiling.decompress_raster(tmp_path / "a.magc", tmp_path / "out.tif", None, tiny_model, steps=0)
    finally:
        os.umask(old)
    assert [(tmp_path / n).stat().st_mode & 0o777 for n in ("a.magc", "out.tif")] == [0o644, 0o644]
