"""MAGCModel: the one entry point of the codec library.

A model folder holds ``config.json`` and safetensors files: the autoencoder, the
denoiser (UNet + semantic adapter), and one latent compression module per rate
preset (a shared denoiser serves every rate)::

    models/compact/
      config.json  autoencoder.safetensors  denoiser.safetensors  stage1-decoder.safetensors
      lcm-low.safetensors  lcm-medium.safetensors  lcm-high.safetensors  layout.safetensors  MODEL_CARD.md

A loaded model is bound to one rate preset. Tiles are coded one at a time:
``compress_tile(image, class_raster) -> bytes`` and
``decompress_tile(payload, class_raster, steps, seed) -> image``.
"""
import copy
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .autoencoder import DOWNSCALE, CompactAutoencoder, DiffusersAutoencoder
from .classes import check_class_raster, to_one_hot
from .denoiser import ConditionalDenoiser, SemanticAdapter
from .errors import MAGCError
from .folders import FIRST_LAYOUT_CELL, SHIPPED_MODELS, read_config, resolve_model_path, sha256_files, stream_sha256  # noqa: F401 (re-exported)
from .entropy_coding import Decoder, Encoder
from .layout import hold_to_layout, layout_of
from .lcm import LatentCompressionModule
from .sampler import SCHEDULE, sample
from .tile_colour import MEAN_COLOUR, WHOLE, mean_colour, recentre, split_payload

FORMAT = "magc-model"
FORMAT_VERSION = 1
TILE_MULTIPLE = 64  # z is 1/64 of the image side
Y_DOWNSCALE = 32    # y is 1/32 of the image side
STAGE1_DECODER_FILE = "stage1-decoder.safetensors"


def resolve_device(device="auto"):
    device = (device or "auto").lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MAGCError("CUDA was requested but no CUDA GPU is available to PyTorch: choose the CPU device "
                        "or install a CUDA build of PyTorch.")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise MAGCError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda'.")
    return torch.device(device)


def _load_weights(module, path):
    try:
        state = load_file(str(path))
    except (OSError, Exception) as exc:  # safetensors raises its own error types
        raise MAGCError(f"Cannot read model weights {path}: {exc}. Reinstall the model folder.") from exc
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise MAGCError(f"Weights {path.name} do not fit the model in config.json "
                        f"(missing {len(missing)}, unexpected {len(unexpected)} tensors): the folder is inconsistent.")


def load_lcm(path, config, rate, part="lcm"):
    """The latent compression module (part "lcm") or colour layout codec (part "layout") of one rate preset of a
    model folder."""
    lcm = LatentCompressionModule(**(config["lcm"] if part == "lcm" else config["layout"]["codec"]))
    lcm.load_state_dict(load_file(str(Path(path) / config["rates"][rate][f"{part}_file"])))  # compressai resizes its CDF buffers here
    return lcm


def compact_config(name="compact", latent_channels=32, ae_width=64, N=64, M=64, map_channels=64, num_slices=8,
                   num_res_blocks=1, hyper_channels=32, unet_channels=(64, 128, 192), adapter_map_channels=64,
                   rates=None):
    """The configuration of a compact model (the shipped default, or tiny ones in tests)."""
    from .denoiser import compact_unet_config
    unet = compact_unet_config(latent_channels, unet_channels)
    residuals = [unet["block_out_channels"][0]] + list(unet["block_out_channels"][:-1])
    rates = rates or {"medium": {}}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "scale": "compact",
        "autoencoder": dict(kind="compact", latent_channels=latent_channels, width=ae_width, mid_norm=True, latent_scale=1.0),
        "lcm": dict(latent_channels=latent_channels, N=N, M=M, map_channels=map_channels, num_slices=num_slices,
                    num_res_blocks=num_res_blocks, hyper_channels=hyper_channels),
        # the colour layout (layout.py): its codec (the same module on 3-channel cell means, a quarter of the
        # channels) and its cell side: 8-pixel means keep 0.7 to 0.9 dB more PSNR than 16-pixel ones for 0.006 bpp
        # more on held-out tiles (MODEL_CARD History, 0.6.0)
        "layout": {"codec": dict(latent_channels=3, N=N, M=M // 2, map_channels=map_channels // 2,
                                 num_slices=num_slices // 2, num_res_blocks=num_res_blocks, hyper_channels=hyper_channels),
                   "cell": 8},
        "denoiser": {"unet": unet, "adapter": dict(residual_channels=residuals, latent_channels=latent_channels,
                                                   map_channels=adapter_map_channels)},
        # A small denoiser trained briefly predicts velocity: near pure noise that means predicting the
        # image, which epsilon prediction gets badly wrong there (washed-out or wrong colours).
        "schedule": dict(SCHEDULE, prediction_type="v_prediction"), "rates": rates, "default_rate": next(iter(rates)),
        # Starting 70 % down the schedule from the noised stage-1 latent keeps more of the scene than 35 % down,
        # with no loss of texture (6 denoiser evaluations of 20; the sweep: MODEL_CARD History, 0.4.4).
        "sampling": {"start": 0.3},
        # stage 1 alone (no diffusion) is drawn by a copy of the decoder fitted for pixel MSE on the LCMs' latents:
        # the autoencoder's own decoder is fitted for perceptual losses on sampled latents (recipe.py)
        "stage1_decoder": {"file": STAGE1_DECODER_FILE},
        "tile_multiple": TILE_MULTIPLE,
    }


def sd21_config(sd_folder, name="sd21", N=128, M=64, map_channels=192, num_slices=8, num_res_blocks=2, rates=None):
    """The paper's scale: a local Stable Diffusion 2.1-base folder (diffusers layout) + MAGC parts."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    sd = Path(sd_folder)
    if not (sd / "unet" / "config.json").is_file() or not (sd / "vae" / "config.json").is_file():
        raise MAGCError(f"{sd} is not a Stable Diffusion folder in diffusers layout (needs unet/ and vae/).")
    vae_cfg = dict(AutoencoderKL.load_config(sd / "vae"))
    unet_cfg = dict(UNet2DConditionModel.load_config(sd / "unet"))
    latent_channels = vae_cfg["latent_channels"]
    unet_cfg["in_channels"] = 2 * latent_channels  # conv_in widened: cat(x_t, latent_tilde)
    out = unet_cfg["block_out_channels"]
    rates = rates or {"medium": {}}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "scale": "sd21",
        "autoencoder": {"kind": "diffusers", "vae": vae_cfg},
        "lcm": dict(latent_channels=latent_channels, N=N, M=M, map_channels=map_channels, num_slices=num_slices,
                    num_res_blocks=num_res_blocks),
        "denoiser": {"unet": unet_cfg, "context_shape": [1, 77, unet_cfg["cross_attention_dim"]],
                     "adapter": dict(residual_channels=[out[0]] + list(out[:-1]), latent_channels=latent_channels,
                                     map_channels=map_channels)},
        "schedule": dict(SCHEDULE), "rates": rates, "default_rate": next(iter(rates)),
        "tile_multiple": TILE_MULTIPLE,
    }


def has_layout_codec(config):
    """Whether a model's tiles code a colour layout (layout.py) after the latent: folders from 0.4.0 do."""
    return "codec" in config.get("layout", {})


def has_stage1_decoder(config):
    """Whether a model draws stage 1 alone with a decoder of its own: compact folders from 0.5.0 do."""
    return "file" in config.get("stage1_decoder", {})


def sampling_start(config):
    """The fraction of the schedule a model's sampler runs (1.0: from pure noise, as the paper and older folders)."""
    return float(config.get("sampling", {}).get("start", 1.0))


def empty_prompt_context(sd_folder, shape):
    """SD's empty-prompt text embedding when its text encoder can run here, else zeros."""
    sd = Path(sd_folder)
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError:
        return torch.zeros(shape)
    if not (sd / "text_encoder").is_dir() or not (sd / "tokenizer").is_dir():
        return torch.zeros(shape)
    tokenizer = CLIPTokenizer.from_pretrained(sd / "tokenizer")
    encoder = CLIPTextModel.from_pretrained(sd / "text_encoder")
    ids = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        return encoder(ids)[0]


def build_autoencoder(cfg):
    if cfg["kind"] == "compact":
        return CompactAutoencoder(**{k: v for k, v in cfg.items() if k != "kind"})
    from diffusers import AutoencoderKL
    return DiffusersAutoencoder(AutoencoderKL.from_config(cfg["vae"]))


def build_denoiser(cfg):
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel.from_config(cfg["unet"])
    adapter = SemanticAdapter(**cfg["adapter"])
    context = torch.zeros(cfg.get("context_shape", [1, 1, unet.config.cross_attention_dim]))
    return ConditionalDenoiser(unet, adapter, context)


class MAGCModel(torch.nn.Module):
    def __init__(self, config, autoencoder, lcm, denoiser, rate, weights_sha256=""):
        super().__init__()
        self.config = config
        self.autoencoder = autoencoder
        self.lcm = lcm
        self.layout = None  # the colour layout codec (layout.py); none in folders before 0.4.0
        self.stage1_decoder = None  # draws stage 1 alone; none in folders before 0.5.0 (the autoencoder's then)
        self.denoiser = denoiser
        self.rate = rate
        self.weights_sha256 = weights_sha256
        self.stream_sha256 = ""  # see folders.stream_sha256
        self.device = torch.device("cpu")

    tile_multiple = TILE_MULTIPLE

    @property
    def sampling_start(self):
        return sampling_start(self.config)

    # -- folders ------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_preset="default", rate=None, device="auto"):
        path = resolve_model_path(path_or_preset)
        config = read_config(path)
        if config.get("format") != FORMAT or config.get("format_version", 0) > FORMAT_VERSION:
            raise MAGCError(f"{path} is not a MAGC model folder this version can read "
                            f"(format {config.get('format')!r} v{config.get('format_version')}); update the plugin.")
        rate = rate or config["default_rate"]
        if rate not in config["rates"]:
            raise MAGCError(f"Rate preset {rate!r} is not in {path}: choose one of {sorted(config['rates'])}.")
        files = [path / "autoencoder.safetensors", path / "denoiser.safetensors", path / config["rates"][rate]["lcm_file"]]
        if has_layout_codec(config):
            files.append(path / config["rates"][rate]["layout_file"])
        drawing_files = [path / config["stage1_decoder"]["file"]] if has_stage1_decoder(config) else []
        for f in files + drawing_files:
            if not f.is_file():
                raise MAGCError(f"The model folder {path} lacks {f.name}: reinstall it.")
        model = cls.from_config(config, rate)
        _load_weights(model.autoencoder, files[0])
        _load_weights(model.denoiser, files[1])
        model.lcm = load_lcm(path, config, rate)
        if has_layout_codec(config):
            model.layout = load_lcm(path, config, rate, "layout")
        if drawing_files:
            _load_weights(model.stage1_decoder, drawing_files[0])
        model.weights_sha256 = sha256_files(files + drawing_files)
        model.stream_sha256 = stream_sha256(files[0], files[2:], model.autoencoder.latent_scale,
                                            config.get("layout", {}).get("cell", FIRST_LAYOUT_CELL))
        model.preset_name = config.get("name", path.name)
        return model.to_device(device).eval()

    @classmethod
    def from_sd21(cls, sd_folder, **lcm_kwargs):
        """Paper scale from a local SD 2.1-base folder: pretrained VAE and UNet (conv_in widened,
        new channels zero), fresh LCM and adapter, ready for MAGC training."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from .denoiser import widen_conv_in
        config = sd21_config(sd_folder, **lcm_kwargs)
        model = cls.from_config(config)
        sd = Path(sd_folder)
        model.autoencoder = DiffusersAutoencoder(AutoencoderKL.from_pretrained(sd / "vae"))
        unet = widen_conv_in(UNet2DConditionModel.from_pretrained(sd / "unet"), config["lcm"]["latent_channels"])
        context = empty_prompt_context(sd, config["denoiser"]["context_shape"])
        model.denoiser = ConditionalDenoiser(unet, model.denoiser.adapter, context)
        return model

    @classmethod
    def from_config(cls, config, rate=None):
        """A model with freshly initialised weights (training starts here)."""
        rate = rate or config.get("default_rate") or next(iter(config.get("rates", {"default": None})))
        model = cls(config, build_autoencoder(config["autoencoder"]), LatentCompressionModule(**config["lcm"]),
                    build_denoiser(config["denoiser"]), rate)
        if has_layout_codec(config):
            model.layout = LatentCompressionModule(**config["layout"]["codec"])
        if has_stage1_decoder(config):
            if config["autoencoder"]["kind"] != "compact":
                raise MAGCError("A stage-1 decoder of its own needs the compact autoencoder: remove \"stage1_decoder\" "
                                "from config.json.")
            model.stage1_decoder = copy.deepcopy(model.autoencoder.decoder)
        return model

    def save_pretrained(self, path, lcms=None, card=None, storage_dtype=torch.float32, layout=None):
        """Write the folder; `lcms` maps rate -> LatentCompressionModule (default: this model's one), `layout` is the
        colour layout codec every rate shares (default: this model's, where it has one).
        `storage_dtype=torch.float16` halves the files (the loaded model still computes in float32)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        lcms = lcms or {self.rate: self.lcm}
        layout = layout or self.layout
        config = dict(self.config)
        # the autoencoder's scale is set by training (unit-variance latents); the LCM and the denoiser expect it
        config["autoencoder"] = {**config["autoencoder"], "latent_scale": self.autoencoder.latent_scale}
        # each rate names its layout file, as folders with a layout codec per rate (0.4.0, 0.4.1) do
        config["rates"] = {r: {**self.config.get("rates", {}).get(r, {}), "lcm_file": f"lcm-{r}.safetensors",
                               **({"layout_file": "layout.safetensors"} if layout is not None else {})} for r in lcms}
        config["default_rate"] = config.get("default_rate") if config.get("default_rate") in lcms else next(iter(lcms))
        _save(self.autoencoder, path / "autoencoder.safetensors", storage_dtype)
        _save(self.denoiser, path / "denoiser.safetensors", storage_dtype)
        if self.stage1_decoder is not None:
            config["stage1_decoder"] = {**config.get("stage1_decoder", {}), "file": STAGE1_DECODER_FILE}
            _save(self.stage1_decoder, path / STAGE1_DECODER_FILE, storage_dtype)
        else:
            config.pop("stage1_decoder", None)
        codecs = {f"lcm-{r}": lcm for r, lcm in lcms.items()} | ({"layout": layout} if layout is not None else {})
        for name, codec in codecs.items():
            codec.update(force=True)
            _save(codec, path / f"{name}.safetensors", storage_dtype)
        (path / "config.json").write_text(json.dumps(config, indent=2))
        if card:
            (path / "MODEL_CARD.md").write_text(card)

    def to_device(self, device="auto"):
        self.device = resolve_device(device)
        self.autoencoder.to(self.device)
        self.denoiser.to(self.device)
        self.lcm.to(self.device)
        if self.layout is not None:
            self.layout.to(self.device)
        if self.stage1_decoder is not None:
            self.stage1_decoder.to(self.device)
        return self

    def identity(self):
        import compressai
        import diffusers
        from .. import __version__
        return {
            "preset": getattr(self, "preset_name", self.config.get("name", "")),
            "scale": self.config.get("scale"),
            "rate": self.rate,
            "weights_sha256": self.weights_sha256,
            "stream_sha256": self.stream_sha256,
            "versions": {"magc": __version__, "torch": torch.__version__.split("+")[0],
                         "compressai": compressai.__version__, "diffusers": diffusers.__version__},
            "schedule": self.config.get("schedule", SCHEDULE),
        }

    # -- tiles --------------------------------------------------------------------
    def _check_tile(self, image):
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise MAGCError(f"A tile must be an RGB array of shape (H, W, 3), got {arr.shape}.")
        if arr.dtype != np.uint8:
            raise MAGCError(f"A tile must be 8-bit (uint8); got {arr.dtype}. Scale it to 0..255 first.")
        h, w = arr.shape[:2]
        if h == 0 or w == 0 or h % TILE_MULTIPLE or w % TILE_MULTIPLE:
            raise MAGCError(f"Tile sides must be positive multiples of {TILE_MULTIPLE} pixels, got {w}x{h}: pad the tile.")
        return arr

    def _one_hot(self, class_raster, shape):
        return to_one_hot(check_class_raster(class_raster, shape), self.device)

    @torch.no_grad()
    def compress_tile(self, image, class_raster, core=None):
        """Payload of one tile. core: (x, y, width, height) of the tile inside `image` when the image
        also holds context around it (neighbour pixels): the encoder sees them, only the tile is coded,
        so the latent at the tile's edges agrees with its neighbours' (no seams at decode)."""
        arr = self._check_tile(image)
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float().div(255).to(self.device)
        one_hot = self._one_hot(class_raster, arr.shape[:2])
        ys = [module.analyse(inputs, one_hot) for module, inputs in zip(self._codecs, self._codec_inputs(x))]
        tile = arr
        if core is not None:
            cx, cy, cw, ch = core
            if min(core) < 0 or cx + cw > arr.shape[1] or cy + ch > arr.shape[0] or \
                    any(v % TILE_MULTIPLE for v in (cw, ch)) or any(v % Y_DOWNSCALE for v in (cx, cy)):
                raise MAGCError(f"The tile {core} (x, y, width, height) must lie inside the {arr.shape[1]}x"
                                f"{arr.shape[0]} image, start on a multiple of {Y_DOWNSCALE} pixels and have "
                                f"sides that are multiples of {TILE_MULTIPLE}.")
            d = Y_DOWNSCALE
            ys = [y[..., cy // d:(cy + ch) // d, cx // d:(cx + cw) // d] for y in ys]
            tile = arr[cy:cy + ch, cx:cx + cw]
        # one stream: the latent's z and y, then the layout's
        encoder = Encoder()
        for module, y in zip(self._codecs, ys):
            module.encode_y(encoder, y.contiguous())
        return mean_colour(tile) + encoder.payload()

    def update_tables(self):
        """Build the stage-1 codecs' entropy coding tables from their current weights (after training or init)."""
        for module in self._codecs:
            module.update(force=True)

    @property
    def _codecs(self):
        """The stage-1 codecs whose symbols a tile's stream holds, in stream order."""
        return [self.lcm] + ([self.layout] if self.layout is not None else [])

    def _codec_inputs(self, x):
        """What each of `_codecs` codes from the (1, 3, H, W) pixels x in [0, 1]: the latent, then the layout."""
        inputs = [self.autoencoder.encode(x)]
        if self.layout is not None:
            inputs.append(layout_of(x, self.config["layout"]["cell"]))
        return inputs

    @torch.no_grad()
    def decode_y(self, payload, tile_shape):
        """Entropy decoding of one tile of (height, width) pixels: y_hat (1, M, h/32, w/32) on the CPU,
        bit-identical to the encoder's, with the layout codec's y_hat after the latent's M channels where the model
        has one (so that tiles' y_hat go side by side as one)."""
        h, w = tile_shape
        if h % TILE_MULTIPLE or w % TILE_MULTIPLE or not h or not w:
            raise MAGCError(f"Tile sides must be positive multiples of {TILE_MULTIPLE} pixels, got {w}x{h}.")
        decoder = Decoder(split_payload(payload)[1])
        y_hat = torch.cat([module.decode_y(decoder, (h // Y_DOWNSCALE, w // Y_DOWNSCALE)) for module in self._codecs], 1)
        decoder.finish()
        return y_hat

    @torch.no_grad()
    def synthesise(self, y_hat, class_raster):
        """Stage 1 from y_hat (one tile's, or several tiles' side by side, as decode_y gives it) and the map under
        it: (latent_tilde, layout_hat or None)."""
        raster = check_class_raster(class_raster)
        one_hot = self._one_hot(raster, (y_hat.shape[-2] * Y_DOWNSCALE, y_hat.shape[-1] * Y_DOWNSCALE))
        m = self.lcm.config["M"]
        latent = self.lcm.synthesise(y_hat[:, :m], one_hot)
        return latent, (self.layout.synthesise(y_hat[:, m:], one_hot) if self.layout is not None else None)

    def decode_latent(self, payload, class_raster):
        """Stage 1's latent of one tile: latent_tilde (1, C, h/8, w/8)."""
        raster = check_class_raster(class_raster)
        return self.synthesise(self.decode_y(payload, raster.shape), raster)[0]

    @torch.no_grad()
    def sample(self, latent_tilde, class_raster, steps=20, noise=0, callback=None):
        one_hot = self._one_hot(class_raster, (latent_tilde.shape[-2] * DOWNSCALE, latent_tilde.shape[-1] * DOWNSCALE))
        return sample(self.denoiser, latent_tilde.to(self.device), one_hot, steps=steps, noise=noise,
                      callback=callback, schedule=self.config.get("schedule"), start=self.sampling_start)

    @torch.no_grad()
    def latent_to_image(self, latent, stage1=False):
        """8-bit pixels of a latent; `stage1`: stage 1's latent_tilde, drawn by the stage-1 decoder where there is one."""
        decoder = self.stage1_decoder if stage1 else None
        x = self.autoencoder.decode(latent.to(self.device), decoder)
        return (x[0].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)

    def decode_window(self, y_hat, class_raster, colour, steps=20, noise=0, core=WHOLE, callback=None):
        """The decoder: 8-bit pixels (H, W, 3) from y_hat (one tile's, or several tiles' side by side) and the
        map under it, re-centred so that `core` (row and column slices: the tile) has the tile's mean `colour`.

            y_hat --g_s(map)--> latent_tilde --diffusion(map, noise), `steps`--> latent --decoder--> pixels
                  --layout g_s(map)--> layout_hat ------------------------------------------> held to it (layout.py)

        noise: a seed or a callable(k, shape), as for sample(); callback(step, total) after each step."""
        raster = check_class_raster(class_raster)
        stage_1, layout_hat = self.synthesise(y_hat, raster)
        # steps 0: stage 1 alone, the codecs' reconstruction without diffusion
        if steps > 0:
            image = self.latent_to_image(self.sample(stage_1, raster, steps, noise, callback))
        else:
            image = self.latent_to_image(stage_1, stage1=True)
        if layout_hat is not None:
            image = hold_to_layout(image, layout_hat, self.config["layout"]["cell"])
        return recentre(image, colour, core)

    def decompress_tile(self, payload, class_raster, steps=20, seed=0, callback=None):
        raster = check_class_raster(class_raster)
        return self.decode_window(self.decode_y(payload, raster.shape), raster, split_payload(payload)[0], steps,
                                  seed, callback=callback)

    @torch.no_grad()
    def estimate_bits(self, image, class_raster):
        """The rate model's estimate (from likelihoods) of one tile's payload, in bits."""
        arr = self._check_tile(image)
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float().div(255).to(self.device)
        one_hot = self._one_hot(class_raster, arr.shape[:2])
        outs = [module(inputs, one_hot) for module, inputs in zip(self._codecs, self._codec_inputs(x))]
        coded = sum(-torch.log2(l).sum() for out in outs for l in out["likelihoods"].values())
        return float(coded) + 8 * MEAN_COLOUR.size


ENTROPY_MODEL_KEYS = ("entropy_bottleneck.", "gaussian_conditional.")


def _save(module, path, storage_dtype=torch.float32):
    """Float tensors in `storage_dtype`, except the entropy models' parameters, which stay float32:
    their stored CDF tables were computed from those exact values."""
    def stored(key, tensor):
        tensor = tensor.detach().cpu().contiguous()
        if tensor.is_floating_point() and not key.startswith(ENTROPY_MODEL_KEYS):
            return tensor.to(storage_dtype)
        return tensor
    save_file({k: stored(k, v) for k, v in module.state_dict().items()}, str(path))
