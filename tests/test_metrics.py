"""Metrics: sanity, agreement with the reference implementations, graceful degradation."""
import math
import os
from pathlib import Path

import numpy as np
import pytest

from magc_plugin.evaluation import metrics
from magc_plugin.evaluation.metrics import (Evaluator, evaluate_rasters, frechet_distance, lattice_index, ms_ssim,
                                            ms_ssim_mode, psnr, psnr_block, resolve_weights_dir, write_html_report)

WEIGHTS = resolve_weights_dir()
HAVE_BACKBONES = all((WEIGHTS / "metrics" / f).is_file() for f in metrics.BACKBONE_FILES.values())
needs_weights = pytest.mark.skipif(not HAVE_BACKBONES, reason=f"metric backbones not found in {WEIGHTS}/metrics "
                                                              f"(../shared/weights absent; set MAGC_WEIGHTS_DIR)")


def textured(size=96, seed=0):
    """A smooth random field with edges: something perceptual metrics respond to."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 8, size // 8, 3)).astype(np.float32)
    image = np.kron(small, np.ones((8, 8, 1), np.float32))
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def degrade(image, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def test_psnr_and_ms_ssim_sanity():
    a = textured(192)
    assert psnr(a, a) == math.inf
    assert ms_ssim(a, a) == pytest.approx(1.0)
    assert ms_ssim_mode(a.shape) == "ms-ssim(5 scales)"
    mild, strong = degrade(a, 5), degrade(a, 30)
    assert math.isfinite(psnr(a, mild)) and psnr(a, mild) > psnr(a, strong)
    assert ms_ssim(a, mild) > ms_ssim(a, strong)


def test_block_mean_psnr_sees_colour_layout_not_texture():
    flat = np.kron(np.array([[[40, 90, 200], [120, 60, 30]], [[20, 230, 128], [200, 200, 200]]], np.uint8),
                   np.ones((16, 16, 1), np.uint8))  # 2x2 blocks of 16x16, one colour each
    checker = np.where((np.indices((32, 32)).sum(0) % 2 == 0)[..., None], 8, -8)
    textured_same_means = (flat.astype(int) + checker).astype(np.uint8)  # every block mean unchanged
    assert psnr(flat, textured_same_means) == pytest.approx(10 * math.log10(255 ** 2 / 64))
    assert psnr_block(flat, textured_same_means) == math.inf
    shifted = (flat.astype(int) + 10).astype(np.uint8)
    assert psnr_block(flat, shifted) == pytest.approx(10 * math.log10(255 ** 2 / 100))  # mean error 10 everywhere
    # edge blocks are averaged over the pixels they have: a 20x20 image has 2x2 blocks, the edge ones partial
    edge = flat[:20, :20].copy()
    moved = edge.copy()
    moved[16:, 16:] = (moved[16:, 16:].astype(int) + 20).astype(np.uint8)  # the 4x4 corner block only
    assert metrics.block_means(edge).shape == (2, 2, 3)
    assert psnr_block(edge, moved) == pytest.approx(10 * math.log10(255 ** 2 / (3 * 400 / 12)))
    ev = Evaluator(metrics=["psnr_block16"], fid=False)
    assert ev.compare(ev.reference(flat), shifted) == {"psnr_block16": pytest.approx(28.13, abs=0.01)}


def test_small_images_fall_back_to_ssim():
    a = textured(64)
    assert ms_ssim_mode(a.shape) == "ssim(win 11)"
    assert ms_ssim_mode((8, 10)) == "ssim(win 7)"
    assert 0 < ms_ssim(a, degrade(a, 20)) < ms_ssim(a, a) == pytest.approx(1.0)
    assert ms_ssim(a[:8, :10], a[:8, :10]) == pytest.approx(1.0)


def test_lattice_index_sees_edges_on_the_8_pixel_grid():
    noise = degrade(np.full((96, 96, 3), 128, np.uint8), 20)
    blocks = textured(96)  # 8-pixel blocks: every edge on the grid
    assert lattice_index(noise) < 0.05
    assert lattice_index(blocks) > 0.5
    assert lattice_index(np.roll(blocks, 3, axis=(0, 1))) == pytest.approx(lattice_index(blocks), rel=0.05)
    crosses = noise.copy()
    crosses[::8] //= 2
    crosses[:, ::8] //= 2
    assert lattice_index(crosses) > 3 * lattice_index(noise)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        psnr(textured(64), textured(96))
    with pytest.raises(ValueError, match="uint8"):
        psnr(textured(64).astype(np.float32), textured(64))


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(8.0, rel=0.05)
    assert math.isnan(frechet_distance(a[:1], a))


@needs_weights
def test_perceptual_identical_and_degraded():
    ev = Evaluator(fid=False)
    a = textured(96)
    ref = ev.reference(a)
    same = ev.compare(ref, a)
    assert same["psnr"] == math.inf
    for k in ("lpips_alex", "lpips_vgg", "dists"):
        assert same[k] == pytest.approx(0, abs=1e-5), k
    mild, strong = ev.compare(ref, degrade(a, 8)), ev.compare(ref, degrade(a, 40))
    for k in ("lpips_alex", "lpips_vgg", "dists"):
        assert 0 < mild[k] < strong[k], k
    assert not ev.warnings


@needs_weights
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_the_lpips_package(net):
    """Our split (reference features cached) equals lpips.LPIPS.forward with the same weights."""
    import torch
    lp = metrics.LPIPS(net)
    a, b = textured(64, 0), textured(64, 1)
    x, y = metrics._to_tensor(a), metrics._to_tensor(b)
    with torch.no_grad():
        ours = float(lp.distance(lp.features(x), lp.features(y))[0])
        theirs = float(lp.model(x, y, normalize=True).flatten()[0])
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)


@needs_weights
def test_dists_matches_dists_pytorch():
    """Our DISTS equals dists-pytorch's module given the same VGG16 and alpha/beta."""
    import torch
    import torchvision
    DISTS_pt = pytest.importorskip("DISTS_pytorch.DISTS_pt")
    ours = metrics.DISTS()
    vgg = torchvision.models.vgg16(weights=None)
    vgg.features.load_state_dict(metrics._backbone("vgg", None).state_dict())
    original = DISTS_pt.models.vgg16
    DISTS_pt.models.vgg16 = lambda pretrained=True: vgg  # no download: hand it our backbone
    try:
        theirs = DISTS_pt.DISTS(load_weights=False)
    finally:
        DISTS_pt.models.vgg16 = original
    ab = torch.load(metrics.find_weight(None, "dists_alpha_beta.pt", "DISTS_pytorch", "weights.pt"))
    theirs.alpha.data, theirs.beta.data = ab["alpha"], ab["beta"]
    a, b = textured(64, 0), textured(64, 1)
    x, y = metrics._to_tensor(a), metrics._to_tensor(b)
    with torch.no_grad():
        assert float(ours.distance(ours.features(x), ours.features(y))[0]) == pytest.approx(float(theirs(x, y)),
                                                                                            rel=1e-5)


def lpips_example_dir():
    """The lpips repository's imgs/ex_ref.png, ex_p0.png, ex_p1.png: not in the PyPI package."""
    candidates = [os.environ.get("MAGC_LPIPS_EXAMPLES", ""), WEIGHTS / "metrics" / "lpips_examples",
                  WEIGHTS.parent / "data" / "lpips_examples"]
    for c in candidates:
        if c and (Path(c) / "ex_ref.png").is_file():
            return Path(c)
    pytest.skip("the LPIPS example images (ex_ref.png, ex_p0.png, ex_p1.png from the lpips repository's imgs/) "
                "are not on this machine: the PyPI package does not ship them; put them in "
                "$MAGC_LPIPS_EXAMPLES or ../shared/weights/metrics/lpips_examples")


@needs_weights
def test_lpips_reference_figures():
    """LPIPS-Alex of the lpips package's examples with the shared weights: 0.722 and 0.138."""
    from PIL import Image
    folder = lpips_example_dir()
    load = lambda n: np.array(Image.open(folder / n).convert("RGB"))  # noqa: E731
    ev = Evaluator(metrics=("lpips_alex",), fid=False)
    ref = ev.reference(load("ex_ref.png"))
    assert ev.compare(ref, load("ex_p0.png"))["lpips_alex"] == pytest.approx(0.722, abs=0.0015)
    assert ev.compare(ref, load("ex_p1.png"))["lpips_alex"] == pytest.approx(0.138, abs=0.0015)


def test_missing_weights_degrade_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no torchvision weights cached either
    ev = Evaluator(weights_dir=tmp_path, fid=False)
    a = textured(64)
    with pytest.warns(UserWarning, match="not found"):
        out = ev.compare(ev.reference(a), degrade(a, 10))
    assert math.isfinite(out["psnr"]) and math.isnan(out["lpips_alex"]) and math.isnan(out["dists"])
    assert any("MAGC_WEIGHTS_DIR" in w for w in ev.warnings)


def test_weights_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("MAGC_WEIGHTS_DIR", raising=False)
    assert resolve_weights_dir() == Path(metrics.REPO).parent / "shared" / "weights"
    monkeypatch.setenv("MAGC_WEIGHTS_DIR", str(tmp_path))
    assert resolve_weights_dir() == tmp_path
    assert resolve_weights_dir("/elsewhere") == Path("/elsewhere")


def write_geotiff(path, image):
    import rasterio
    from rasterio.transform import from_origin
    with rasterio.open(path, "w", driver="GTiff", width=image.shape[1], height=image.shape[0], count=3,
                       dtype="uint8", crs="EPSG:32737", transform=from_origin(500000, 9330000, 0.5, 0.5)) as dst:
        dst.write(image.transpose(2, 0, 1))
    return path


def test_evaluate_rasters_and_report(tmp_path):
    original = textured(288)[:, :272]  # 2x2 windows, one full 256x256 patch, thin edges
    decoded = degrade(original, 10)
    magc = tmp_path / "x.magc"
    magc.write_bytes(b"\0" * 1234)
    calls = []
    out = evaluate_rasters(write_geotiff(tmp_path / "a.tif", original), write_geotiff(tmp_path / "b.tif", decoded),
                           magc_path=magc, weights_dir=WEIGHTS, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (4, 4)
    assert out["bytes"] == 1234 and out["bpp"] == pytest.approx(8 * 1234 / (288 * 272))
    assert out["psnr"] == pytest.approx(psnr(original, decoded), abs=1e-9)
    assert out["psnr_block16"] == pytest.approx(psnr_block(original, decoded), abs=1e-9)  # pooled = whole image
    assert 0 < out["ms_ssim"] < 1
    if HAVE_BACKBONES:
        assert out["lpips"] == out["lpips_alex"] > 0 and out["dists"] > 0
    else:
        assert out["lpips"] is None and out["notes"]
    assert out["fid_patches"] in (0, 1)
    page = write_html_report(out, tmp_path / "r.html")
    text = Path(page).read_text()
    assert "psnr" in text and "bpp" in text


def test_evaluate_rasters_refuses_mismatched_grids(tmp_path):
    a = write_geotiff(tmp_path / "a.tif", textured(64))
    b = write_geotiff(tmp_path / "b.tif", textured(96))
    with pytest.raises(ValueError, match="differ in size"):
        evaluate_rasters(a, b)


@needs_weights
def test_backbone_lookup_order(monkeypatch, tmp_path):
    """The weights folder first, then torchvision's file in torch.hub's cache; nothing downloads offline."""
    import torch
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("MAGC_WEIGHTS_DIR", raising=False)
    (tmp_path / "empty").mkdir()
    url, cached = metrics.hub_checkpoint("alex")
    assert cached == tmp_path / "torch" / "hub" / "checkpoints" / Path(url).name
    with pytest.raises(metrics.WeightsMissing, match="downloads it there"):
        metrics.find_backbone("alex", tmp_path / "empty", download=True)  # MAGC_OFFLINE (conftest)
    assert metrics.backbones_to_download(tmp_path / "empty") == []
    local = WEIGHTS / "metrics" / metrics.BACKBONE_FILES["alex"]
    cached.parent.mkdir(parents=True)
    cached.symlink_to(local)
    assert metrics.find_backbone("alex", tmp_path / "empty") == cached
    (tmp_path / "mine" / "metrics").mkdir(parents=True)
    (tmp_path / "mine" / "metrics" / local.name).symlink_to(local)
    assert metrics.find_backbone("alex", tmp_path / "mine") == tmp_path / "mine" / "metrics" / local.name
    features = metrics._backbone("alex", str(tmp_path / "empty"))
    assert torch.equal(features[0].weight, torch.load(local, weights_only=True)["0.weight"])


@needs_weights
def test_a_whole_torchvision_checkpoint_gives_its_features(monkeypatch, tmp_path):
    """torchvision's cached files are whole models: the backbone is their `features.` part."""
    import torch
    import torchvision
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = torchvision.models.alexnet(weights=None)
    model.features.load_state_dict(torch.load(WEIGHTS / "metrics" / metrics.BACKBONE_FILES["alex"],
                                              weights_only=True))
    _, cached = metrics.hub_checkpoint("alex")
    cached.parent.mkdir(parents=True)
    torch.save(model.state_dict(), cached)
    (tmp_path / "empty").mkdir()
    features = metrics._backbone("alex", str(tmp_path / "empty"))
    assert torch.equal(features[0].weight, model.features[0].weight)
