"""MAGCModel: the one entry point of the codec library.

A model folder holds ``config.json`` and safetensors files: the autoencoder, the
denoiser (UNet + semantic adapter), and one latent compression module and one colour layout codec per rate
preset (a shared denoiser serves every rate)::

    models/compact/
      config.json  autoencoder.safetensors  denoiser.safetensors  stage1-decoder.safetensors
      lcm-low.safetensors  lcm-medium.safetensors  lcm-high.safetensors
      layout-low.safetensors  layout-medium.safetensors  layout-high.safetensors  MODEL_CARD.md

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
from .layout import LAYOUT_BASE, hold_to_layout, layout_of
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
        # channels), coded over stage 1's cell means (its base), and its cell side: 8-pixel means keep 0.7 to 0.9 dB
        # more PSNR than 16-pixel ones for 0.006 bpp more on held-out tiles (MODEL_CARD History, 0.6.0)
        "layout": {"codec": dict(latent_channels=3, N=N, M=M // 2, map_channels=map_channels // 2,
                                 num_slices=num_slices // 2, num_res_blocks=num_res_blocks, hyper_channels=hyper_channels),
                   "cell": 8, "base": LAYOUT_BASE},
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


def has_residual_layout(config):
    """Whether a model's layout stream codes the cell means less those of stage 1 drawn from the latent (layout.py),
    with a layout codec per preset: folders from 0.7.0 do."""
    return config.get("layout", {}).get("base") == LAYOUT_BASE


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
        # a residual layout's base is drawn by the stage-1 decoder, which then gives the stream part of its meaning
        model.stream_sha256 = stream_sha256(files[0], files[2:] + (drawing_files if has_residual_layout(config) else []),
                                            model.autoencoder.latent_scale,
                                            config.get("layout", {}).get("cell", FIRST_LAYOUT_CELL),
                                            config.get("layout", {}).get("base"))
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
        elif has_residual_layout(config):
            raise MAGCError("A residual layout is drawn over stage 1 by a stage-1 decoder, which config.json lacks: "
                            "the folder is inconsistent.")
        return model

    def save_pretrained(self, path, lcms=None, card=None, storage_dtype=torch.float32, layout=None):
        """Write the folder; `lcms` maps rate -> LatentCompressionModule (default: this model's one), `layout` is the
        colour layout codec every rate shares (default: this model's, where it has one), or maps rate -> that rate's
        (residual layouts, has_residual_layout).
        `storage_dtype=torch.float16` halves the files (the loaded model still computes in float32)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        lcms = lcms or {self.rate: self.lcm}
        layout = layout or self.layout
        config = dict(self.config)
        # the autoencoder's scale is set by training (unit-variance latents); the LCM and the denoiser expect it
        config["autoencoder"] = {**config["autoencoder"], "latent_scale": self.autoencoder.latent_scale}
        # each rate names its layout file: one that every rate shares, or one per rate (0.4.0, 0.4.1, from 0.7.0)
        layout_names = {r: f"layout-{r}" for r in layout} if isinstance(layout, dict) else \
            {r: "layout" for r in lcms} if layout is not None else {}
        config["rates"] = {r: {**self.config.get("rates", {}).get(r, {}), "lcm_file": f"lcm-{r}.safetensors",
                               **({"layout_file": f"{layout_names[r]}.safetensors"} if r in layout_names else {})}
                           for r in lcms}
        config["default_rate"] = config.get("default_rate") if config.get("default_rate") in lcms else next(iter(lcms))
        _save(self.autoencoder, path / "autoencoder.safetensors", storage_dtype)
        _save(self.denoiser, path / "denoiser.safetensors", storage_dtype)
        if self.stage1_decoder is not None:
            config["stage1_decoder"] = {**config.get("stage1_decoder", {}), "file": STAGE1_DECODER_FILE}
            _save(self.stage1_decoder, path / STAGE1_DECODER_FILE, storage_dtype)
        else:
            config.pop("stage1_decoder", None)
        codecs = {f"lcm-{r}": lcm for r, lcm in lcms.items()} | \
            {name: layout[r] if isinstance(layout, dict) else layout for r, name in layout_names.items()}
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
        cx, cy, cw, ch = core if core is not None else (0, 0, arr.shape[1], arr.shape[0])
        if min(cx, cy, cw, ch) < 0 or cx + cw > arr.shape[1] or cy + ch > arr.shape[0] or \
                any(v % TILE_MULTIPLE for v in (cw, ch)) or any(v % Y_DOWNSCALE for v in (cx, cy)):
            raise MAGCError(f"The tile {core} (x, y, width, height) must lie inside the {arr.shape[1]}x"
                            f"{arr.shape[0]} image, start on a multiple of {Y_DOWNSCALE} pixels and have "
                            f"sides that are multiples of {TILE_MULTIPLE}.")
        tile = (..., slice(cy, cy + ch), slice(cx, cx + cw))
        d = Y_DOWNSCALE
        tile_y = (..., slice(cy // d, (cy + ch) // d), slice(cx // d, (cx + cw) // d))
        colour = mean_colour(arr[tile[1:]])
        # one stream: the latent's z and y, then the layout's
        encoder = Encoder()
        y_hat = self.lcm.encode_y(encoder, self.lcm.analyse(self.autoencoder.encode(x), one_hot)[tile_y].contiguous())
        if self.layout is not None:
            if has_residual_layout(self.config):
                layout_y = self.layout.analyse(*self._residual_layout(x[tile], one_hot[tile], y_hat, colour))
            else:
                layout_y = self.layout.analyse(layout_of(x, self.config["layout"]["cell"]), one_hot)[tile_y]
            self.layout.encode_y(encoder, layout_y.contiguous())
        return colour + encoder.payload()

    def _residual_layout(self, x, one_hot, y_hat, colour):
        """What a residual layout codes of one tile, (1, 3, H, W) pixels x in [0, 1] with their map and the latent's
        y_hat: its cell means less stage 1's (layout_base), and the map."""
        base = self.coded_layout_base(y_hat, one_hot, split_payload(colour)[0])
        return layout_of(x, self.config["layout"]["cell"]) - base.to(x.device), one_hot

    def coded_layout_base(self, y_hat, one_hot, colour):
        """The base a tile's residual layout is coded over (layout_base), from the LCM's y_hat of that tile alone
        and its one-hot map: what the encoder subtracts, and the recipe's training bases."""
        return self.layout_base(self.lcm.synthesise(y_hat, one_hot), colour)

    def layout_base(self, stage_1, colour, drawn=None):
        """What a residual layout is coded over: the cell means (layout units, (1, 3, H/8, W/8) on the CPU) of stage
        1's latent drawn alone by the stage-1 decoder and re-centred on the tile's mean `colour` (3 levels). A tile's
        base is a function of its own stream (its y_hat, map and colour), so encoder and decoder agree on it.
        drawn: those pixels where the caller has drawn them already (a decode with no diffusion steps)."""
        image = recentre(self.latent_to_image(stage_1, stage1=True) if drawn is None else drawn, colour)
        return layout_of(torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255), self.config["layout"]["cell"])

    @torch.no_grad()
    def coded_y_hat(self, latent, one_hot):
        """The LCM's y_hat of one tile's (scaled) latent as the decoder will see it, the stream itself not kept."""
        return self.lcm.encode_y(Encoder(), self.lcm.analyse(latent, one_hot))

    def update_tables(self):
        """Build the stage-1 codecs' entropy coding tables from their current weights (after training or init)."""
        for module in self._codecs:
            module.update(force=True)

    @property
    def _codecs(self):
        """The stage-1 codecs whose symbols a tile's stream holds, in stream order."""
        return [self.lcm] + ([self.layout] if self.layout is not None else [])

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
    def synthesise(self, y_hat, class_raster, layout=True):
        """Stage 1 from y_hat (one tile's, or several tiles' side by side, as decode_y gives it) and the map under
        it: (latent_tilde, the layout codec's output or None: none asked for, or no layout codec). A residual
        layout's output is the residual (tile_layout adds its base)."""
        raster = check_class_raster(class_raster)
        one_hot = self._one_hot(raster, (y_hat.shape[-2] * Y_DOWNSCALE, y_hat.shape[-1] * Y_DOWNSCALE))
        m = self.lcm.config["M"]
        latent = self.lcm.synthesise(y_hat[:, :m], one_hot)
        return latent, (self.layout.synthesise(y_hat[:, m:], one_hot) if self.layout is not None and layout else None)

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

    def decode_window(self, y_hat, class_raster, colour, steps=20, noise=0, core=WHOLE, callback=None, layout_hat=None):
        """The decoder: 8-bit pixels (H, W, 3) from y_hat (one tile's, or several tiles' side by side) and the
        map under it, re-centred so that `core` (row and column slices: the tile) has the tile's mean `colour`.

            y_hat --g_s(map)--> latent_tilde --diffusion(map, noise), `steps`--> latent --decoder--> pixels
                  --layout g_s(map)--> (+ base: tile_layout) layout_hat ------------------------> held to it (layout.py)

        noise: a seed or a callable(k, shape), as for sample(); callback(step, total) after each step.
        layout_hat: the layout under the whole of y_hat ((1, 3, H/8, W/8): a raster's windows lay their tiles' own
        side by side, tile_layout); None synthesises it from y_hat, which for a residual layout must be one tile's."""
        raster = check_class_raster(class_raster)
        stage_1, synthesised = self.synthesise(y_hat, raster, layout=layout_hat is None)
        # steps 0: stage 1 alone, the codecs' reconstruction without diffusion (drawn once, also for the layout base)
        stage1_image = self.latent_to_image(stage_1, stage1=True) if steps <= 0 else None
        if layout_hat is None:
            layout_hat = self._tile_layout(stage_1, synthesised, colour, stage1_image)
        image = stage1_image if steps <= 0 else self.latent_to_image(self.sample(stage_1, raster, steps, noise, callback))
        if layout_hat is not None:
            image = hold_to_layout(image, layout_hat, self.config["layout"]["cell"])
        return recentre(image, colour, core)

    def _tile_layout(self, stage_1, synthesised, colour, drawn=None):
        """One tile's layout_hat from its stage 1 and the layout codec's output: that output, plus the tile's base
        where the layout is residual (drawn: as for layout_base)."""
        if synthesised is None or not has_residual_layout(self.config):
            return synthesised
        return synthesised.cpu() + self.layout_base(stage_1, colour, drawn)

    def tile_layout(self, y_hat, class_raster, colour):
        """One tile's residual layout with its base added (layout units, a (3, H/8, W/8) float32 array) from its
        y_hat, map and mean colour; None where the model's layout is not residual (its windows then synthesise the
        layout across their tiles, as stage 1). A raster's windows lay their tiles' side by side (tiling/windows.py),
        each as the encoder coded it: over its own base, blind to its neighbours."""
        if self.layout is None or not has_residual_layout(self.config):
            return None
        stage_1, synthesised = self.synthesise(y_hat, class_raster)
        return self._tile_layout(stage_1, synthesised, colour)[0].numpy()

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
        latent = self.autoencoder.encode(x)
        outs = [self.lcm(latent, one_hot)]
        if self.layout is not None:
            if has_residual_layout(self.config):
                y_hat = self.coded_y_hat(latent, one_hot)
                outs.append(self.layout(*self._residual_layout(x, one_hot, y_hat, mean_colour(arr))))
            else:
                outs.append(self.layout(layout_of(x, self.config["layout"]["cell"]), one_hot))
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
