"""The whole training recipe of the compact MAGC model, stage by stage.

Stages (each resumable from its checkpoint in the work folder, skipped when done). A finished LCM or
denoiser stage asked for more steps than it has is extended from its weights with a fresh optimiser;
the autoencoder is never extended, since the cached latents are its output. A finished codec checkpoint made for
another target bpp is re-aimed: the stage's last RETARGET_STEPS steps start from its weights and lambda (the
denoiser's log then says to extend it onto the new outputs); an unfinished one is trained afresh. A model
folder, such as the shipped one, can stand in for the checkpoints (``seed_from``, ``--from-model``): training then
goes on from its weights.

1. ``ae``: fine-tune the compact autoencoder on aerial crops (MSE), starting from the
   MIT TAEF2 weights in ../shared/weights/taef2 when present.
2. ``cache``: encode every training crop once; set the latent scale to 1/std.
3. ``lcm``: one latent compression module per rate preset (on a CPU, side by side in processes of their own), loss
   lambda * MSE(latent_tilde, latent) + bpp in latent space (MAGC.md, stage 1), lambda
   steered towards the preset's target bpp. ``layout``: one colour layout codec (codec/layout.py), the same module
   and loss on the crops' cell means, side by side with the LCMs.
4. ``denoiser``: the semantic adapter + conditional UNet, MSE of the schedule's prediction
   (v for the compact model) on x_t with
   latent_tilde from the frozen LCMs (a random rate per batch: one denoiser serves all).
5. ``stage1``: a copy of the autoencoder's decoder fitted for pixel MSE on the LCMs' latents (every rate): it draws
   stage 1 alone (a decode with no diffusion steps). ``residual``: each preset's layout codec, the ``layout`` one
   fine-tuned on the crops' cell means less those of its stage 1 (the layout's base, codec/layout.py).
6. ``decoder``: fine-tune the autoencoder's decoder on latents the sampler draws (every rate, started at
   DECODER_BANK_START), with
   L1 + local contrast + grid profile + LPIPS-VGG + DISTS against the crops they came from. The encoder is untouched, so bitstreams do not change.
7. ``export``: write the model folder (config.json, safetensors, model card).

The training crops come from ../shared/data, or from a training pack written there (``pack``, data.write_training_pack)
on a machine without it. Latent-space training runs on 128x128-pixel crops (16x16 latents), cheap on a CPU;
the networks are fully convolutional and are evaluated on 256-pixel tiles.
"""
import copy
import json
import math
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..codec.classes import to_one_hot
from ..codec.layout import GRID, layout_of
from ..codec.lcm import LatentCompressionModule
from ..codec.model import FIRST_LAYOUT_CELL, MAGCModel, compact_config, has_residual_layout, load_lcm
from ..codec.tile_colour import mean_colour, split_payload
from ..codec.sampler import sample, training_scheduler
from .. import data

# preset -> target bpp. A fixed lambda lands at a rate that depends on the schedule's length
# (the paper's lambdas assume ~100k steps), so lambda is steered to the target during training.
RATES = {
    # targets are on training crops: the smoother held-out tiles code at less (low: about 0.011 bpp there)
    "low": 0.02,
    "medium": 0.045,
    "high": 0.07,
}
# target bpp of the colour layout codec (codec/layout.py) that every preset codes after its LCM: up to about 0.025 bpp
# on held-out tiles a bit spent on the layout buys more of every measure than one spent on the LCM (MODEL_CARD History);
# its 8-pixel cells at 0.04 gain less PSNR than SVT-AV1 gains from the same extra bits (0.6.0).
LAYOUT_RATE = 0.025
# The share of the layout codec's training crops given an empty map; its crops' side in pixels.
MAP_DROPOUT, LAYOUT_CROP = 0.25, 128
# Each preset's residual layout codec (codec/layout.py) is the shared one fine-tuned on the crops' cell means less
# stage 1's, drawn once for this many crops (0.8 s a crop on one CPU thread), the same crops at every preset.
RESIDUAL_CROPS = 640
LAMBDA_START, LAMBDA_WARMUP, LAMBDA_GAIN = 8.0, 100, 0.02
LCM_LR = 5e-4
# Re-aiming a trained codec at a new target: fewer bits and more PSNR than a module trained afresh for the stage's
# steps (low LCM at 0.02 bpp on held-out tiles: MODEL_CARD History).
RETARGET_STEPS = 1500
CPU_STEPS = {"ae": 100, "lcm": 8000, "layout": 25000, "residual": 3500, "denoiser": 14000, "stage1": 300, "decoder": 400}
# On a CPU the denoiser gets more, smaller updates in the same time.
CPU_DENOISER_BATCH = 8
GPU_STEPS = {"ae": 4000, "lcm": 20000, "layout": 20000, "residual": 10000, "denoiser": 60000, "stage1": 6000,
             "decoder": 6000}
# The autoencoder works at full resolution: a short fine-tune on small crops (it starts
# from a pretrained initialisation, so it needs adapting, not learning).
AE_CROP, AE_BATCH = 64, 4
SHARED_WEIGHTS = data.REPO.parent / "shared" / "weights"
# The decoder stage's training pairs: sampled latents of 128-pixel crops (at 10 steps, which decode
# like the default 20 at half the cost) and the crops; a fixed bank, re-drawn when its basis changes.
DECODER_BANK, DECODER_BANK_STEPS, DECODER_BATCH = 1200, 10, 8
# Where the bank's sampler starts: 0.65, not the model's 0.3 (compact_config), whose samples gave decoders that
# lose 0.025 to 0.05 of mIoU (MODEL_CARD History, 0.4.4).
DECODER_BANK_START = 0.65
# The stage-1 decoder's batches: 128-pixel crops, the rates taking turns within a batch.
STAGE1_BATCH, STAGE1_LR = 8, 1e-4
# L1 flattens the detail the latents leave uncertain: matching each 16-pixel cell's standard deviation keeps contrast.
CONTRAST_WEIGHT, CONTRAST_CELL = 2.0, 16
# LPIPS-VGG alone teaches the decoder to draw the 8-pixel latent grid: the crop's grid profile is matched too.
GRID_WEIGHT = 1.0
# DISTS beside LPIPS-VGG (not in its place) gains DISTS for little LPIPS-Alex; the weights tried: MODEL_CARD History.
DISTS_WEIGHT = 1.0


def _latent_crop(cache, i, y, x, size):
    """The size x size latent crop at (y, x) of cached crop i, and the one-hot map under it (8*size pixels)."""
    classes = cache["classes"][i, 8 * y:8 * (y + size), 8 * x:8 * (x + size)]
    return cache["latents"][i, :, y:y + size, x:x + size].float(), to_one_hot(classes.numpy())[0]


def _decoder_loss_terms():
    """The decoder stage's loss settings: a checkpoint fitted with others is stale, as one fitted to other samples is."""
    return {"contrast": [CONTRAST_WEIGHT, CONTRAST_CELL], "grid": GRID_WEIGHT, "dists": DISTS_WEIGHT}


def _codec_targets():
    """Each stage-1 codec's checkpoint name and target bpp: one LCM per preset, then the shared layout codec."""
    return {f"lcm-{rate}": target for rate, target in RATES.items()} | {"layout": LAYOUT_RATE}


def _trained_for(state, aim):
    """What a codec checkpoint was trained for, in the terms of `aim` (Trainer._aim); layout checkpoints from before
    0.6.0 record no cell side: theirs was 16 pixels."""
    return {key: state.get(key, FIRST_LAYOUT_CELL if key == "cell" else None) for key in aim}


def _describe(aim):
    """An aim (Trainer._aim) in words for the log: "0.025 bpp on 8-pixel cells"."""
    return f"{aim['target']} bpp" + (f" on {aim['cell']}-pixel cells" if "cell" in aim else "")


LAYOUT_STAGES = ("layout", "residual")


def _stage_of(name):
    """The stage (its key in the step counts) of a checkpoint name: "lcm-low" -> "lcm", "layout" -> "layout"."""
    return name.split("-")[0]


def _lcm_targets(rates):
    """The target bpp of this recipe's LCM for each of `rates`: what the stages after them were trained on."""
    return {rate: RATES[rate] for rate in rates}


def _decoder_basis(denoiser_steps, lcm_targets, start, maps):
    """What the decoder stage's bank is drawn from (maps: data.MAPS_VERSION of the crops' guidance maps): a change
    in any makes its checkpoint stale."""
    return {"denoiser_steps": denoiser_steps, "lcm_targets": dict(lcm_targets), "sampling_start": start, "maps": maps}


def _local_std(images):
    """Per-channel standard deviation of each CONTRAST_CELL-pixel cell."""
    mean = F.avg_pool2d(images, CONTRAST_CELL)
    return (F.avg_pool2d(images ** 2, CONTRAST_CELL) - mean ** 2).clamp_min(1e-6).sqrt()


def fit_quantiles(lcm, steps=3000):
    """Fit the entropy bottleneck's quantiles (its aux loss needs no data) before building CDF tables.

    Quantiles left far from the hyper-latent's real range clip the tables, and clipped symbols
    cost bypass bits: the real stream then exceeds the likelihood estimate.
    """
    quantiles = [p for n, p in lcm.named_parameters() if n.endswith("quantiles")]
    opt = torch.optim.Adam(quantiles, lr=0.1)
    for step in range(steps):
        if step == steps * 2 // 3:
            opt.param_groups[0]["lr"] = 0.01
        loss = lcm.aux_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def log(msg, logfile):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    with open(logfile, "a") as fh:
        fh.write(line + "\n")


def dihedral(t, k):
    """One of the 8 flips/rotations, applied to the last two axes."""
    if k & 4:
        t = t.flip(-1)
    return torch.rot90(t, k & 3, dims=(-2, -1))


class Trainer:
    def __init__(self, work, out, device, steps=None, seed=0, batch=16, pack=None):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.out = Path(out)
        self.device = device
        self.steps = dict(steps or (GPU_STEPS if device.type == "cuda" else CPU_STEPS))
        self.batch = batch if device.type != "cuda" else 64
        self.seed = seed
        self.pack = pack  # a training pack (data.write_training_pack) read instead of ../shared/data
        self.arguments = (work, out, device, steps, seed, batch, pack)
        self.logfile = self.work / "train.log"
        self.config = compact_config(rates={r: {"target_bpp": bpp} for r, bpp in RATES.items()})
        self.config["default_rate"] = "medium"
        self.timings = {}
        self.extended = {}

    def log(self, msg):
        log(msg, self.logfile)

    # -- checkpoints ------------------------------------------------------------
    def _ckpt(self, name):
        return self.work / f"{name}.pt"

    def _save(self, name, **state):
        tmp = self._ckpt(name).with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self._ckpt(name))

    def _load(self, name):
        p = self._ckpt(name)
        return torch.load(p, map_location="cpu", weights_only=False) if p.exists() else None

    def _finished(self, name, state, total):
        """True when the stage's checkpoint is done with at least `total` steps (its record is then kept)."""
        if not (state and state.get("done") and state["step"] >= total):
            return False
        # a stage seeded with more steps than asked (--from-model) is recorded with the steps it has had
        stage = _stage_of(name)
        self.steps[stage] = max(self.steps[stage], state["step"])
        self.timings[name] = state.get("seconds", 0.0)
        self.extended[name] = state.get("extended", [])
        return True

    @staticmethod
    def _extensions(state):
        """The steps at which a finished stage was extended to more steps (with a fresh optimiser)."""
        if not state:
            return []
        return state.get("extended", []) + ([state["step"]] if state.get("done") else [])

    @staticmethod
    def _clock(state):
        """A start time that counts the wall seconds spent before a resume (saved as "seconds")."""
        return time.time() - (state or {}).get("seconds", 0.0)

    # -- continuing from a model folder ----------------------------------------------
    def seed_from(self, model_dir):
        """Write a finished checkpoint for every stage of the model folder `model_dir` (the shipped model, say) that
        the work folder lacks, with the steps, wall times and extensions its config records: the recipe then goes on
        from that model (a stage asked for more steps is extended) instead of training it all again. The cache is
        encoded afresh, at the model's latent scale. The model's decoder counts as fitted with this recipe's decoder
        loss; a refit decoder stage starts from it."""
        model = MAGCModel.from_pretrained(model_dir, device="cpu")
        config = model.config
        trained = config.get("training", {})
        steps, seconds, extended = trained.get("steps", {}), trained.get("seconds", {}), trained.get("extended", {})
        if config.get("scale") != "compact" or not all(stage in steps for stage in ("ae", "lcm", "denoiser")):
            raise SystemExit(f"{model_dir} is not a compact model trained by this recipe (its config.json has no "
                             f"training record): train afresh.")
        if set(config["rates"]) != set(RATES):
            raise SystemExit(f"{model_dir} has other rate presets than this recipe's {', '.join(RATES)}: train afresh.")

        def record(name, stage):
            return dict(step=steps[stage], done=True, seconds=seconds.get(name, 0.0), extended=extended.get(name, []))

        checkpoints = {"ae": dict(model=model.autoencoder.state_dict(), latent_scale=model.autoencoder.latent_scale,
                                  **record("ae", "ae"))}
        # a module aimed at another target than this recipe's is trained afresh (stage_lcm), and the stages after it
        # see that their LCMs changed
        targets = {rate: config["rates"][rate]["target_bpp"] for rate in RATES}
        for rate in RATES:
            checkpoints[f"lcm-{rate}"] = dict(model=load_lcm(model_dir, config, rate).state_dict(), target=targets[rate],
                                              **{"lambda": config["rates"][rate]["lambda"]}, **record(f"lcm-{rate}", "lcm"))
        if has_residual_layout(config):
            # their shared layout codec is not in the folder: a residual stage trained again starts from a new one
            for rate in RATES:
                checkpoints[f"residual-{rate}"] = dict(model=load_lcm(model_dir, config, rate, "layout").state_dict(),
                                                       target=config["layout"]["target_bpp"], cell=config["layout"]["cell"],
                                                       **{"lambda": config["rates"][rate]["layout"]["lambda"]},
                                                       **record(f"residual-{rate}", "residual"))
        # folders of 0.4.0 and 0.4.1 hold a layout codec per preset, not the one this recipe trains: theirs are not seeded
        elif "lambda" in config.get("layout", {}):
            checkpoints["layout"] = dict(model=load_lcm(model_dir, config, config["default_rate"], "layout").state_dict(),
                                         target=config["layout"]["target_bpp"], cell=config["layout"]["cell"],
                                         **{"lambda": config["layout"]["lambda"]},
                                         **record("layout", "layout"))
        checkpoints["denoiser"] = dict(ema=model.denoiser.state_dict(), lcm_targets=targets,
                                       **record("denoiser", "denoiser"))
        if "stage1" in steps:
            checkpoints["stage1"] = dict(model=model.stage1_decoder.state_dict(), lcm_targets=targets,
                                         **record("stage1", "stage1"))
        if "decoder" in steps:
            # folders before 0.2.3 record no start: their decoders were fitted to samples drawn from pure noise;
            # folders before 0.2.4 record no maps version: theirs were fitted on version 1 (empty OAM maps)
            basis = _decoder_basis(steps["denoiser"], targets, trained.get("decoder_sampling_start", 1.0),
                                   trained.get("decoder_maps", 1))
            checkpoints["decoder"] = dict(model=model.autoencoder.decoder.state_dict(), loss=_decoder_loss_terms(),
                                          basis=basis, **record("decoder", "decoder"))
        for name, checkpoint in checkpoints.items():
            if self._ckpt(name).exists():
                self.log(f"{name}: the work folder has a checkpoint, kept (not replaced by {model_dir}'s)")
            else:
                self._save(name, **checkpoint)
                self.log(f"{name}: continuing from {model_dir} ({steps.get(_stage_of(name))} steps)")

    # -- stage 1: autoencoder -----------------------------------------------------
    def stage_ae(self):
        model = MAGCModel.from_config(self.config)
        ae = model.autoencoder
        state = self._load("ae")
        if state and state.get("done"):
            ae.load_state_dict(state["model"])
            self.timings["ae"] = state.get("seconds", 0.0)
            return ae
        taef2 = SHARED_WEIGHTS / "taef2"
        if state:
            ae.load_state_dict(state["model"])
        elif (taef2 / "taef2_encoder.pth").is_file():
            ae.load_taesd_weights(torch.load(taef2 / "taef2_encoder.pth", map_location="cpu"),
                                  torch.load(taef2 / "taef2_decoder.pth", map_location="cpu"))
            self.log("autoencoder initialised from TAEF2 (MIT)")
        ae.to(self.device).train()
        opt = torch.optim.Adam(ae.parameters(), lr=5e-5)
        if state:
            opt.load_state_dict(state["opt"])
        start = state["step"] if state else 0
        images = self.train_images()
        rng = np.random.default_rng(self.seed + start)
        total = self.steps["ae"]
        t0 = self._clock(state)
        for step in tqdm(range(start, total), desc="autoencoder", initial=start, total=total, mininterval=10):
            x = self._pixel_batch(images, rng, AE_CROP, AE_BATCH)
            loss = F.mse_loss(ae.decoder(ae.encoder(x)).clamp(0, 1), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 0:
                self.log(f"ae step {step} mse {loss.item():.5f} psnr {-10 * math.log10(loss.item() + 1e-10):.2f}")
            if step % 50 == 49:
                self._save("ae", model=ae.state_dict(), opt=opt.state_dict(), step=step + 1, seconds=time.time() - t0)
        self.timings["ae"] = time.time() - t0
        self._save("ae", model=ae.state_dict(), step=total, done=True, seconds=self.timings["ae"])
        return ae.cpu()

    def train_images(self):
        if not hasattr(self, "_images"):
            samples = data.pack_samples(self.pack) if self.pack else data.samples("train")
            self._images = [(img, cls) for _, img, cls in samples]
            self.log(f"{len(self._images)} training crops of 256x256")
        return self._images

    def image_names(self):
        """The names of the image files the training crops are cut from, in order (nothing is decoded)."""
        if not hasattr(self, "_image_names"):
            self._image_names = data.pack_image_names(self.pack) if self.pack else data.image_names("train")
        return self._image_names

    def _pixel_batch(self, images, rng, size, batch):
        xs = []
        for i in rng.integers(0, len(images), batch):
            img = images[i][0]
            y, x = rng.integers(0, 256 - size + 1, 2)
            t = torch.from_numpy(np.ascontiguousarray(img[y:y + size, x:x + size])).permute(2, 0, 1).float() / 255
            xs.append(dihedral(t, int(rng.integers(8))))
        return torch.stack(xs).to(self.device)

    # -- stage 2: latent cache --------------------------------------------------------
    @torch.no_grad()
    def stage_cache(self, ae):
        """The training crops' latents (at the model's latent scale) and guidance maps, cached in the work folder with
        the names of the images they are cut from. A cache of the first of those images (the split grew: new images come
        last) is extended by the new images' crops; one of other images is encoded again."""
        path = self.work / "latents.pt"
        cache = torch.load(path, weights_only=False) if path.exists() else None
        names = self.image_names()
        if cache is not None:
            # caches before 0.5.2 name no images: one stands if it holds as many crops as this split gives
            cached = cache.get("images", names if len(cache["latents"]) == len(self.train_images()) else None)
            if not cached or cached != names[:len(cached)]:
                self.log(f"cache: its {len(cache['latents'])} latents are of other images than these: encoding "
                         f"them again")
                cache = None
        if cache is not None and cached == names:
            ae.config["latent_scale"] = cache["latent_scale"]
            self.timings["cache"] = cache.get("seconds", 0.0)
            stale_maps = cache.get("maps") != data.MAPS_VERSION
            if stale_maps:
                # the latents stand; only the guidance maps beside them were made otherwise
                cache["classes"] = torch.stack([torch.from_numpy(cls) for _, cls in self.train_images()])
                cache["maps"] = data.MAPS_VERSION
                self.log(f"cache: guidance maps made again (version {data.MAPS_VERSION}), latents kept")
            if stale_maps or "images" not in cache:
                cache["images"] = names
                torch.save(cache, path)
            return cache
        images = self.train_images()
        ae.to(self.device).eval()
        # a model continued from (seed_from) keeps its scale: its LCMs and denoiser were trained at it; so does a
        # cache that is extended
        scale = cache["latent_scale"] if cache else (self._load("ae") or {}).get("latent_scale")
        ae.config["latent_scale"] = 1.0
        t0 = time.time()
        first = len(cache["latents"]) if cache else 0
        latents = []
        for img, _ in tqdm(images[first:], desc="encode", mininterval=10):
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).to(self.device)
            latents.append(ae.encode(x)[0].cpu().half())
        latents = torch.stack(latents)
        scale = scale or float(1.0 / latents.float().std())
        latents = latents * scale
        if cache:
            latents = torch.cat([cache["latents"], latents])
            self.log(f"cache: {first} latents kept, {len(images) - first} crops of {len(names) - len(cached)} new "
                     f"images encoded")
        self.timings["cache"] = time.time() - t0 + (cache.get("seconds", 0.0) if cache else 0.0)
        cache = {"latents": latents, "classes": torch.stack([torch.from_numpy(cls) for _, cls in images]),
                 "latent_scale": scale, "seconds": self.timings["cache"], "maps": data.MAPS_VERSION, "images": names}
        ae.config["latent_scale"] = scale
        torch.save(cache, path)
        self.log(f"cached {len(latents)} latents, latent scale {scale:.4f}")
        return cache

    def _latent_batch(self, cache, rng, size=16, batch=None):
        """Random size x size latent crops (8*size pixels) with their maps, dihedral-augmented."""
        n = cache["latents"].shape[0]
        lat, one_hot = [], []
        for i in rng.integers(0, n, batch or self.batch):
            y, x = rng.integers(0, 32 - size + 1, 2)
            k = int(rng.integers(8))
            latent, classes = _latent_crop(cache, i, y, x, size)
            lat.append(dihedral(latent, k))
            one_hot.append(dihedral(classes, k))
        return torch.stack(lat).to(self.device), torch.stack(one_hot).to(self.device)

    # -- stage 3: latent compression modules and layout codecs ---------------------------------
    def _aim(self, name, target):
        """What the codec `name` is trained for: its target bpp, and the layout codec's cell side. The rate a module
        codes at and the cells it codes are set by its training: another aim is another module."""
        return {"target": target} | ({"cell": self.config["layout"]["cell"]} if _stage_of(name) in LAYOUT_STAGES else {})

    def _codec_checkpoint(self, name, target):
        """The codec's checkpoint, or None when there is none or it was trained for another aim."""
        state = self._load(name)
        aim = self._aim(name, target)
        return state if state and _trained_for(state, aim) == aim else None

    def stage_lcm(self, cache, rate):
        return self._fit_codec(f"lcm-{rate}", RATES[rate], self.config["lcm"], self.config["rates"][rate], 1000,
                               lambda rng: self._latent_batch(cache, rng))

    def stage_layout(self):
        """The colour layout codec of every preset (codec/layout.py): the same module on the crops' block means."""
        self.config["layout"]["target_bpp"] = LAYOUT_RATE
        return self._fit_codec("layout", LAYOUT_RATE, self.config["layout"]["codec"], self.config["layout"], 5000,
                               self._layout_batch)

    def _residuals_done(self):
        """Whether every preset's residual layout codec is trained (the shared one is then not needed)."""
        return all(self._finished(f"residual-{rate}", self._codec_checkpoint(f"residual-{rate}", LAYOUT_RATE),
                                  self.steps["residual"]) for rate in RATES)

    def _bases_basis(self, lcms):
        """What the layout bases of the training crops are drawn from: a cache made from others is drawn again."""
        return {"images": self.image_names(), "lcm_targets": _lcm_targets(lcms), "lcm_steps": self.steps["lcm"],
                "stage1_steps": self.steps["stage1"], "crops": RESIDUAL_CROPS, "seed": self.seed}

    @torch.no_grad()
    def stage_layout_bases(self, ae, lcms, stage1_decoder):
        """{rate: {"chosen": crop numbers, "bases": (n, 3, 32, 32) layout bases}}: each preset's stage 1 of RESIDUAL_CROPS
        training crops as its model draws it for a tile (MAGCModel.layout_base), cached in the work folder."""
        path = self.work / "layout-bases.pt"
        basis = self._bases_basis(lcms)
        cache = torch.load(path, weights_only=False) if path.exists() else {}
        if cache.get("basis") != basis:
            cache = {"basis": basis}
        images = self.train_images()
        chosen = np.sort(np.random.default_rng(self.seed).choice(len(images), min(RESIDUAL_CROPS, len(images)),
                                                                 replace=False))
        for rate, lcm in lcms.items():
            if rate in cache:
                continue
            model = MAGCModel(self.config, ae.cpu().eval(), lcm.cpu().eval(), None, rate)
            model.stage1_decoder = stage1_decoder.cpu().eval()
            t0, bases = time.time(), []
            for i in tqdm(chosen, desc=f"layout bases {rate}", mininterval=10):
                img, classes = images[i]
                x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255)
                one_hot = to_one_hot(classes)
                y_hat = model.coded_y_hat(ae.encode(x), one_hot)
                bases.append(model.coded_layout_base(y_hat, one_hot, split_payload(mean_colour(img))[0])[0])
            cache[rate] = {"chosen": chosen, "bases": torch.stack(bases)}
            self.timings[f"bases-{rate}"] = time.time() - t0
            torch.save(cache, path)
            self.log(f"layout bases of {len(chosen)} crops drawn at {rate} in {time.time() - t0:.0f} s")
        return {rate: cache[rate] for rate in lcms}

    def stage_residuals(self, ae, lcms, stage1_decoder, layout):
        """Each preset's residual layout codec, `layout` (the shared codec; None when every preset's is trained)
        fine-tuned on the crops' layouts less their bases (stage_layout_bases)."""
        bases = None if layout is None else self.stage_layout_bases(ae, lcms, stage1_decoder)
        init = None if layout is None else {"model": layout.state_dict(), "lambda": self.config["layout"]["lambda"]}
        codecs = {}
        for rate in RATES:
            record = self.config["rates"][rate].setdefault("layout", {})
            codecs[rate] = self._fit_codec(f"residual-{rate}", LAYOUT_RATE, self.config["layout"]["codec"], record, 5000,
                                           lambda rng, r=rate: self._layout_batch(rng, bases[r]), init)
        return codecs

    def _layout_batch(self, rng, bases=None):
        """Random LAYOUT_CROP-pixel crops as layouts, dihedral-augmented, a MAP_DROPOUT share of them with an
        empty map: the layout must stand without the map. bases: {"chosen": crop numbers, "bases": their layout bases}
        (stage_layout_bases): the layouts of those crops less their bases."""
        images, cell = self.train_images(), self.config["layout"]["cell"]
        chosen = range(len(images)) if bases is None else bases["chosen"]
        lay, one_hot = [], []
        for n in rng.integers(0, len(chosen), self.batch):
            i = chosen[n]
            k = int(rng.integers(8))
            y, x = (int(v) * cell for v in rng.integers(0, (256 - LAYOUT_CROP) // cell + 1, 2))
            img, classes = (a[y:y + LAYOUT_CROP, x:x + LAYOUT_CROP] for a in images[i])
            if rng.random() < MAP_DROPOUT:
                classes = np.zeros_like(classes)
            pixels = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255
            layout = layout_of(pixels[None], cell)[0]
            if bases is not None:
                layout = layout - bases["bases"][n][:, y // GRID:(y + LAYOUT_CROP) // GRID, x // GRID:(x + LAYOUT_CROP) // GRID]
            lay.append(dihedral(layout, k))
            one_hot.append(dihedral(to_one_hot(classes)[0], k))
        return torch.stack(lay).to(self.device), torch.stack(one_hot).to(self.device)

    def _fit_codec(self, name, target, codec_config, record, seed_offset, batch_of, init=None):
        """Train one SPADE hyperprior codec (LatentCompressionModule(**codec_config)) for the steps of its stage (the
        checkpoint `name` up to its "-") on batches `batch_of(rng)` -> (input, one-hot map), loss lambda * MSE + bpp,
        lambda steered to `target` bpp (and recorded as record["lambda"], `record` a part of the config). init:
        {"model": weights, "lambda": lambda} that training starts from, with a fresh optimiser (else: afresh)."""
        lcm = LatentCompressionModule(**codec_config)
        state = self._load(name)
        total = self.steps[_stage_of(name)]
        re_aim_from, aim = None, self._aim(name, target)
        if state and _trained_for(state, aim) != aim:
            re_aim_from = state if state.get("done") else None
            self.log(f"{name}: its checkpoint was trained for {_describe(_trained_for(state, aim))}, now for "
                     f"{_describe(aim)}: "
                     + (f"re-aiming it (its last {min(RETARGET_STEPS, total)} steps from those weights)"
                        if re_aim_from else "training it afresh"))
            state = None
        if self._finished(name, state, total):
            lcm.load_state_dict(state["model"])
            record["lambda"] = state["lambda"]
            return lcm
        lcm.to(self.device).train()
        named = dict(lcm.named_parameters())
        aux = [p for n, p in named.items() if n.endswith("quantiles")]
        density = [p for n, p in named.items() if n.startswith("entropy_bottleneck.") and not n.endswith("quantiles")]
        nets = [p for n, p in named.items() if not n.startswith("entropy_bottleneck.")]
        params = nets + density
        # The hyper-latent's factorized density starts wide (~5 bits a symbol); at the nets' learning
        # rate it would stay so for thousands of steps, a rate floor far above the targets.
        base_lrs = (LCM_LR, 5e-3)
        opt = torch.optim.Adam([{"params": nets, "lr": base_lrs[0]}, {"params": density, "lr": base_lrs[1]}])
        aux_opt = torch.optim.Adam(aux, lr=1e-2)
        start, lam, bpp_avg = 0, LAMBDA_START, target
        if re_aim_from:
            lcm.load_state_dict(re_aim_from["model"])
            start, lam = max(0, total - RETARGET_STEPS), re_aim_from["lambda"]
        elif init and not state:
            lcm.load_state_dict(init["model"])
            lam = init["lambda"]
        if state:
            lcm.load_state_dict(state["model"], strict=False)
            start, lam, bpp_avg = state["step"], state["lambda"], state.get("bpp_avg", target)
            if not state.get("done"):
                opt.load_state_dict(state["opt"])
                aux_opt.load_state_dict(state["aux_opt"])
        extended = self._extensions(state)
        rng = np.random.default_rng(self.seed + seed_offset + start + int(target * 1000))
        t0 = self._clock(state)
        for step in tqdm(range(start, total), desc=name, initial=start, total=total, mininterval=10):
            for g, lr in zip(opt.param_groups, base_lrs):
                g["lr"] = lr / 4 if step >= int(total * 0.8) else lr
            inputs, one_hot = batch_of(rng)
            out = lcm(inputs, one_hot)
            pixels = one_hot.shape[0] * one_hot.shape[2] * one_hot.shape[3]
            bpp = sum(-torch.log2(l).sum() for l in out["likelihoods"].values()) / pixels
            mse = F.mse_loss(out["latent_hat"], inputs)
            loss = lam * mse + bpp
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            # Multiplicative steering of lambda on a running mean of the batch rate; the first
            # steps are skipped, while the untrained entropy models still cost ~0.4 bpp.
            bpp_avg = 0.9 * bpp_avg + 0.1 * bpp.item()
            if step >= LAMBDA_WARMUP:
                lam *= math.exp(LAMBDA_GAIN * max(-1.0, min(1.0, (target - bpp_avg) / target)))
            aux_loss = lcm.aux_loss()
            aux_opt.zero_grad()
            aux_loss.backward()
            aux_opt.step()
            if step % 50 == 0:
                self.log(f"{name} step {step} mse {mse.item():.4f} bpp {bpp.item():.4f} (mean {bpp_avg:.4f}) "
                         f"lambda {lam:.3f} aux {aux_loss.item():.1f}")
            if step % 250 == 249:
                self._save(name, model=lcm.state_dict(), opt=opt.state_dict(), aux_opt=aux_opt.state_dict(), step=step + 1,
                           seconds=time.time() - t0, extended=extended, **aim, **{"lambda": lam, "bpp_avg": bpp_avg})
        lcm.cpu().eval()
        # once, where the module is trained: an export of a module it did not train leaves it as it was
        self.log(f"{name}: entropy bottleneck aux loss after fitting {fit_quantiles(lcm):.2f}")
        lcm.update(force=True)
        self.timings[name] = time.time() - t0
        self.extended[name] = extended
        record["lambda"] = lam
        self._save(name, model=lcm.state_dict(), step=total, done=True, seconds=self.timings[name], extended=extended,
                   **aim, **{"lambda": lam, "bpp_avg": bpp_avg})
        return lcm

    # -- stage 4: denoiser -----------------------------------------------------------------
    def stage_denoiser(self, cache, lcms):
        model = MAGCModel.from_config(self.config)
        den = model.denoiser
        state = self._load("denoiser")
        lcm_targets = _lcm_targets(lcms)
        if state and state.get("lcm_targets", lcm_targets) != lcm_targets:
            # it learnt to refine other modules' latents: more denoiser steps adapt it to the new ones
            self.log(f"denoiser: its checkpoint was trained on LCMs for {state['lcm_targets']} bpp, the LCMs now target "
                     f"{lcm_targets}: extend it (more denoiser steps) so that it sees their outputs")
        total = self.steps["denoiser"]
        if self._finished("denoiser", state, total):
            den.load_state_dict(state["ema"])
            return den
        ema = MAGCModel.from_config(self.config).denoiser
        ema.load_state_dict(den.state_dict())
        den.to(self.device).train()
        ema.to(self.device).eval().requires_grad_(False)
        for lcm in lcms.values():
            lcm.to(self.device).eval()
        opt = torch.optim.AdamW(den.parameters(), lr=3e-4, weight_decay=0.01)
        start = 0
        if state:
            # a finished stage keeps only its EMA weights: an extension continues from them
            den.load_state_dict(state["ema" if state.get("done") else "model"])
            ema.load_state_dict(state["ema"])
            if not state.get("done"):
                opt.load_state_dict(state["opt"])
            start = state["step"]
        extended = self._extensions(state)
        scheduler = training_scheduler(self.config["schedule"])
        alphas = scheduler.alphas_cumprod.to(self.device)
        rng = np.random.default_rng(self.seed + 2000 + start)
        gen = torch.Generator().manual_seed(self.seed + start)
        rates = list(lcms)
        t0 = self._clock(state)
        batch = CPU_DENOISER_BATCH if self.device.type != "cuda" else self.batch
        for step in tqdm(range(start, total), desc="denoiser", initial=start, total=total, mininterval=10):
            latent, one_hot = self._latent_batch(cache, rng, batch=batch)
            with torch.no_grad():
                latent_tilde = lcms[rates[step % len(rates)]](latent, one_hot)["latent_hat"]
            noise = torch.randn(latent.shape, generator=gen).to(self.device)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (latent.shape[0],), generator=gen).to(self.device)
            a = alphas[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * latent + (1 - a).sqrt() * noise
            target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(latent, noise, t)
            # MSE alone: a perceptual term on the decoded x0 prediction cost PSNR for no DISTS (MODEL_CARD History).
            loss = F.mse_loss(den(x_t, t, latent_tilde, one_hot), target)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(den.parameters(), 1.0)
            opt.step()
            decay = min(0.999, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), den.parameters()):
                    pe.lerp_(p, 1 - decay)
            if step % 50 == 0:
                self.log(f"denoiser step {step} {scheduler.config.prediction_type} mse {loss.item():.4f}")
            if step % 250 == 249:
                self._save("denoiser", model=den.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step + 1,
                           seconds=time.time() - t0, extended=extended, lcm_targets=lcm_targets)
        self.timings["denoiser"] = time.time() - t0
        self.extended["denoiser"] = extended
        self._save("denoiser", ema=ema.state_dict(), step=total, done=True, seconds=self.timings["denoiser"],
                   extended=extended, lcm_targets=lcm_targets)
        return ema.cpu()

    # -- stage 5: the stage-1 decoder -------------------------------------------------------------
    def stage_stage1_decoder(self, cache, ae, lcms):
        """A copy of the autoencoder's decoder (as the ae stage left it) fitted for pixel MSE on the LCMs' latents,
        to draw stage 1 alone: the decoder stage fits the autoencoder's own for perceptual losses on sampled
        latents, which costs stage 1 about a dB of PSNR (MODEL_CARD History)."""
        decoder = copy.deepcopy(ae.decoder)
        lcm_targets = _lcm_targets(lcms)
        state = self._load("stage1")
        if state and state.get("lcm_targets") != lcm_targets:
            self.log(f"stage1: its checkpoint was fitted on LCMs for {state.get('lcm_targets')} bpp, now {lcm_targets}: "
                     "fitting it afresh")
            state = None
        total = self.steps["stage1"]
        if self._finished("stage1", state, total):
            decoder.load_state_dict(state["model"])
            return decoder
        ae.to(self.device).eval()
        decoder.to(self.device).train()
        for lcm in lcms.values():
            lcm.to(self.device).eval()
        opt = torch.optim.Adam(decoder.parameters(), lr=STAGE1_LR)
        start = 0
        if state:
            decoder.load_state_dict(state["model"])
            if not state.get("done"):
                opt.load_state_dict(state["opt"])
            start = state["step"]
        extended = self._extensions(state)
        images, rates = self.train_images(), list(lcms)
        rng = np.random.default_rng(self.seed + 5000 + start)
        t0 = self._clock(state)
        for step in tqdm(range(start, total), desc="stage-1 decoder", initial=start, total=total, mininterval=10):
            latents, maps, crops = [], [], []
            for i in rng.integers(0, len(images), STAGE1_BATCH):
                y, x = (int(v) for v in rng.integers(0, 32 - 16 + 1, 2))
                k = int(rng.integers(8))
                latent, classes = _latent_crop(cache, i, y, x, 16)
                latents.append(dihedral(latent, k))
                maps.append(dihedral(classes, k))
                crop = np.ascontiguousarray(images[i][0][8 * y:8 * y + 128, 8 * x:8 * x + 128])
                crops.append(dihedral(torch.from_numpy(crop).permute(2, 0, 1).float() / 255, k))
            latents, maps = torch.stack(latents).to(self.device), torch.stack(maps).to(self.device)
            latent_tilde = torch.empty_like(latents)
            with torch.no_grad():
                for r, rate in enumerate(rates):  # crop j goes through rate j mod len(rates): one pass per rate
                    latent_tilde[r::len(rates)] = lcms[rate](latents[r::len(rates)], maps[r::len(rates)])["latent_hat"]
            x_hat = ae.decode(latent_tilde, decoder)
            loss = F.mse_loss(x_hat, torch.stack(crops).to(self.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 0:
                self.log(f"stage1 step {step} mse {loss.item():.5f} psnr {-10 * math.log10(loss.item() + 1e-10):.2f}")
            if step % 50 == 49:
                self._save("stage1", model=decoder.state_dict(), opt=opt.state_dict(), step=step + 1,
                           seconds=time.time() - t0, extended=extended, lcm_targets=lcm_targets)
        self.timings["stage1"] = time.time() - t0
        self.extended["stage1"] = extended
        self._save("stage1", model=decoder.state_dict(), step=total, done=True, seconds=self.timings["stage1"],
                   extended=extended, lcm_targets=lcm_targets)
        return decoder.cpu().eval()

    # -- stage 6: decoder --------------------------------------------------------------------
    @torch.no_grad()
    def _sampled_bank(self, cache, lcms, den, basis):
        """DECODER_BANK (sampled latent, crop) pairs of 128-pixel crops, the rates taking turns by batch."""
        path = self.work / "decoder-bank.pt"
        if path.exists():
            bank = torch.load(path, weights_only=False)
            if bank["basis"] == basis:
                return bank
        images = self.train_images()
        rng = np.random.default_rng(self.seed + 3000)
        rates = list(lcms)
        den.to(self.device).eval()
        latents, crops = [], []
        for b in tqdm(range(DECODER_BANK // DECODER_BATCH), desc="decoder bank", mininterval=10):
            lat, one_hot, px = [], [], []
            for i in rng.integers(0, len(images), DECODER_BATCH):
                y, x = (int(v) for v in rng.integers(0, 32 - 16 + 1, 2))
                latent, classes = _latent_crop(cache, i, y, x, 16)
                lat.append(latent)
                one_hot.append(classes)
                px.append(torch.from_numpy(np.ascontiguousarray(images[i][0][8 * y:8 * y + 128, 8 * x:8 * x + 128])))
            lat, one_hot = torch.stack(lat).to(self.device), torch.stack(one_hot).to(self.device)
            latent_tilde = lcms[rates[b % len(rates)]].to(self.device).eval()(lat, one_hot)["latent_hat"]
            z = sample(den, latent_tilde, one_hot, steps=DECODER_BANK_STEPS, noise=self.seed + b,
                       schedule=self.config["schedule"], start=basis["sampling_start"])
            latents.append(z.cpu().half())
            crops.append(torch.stack(px).permute(0, 3, 1, 2))
        bank = {"latents": torch.cat(latents), "crops": torch.cat(crops), "basis": basis}
        tmp = path.with_suffix(".tmp")
        torch.save(bank, tmp)
        tmp.replace(path)
        return bank

    def stage_decoder(self, cache, ae, lcms, den):
        """The denoiser's latents are not the encoder's: a decoder fitted to them with a perceptual loss draws
        sharper, truer texture from them than one fitted to the encoder's latents."""
        from ..evaluation.metrics import DISTS, LPIPS, grid_profile
        basis = _decoder_basis((self._load("denoiser") or {}).get("step"), _lcm_targets(lcms), DECODER_BANK_START,
                               cache["maps"])
        state = self._load("decoder")
        loss_terms = _decoder_loss_terms()
        if state and (state.get("basis"), state.get("loss")) != (basis, loss_terms):
            self.log(f"decoder: its checkpoint was fitted to samples of {state.get('basis')} with loss terms "
                     f"{state.get('loss')}, now {basis} with {loss_terms}: fitting it afresh")
            state = None
        total = self.steps["decoder"]
        if self._finished("decoder", state, total):
            ae.decoder.load_state_dict(state["model"])
            return ae
        t0 = self._clock(state)
        bank = self._sampled_bank(cache, lcms, den, basis)
        perceptual, texture = LPIPS("vgg").to(self.device), DISTS().to(self.device)
        ae.to(self.device).train()
        opt = torch.optim.Adam(ae.decoder.parameters(), lr=1e-4)
        start = 0
        if state:
            ae.decoder.load_state_dict(state["model"])
            if not state.get("done"):
                opt.load_state_dict(state["opt"])
            start = state["step"]
        extended = self._extensions(state)
        rng = np.random.default_rng(self.seed + 4000 + start)
        for step in tqdm(range(start, total), desc="decoder", initial=start, total=total, mininterval=10):
            pairs = [(int(i), int(rng.integers(8))) for i in rng.integers(0, len(bank["latents"]), DECODER_BATCH)]
            z = torch.stack([dihedral(bank["latents"][i].float(), k) for i, k in pairs]).to(self.device)
            x = torch.stack([dihedral(bank["crops"][i].float() / 255, k) for i, k in pairs]).to(self.device)
            x_hat = ae.decode(z)
            l1 = (x_hat - x).abs().mean()
            contrast = (_local_std(x_hat) - _local_std(x)).abs().mean()
            lpips = perceptual.distance(perceptual.features(x_hat), perceptual.features(x)).mean()
            dists = texture.distance(texture.features(x_hat), texture.features(x)).mean()
            grid = (grid_profile(x_hat) - grid_profile(x)).abs().mean()
            loss = l1 + CONTRAST_WEIGHT * contrast + GRID_WEIGHT * grid + lpips + DISTS_WEIGHT * dists
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 25 == 0:
                self.log(f"decoder step {step} l1 {l1.item():.4f} contrast {contrast.item():.4f} grid {grid.item():.4f} "
                         f"lpips-vgg {lpips.item():.4f} dists {dists.item():.4f}")
            if step % 50 == 49:
                self._save("decoder", model=ae.decoder.state_dict(), opt=opt.state_dict(), step=step + 1,
                           seconds=time.time() - t0, extended=extended, basis=basis, loss=loss_terms)
        self.timings["decoder"] = time.time() - t0
        self.extended["decoder"] = extended
        self._save("decoder", model=ae.decoder.state_dict(), step=total, done=True, seconds=self.timings["decoder"],
                   extended=extended, basis=basis, loss=loss_terms)
        return ae.cpu().eval()

    # -- stage 7: export ----------------------------------------------------------------------
    def export(self, ae, lcms, layouts, den, stage1_decoder):
        lcms = {rate: lcm.cpu() for rate, lcm in lcms.items()}
        model = MAGCModel(self.config, ae.cpu(), lcms["medium"], den.cpu(), "medium")
        model.stage1_decoder = stage1_decoder.cpu()
        self.config["training"] = {
            "steps": self.steps, "batch": self.batch,
            "denoiser_batch": CPU_DENOISER_BATCH if self.device.type != "cuda" else self.batch, "seed": self.seed,
            "device": str(self.device), "hardware": f"{platform.processor() or platform.machine()}, "
                                                    f"{torch.get_num_threads()} threads",
            "seconds": {k: round(v) for k, v in self.timings.items()},
            "extended": {k: v for k, v in self.extended.items() if v},
            "decoder_sampling_start": DECODER_BANK_START,
            "decoder_maps": data.MAPS_VERSION,
            "residual_crops": RESIDUAL_CROPS,
        }
        # float16 storage halves the shipped files; inference still runs in float32
        model.save_pretrained(self.out, lcms=lcms, layout=layouts, storage_dtype=torch.float16)
        self.log(f"model written to {self.out}")

    def _codecs_in_parallel(self):
        """Train the unfinished LCMs and layout codecs in one process each, this process's threads shared out.
        Their small ops use threads poorly (2 threads: 0.83 s a step, 1 thread: 0.95 s): on 2 cores, three one-thread
        processes side by side made 1.4 s a step each, 1.8x the steps per second of training them in turn."""
        todo = [name for name, target in _codec_targets().items()
                if not self._finished(name, self._codec_checkpoint(name, target), self.steps[_stage_of(name)])
                and (name != "layout" or not self._residuals_done())]
        # the longest stage first: started last, when a process frees, it would end long after the others
        todo.sort(key=lambda name: -self.steps[_stage_of(name)])
        budget = torch.get_num_threads()
        if len(todo) < 2 or budget < 2:
            return
        workers = min(len(todo), 3)
        threads = max(1, budget // workers)
        self.log(f"training {', '.join(todo)} in {workers} processes of {threads} thread(s)")
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in [pool.submit(_train_codec_alone, self.arguments, self.config, codec, threads) for codec in todo]:
                done.result()

    def run(self, codec_only=None):
        """The whole recipe, or with `codec_only` (a codec's checkpoint name: "lcm-RATE" or "layout") that codec's
        stage alone, as each of the parallel codec processes runs it; a full run picks up the codecs' finished
        checkpoints."""
        if self.pack is None and not data.have_data():
            raise SystemExit(f"Training needs ../shared/data (looked in {data.data_root()}) or a training pack "
                             f"written where it is (--write-pack FILE, then --pack FILE).")
        if codec_only is not None and codec_only not in _codec_targets():
            raise SystemExit(f"Unknown codec {codec_only!r}: choose one of {', '.join(_codec_targets())}.")
        torch.manual_seed(self.seed)
        if codec_only == "layout":
            self.stage_layout()  # pixels only: no autoencoder, no cache
            return
        ae = self.stage_ae()
        cache = self.stage_cache(ae)
        if codec_only is not None:
            self.stage_lcm(cache, codec_only.split("-", 1)[1])
            return
        if self.device.type == "cpu":
            self._codecs_in_parallel()
        lcms = {rate: self.stage_lcm(cache, rate) for rate in RATES}
        layout = None if self._residuals_done() else self.stage_layout()
        den = self.stage_denoiser(cache, lcms)
        stage1_decoder = self.stage_stage1_decoder(cache, ae, lcms)  # before the decoder stage refits ae.decoder
        layouts = self.stage_residuals(ae, lcms, stage1_decoder, layout)
        ae = self.stage_decoder(cache, ae, lcms, den)
        self.export(ae, lcms, layouts, den, stage1_decoder)
        timings_path = self.work / "timings.json"
        timings_path.write_text(json.dumps(self.timings, indent=2))


def _train_codec_alone(trainer_arguments, config, codec, threads):
    """One codec stage ("lcm-RATE" or "layout") in a process of its own (see Trainer._codecs_in_parallel)."""
    torch.set_num_threads(threads)
    trainer = Trainer(*trainer_arguments)
    trainer.config = config
    trainer.run(codec_only=codec)
