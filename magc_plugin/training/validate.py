"""Validation of a trained model folder on the held-out split; writes its model card.

    python -m magc_plugin.training.validate --model magc_plugin/models/compact --limit 48 --steps 20

For every rate preset: real bpp from the real bitstreams, the rate model's estimate,
PSNR, MS-SSIM, LPIPS-Alex and DISTS of the full decoder and of stage 1 alone, and
JPEG 2000 at the same bpp. A side-by-side grid (original | guidance | MAGC per rate |
JPEG 2000) is written to the work folder, never into the repository (it shows
crops of ../shared/data).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..codec.classes import colourize
from ..codec.model import MAGCModel, has_residual_layout, sampling_start
from .. import data

METRICS = ("psnr", "ms_ssim", "lpips_alex", "dists")


def heldout_subset(limit):
    """An even spread of held-out samples over both sources (Dubai crops, Catanduanes tiles)."""
    everything = list(data.samples("heldout"))
    dubai = [s for s in everything if s[0].startswith("dubai")]
    oam = [s for s in everything if s[0].startswith("oam")]
    half = limit // 2
    pick = lambda items, n: [items[int(i)] for i in np.linspace(0, len(items) - 1, min(n, len(items)))]  # noqa: E731
    return pick(dubai, limit - min(half, len(oam))) + pick(oam, half)


def validate(model_dir, limit=48, steps=20, work=Path("runs/validate"), overhead_crops=8):
    from ..evaluation.metrics import Evaluator, lattice_index
    from ..tiling import DEFAULT_TILE_SIZE
    try:
        from ..evaluation.baselines import encode_at_bpp
    except ImportError:
        encode_at_bpp = None
    work.mkdir(parents=True, exist_ok=True)
    config = json.loads((Path(model_dir) / "config.json").read_text())
    samples = heldout_subset(limit)
    evaluator = Evaluator(metrics=METRICS, fid=False)
    refs = [evaluator.reference(img) for _, img, _ in samples]
    results, grid_rows = {}, [[img, colourize(cls)] for _, img, cls in samples[:4]]
    crops = tile_size_crops(DEFAULT_TILE_SIZE, overhead_crops)
    for rate in config["rates"]:
        model = MAGCModel.from_pretrained(model_dir, rate=rate, device="cpu")
        rows = []
        t_enc = t_dec = 0.0
        for i, (name, img, cls) in enumerate(tqdm(samples, desc=f"validate {rate}", mininterval=10)):
            t = time.time()
            payload = model.compress_tile(img, cls)
            t_enc += time.time() - t
            bpp = len(payload) * 8 / cls.size
            t = time.time()
            decoded = model.decompress_tile(payload, cls, steps=steps, seed=i)  # its own noise, as a raster's tiles
            t_dec += time.time() - t
            stage1 = model.decompress_tile(payload, cls, steps=0)
            row = {"name": name, "bpp": bpp, "estimate_bpp": model.estimate_bits(img, cls) / cls.size}
            row.update({f"magc_{k}": v for k, v in evaluator.compare(refs[i], decoded).items()})
            row.update({f"stage1_{k}": v for k, v in evaluator.compare(refs[i], stage1).items()})
            row.update(magc_lattice=lattice_index(decoded), original_lattice=lattice_index(img))
            if encode_at_bpp is not None:
                jp2, jp2_bpp = encode_at_bpp("jpeg2000", img, bpp)
                row["jpeg2000_bpp"] = jp2_bpp
                row.update({f"jpeg2000_{k}": v for k, v in evaluator.compare(refs[i], jp2).items()})
                if i < 4 and rate == list(config["rates"])[-1]:
                    grid_rows[i].append(jp2)
            if i < 4:
                grid_rows[i].insert(2 + list(config["rates"]).index(rate), decoded)
            rows.append(row)
        keys = [k for k in rows[0] if k != "name"]
        summary = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
        summary["real_over_estimate"] = summary["bpp"] / summary["estimate_bpp"] - 1
        summary["encode_s_per_tile"] = t_enc / len(rows)
        summary["decode_s_per_tile"] = t_dec / len(rows)
        summary["at_tile_size"] = rate_overhead(model, crops)
        results[rate] = summary
        (work / f"rows-{rate}.json").write_text(json.dumps(rows, indent=1))
    _save_grid(grid_rows, work / "grid.png")
    (work / "summary.json").write_text(json.dumps(results, indent=2))
    return results, len(samples), evaluator.warnings


def tile_size_crops(tile_size, limit):
    """An even spread of `limit` held-out Dubai crops of the plugin's tile size."""
    crops = [s for s in data.samples("heldout", size=tile_size, stride=tile_size) if s[0].startswith("dubai")]
    return [crops[int(i)] for i in np.linspace(0, len(crops) - 1, min(limit, len(crops)))]


def rate_overhead(model, crops):
    """Real stream vs the rate model's estimate on `crops` (compress only): the per-tile stream
    overhead weighs less on the plugin's tiles than on the 256-pixel validation samples."""
    real = sum(len(model.compress_tile(img, cls)) * 8 for _, img, cls in crops)
    estimate = sum(model.estimate_bits(img, cls) for _, img, cls in crops)
    pixels = sum(cls.size for _, _, cls in crops)
    return {"bpp": real / pixels, "estimate_bpp": estimate / pixels, "real_over_estimate": real / estimate - 1,
            "tile_size": crops[0][2].shape[0], "crops": len(crops)}


def _save_grid(rows, path):
    from PIL import Image
    tiles = [np.concatenate([np.asarray(im) for im in row], axis=1) for row in rows if row]
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles]
    Image.fromarray(np.concatenate(tiles, axis=0)).save(path)


def _extension(stage, steps):
    return f"{stage} from step{'s' if len(steps) > 1 else ''} {' and '.join(map(str, steps))}"


HISTORY = "## History"


def card_history(card):
    """The hand-written "## History" section of a model card (how the weights came to be, run by run), or ""."""
    start = card.find(HISTORY)
    if start < 0:
        return ""
    end = card.find("\n## ", start + len(HISTORY))
    return card[start:end if end >= 0 else None].strip() + "\n"


def _down(start):
    """How far down the schedule a sampling start is, as a percentage: 0.3 -> "70 %"."""
    return f"{100 * (1 - start):.0f} %"


def model_card(config, results, n, steps, history=""):
    """The card of a model folder: data, training record, validation figures; `history` is kept as written."""
    t = config.get("training", {})
    lines = [
        f"# MAGC compact model ({config.get('name', 'compact')})", "",
        "Trained by this project from scratch (the autoencoder starts from TAEF2, MIT, by Ollin Boer Bohan) "
        "with `python build.py train` (`magc_plugin/training/recipe.py`).", "",
        "## Data and split",
        "- Training: Dubai aerial land cover (CC0; Humans in the Loop / MBRSC) tiles 1, 2, 3, 4, 6, as 256x256 crops "
        "with their 6-class masks; OpenAerialMap tiles of Zanzibar (CC-BY 4.0) with OSM buildings (ODbL) "
        "rasterized by the plugin's own rasterizer (a partial map: buildings only).",
        f"- Training also: the NEON airborne plots of sites {' and '.join(data.SPLITS['train']['neon'])} (CC BY 4.0; "
        "0.1 m; tree-crown boxes as vegetation maps).",
        "- Held out (validation/test): Dubai tiles 7 and 8, and all Catanduanes OAM tiles.",
        f"- Transfer, which no training sees: the NEON sites {' and '.join(data.SPLITS['transfer']['neon'])} "
        "(the bench's `--samples transfer`).",
        "- Augmentation: random crops and the 8 flips/rotations.", "",
        "## Training",
        f"- Hardware: {t.get('hardware', '?')} on device `{t.get('device', '?')}`"
        + (" (no GPU was available for this run)." if t.get("device") == "cpu" else "."),
        f"- Steps: {t.get('steps')}; batch {t.get('batch')} (denoiser {t.get('denoiser_batch')}); seed {t.get('seed')}.",
        *([f"- Extended stages: {', '.join(_extension(k, v) for k, v in t['extended'].items())}."
           " Each was trained to the shorter step count first, then continued to the count above with a fresh optimiser "
           "(`build.py train` with more steps resumes from the finished checkpoints); wall times add both runs."]
          if t.get("extended") else []),
        "- Rate presets (target bpp on 128-pixel training crops -> lambda reached by the steering): "
        + ", ".join(f"{r} {c.get('target_bpp')} -> {c.get('lambda', float('nan')):.2f}" for r, c in config["rates"].items()) + ".",
        *([f"- Colour layout codec, one for every preset (`codec/layout.py`: the tile's {config['layout']['cell']}-pixel "
           f"block means, coded after the latent; target bpp on the same crops -> lambda): {config['layout']['target_bpp']} -> "
           f"{config['layout']['lambda']:.2f}; a quarter of its training crops have an empty map."]
          if "lambda" in config.get("layout", {}) and not has_residual_layout(config) else []),
        *([f"- Colour layout codecs, one per preset (`codec/layout.py`): each codes the tile's {config['layout']['cell']}"
           f"-pixel block means less those of stage 1 at its preset (drawn from the latent alone, re-centred on the "
           f"tile's colour), after the latent. Each is the shared layout codec (target {config['layout']['target_bpp']} "
           f"bpp on the same crops -> lambda {config['layout'].get('lambda', float('nan')):.2f}) fine-tuned "
           f"{t.get('steps', {}).get('residual')} steps on {t.get('residual_crops')} of the crops, stage 1 drawn once for them, "
           "at the same target -> lambda "
           + ", ".join(f"{r} {c['layout']['lambda']:.2f}" for r, c in config["rates"].items() if "layout" in c)
           + "; a quarter of their training crops have an empty map."]
          if has_residual_layout(config) and "target_bpp" in config["layout"] else []),
        f"- Wall time per stage (s): {t.get('seconds')}.",
        "- Stage 1 loss: lambda * MSE(latent) + bpp (the layout codec: lambda * MSE(block means) + bpp); stage 2: MSE of the "
        f"{config['schedule']['prediction_type']} prediction, EMA weights, latent_tilde from the frozen "
        "LCMs (one denoiser shared by every rate).",
        *(["- Then the decoder alone (the encoder, so the bitstream, is unchanged) is fine-tuned on latents that "
           "the sampler draws at every rate, with L1, local contrast (each 16-pixel cell's standard deviation), "
           "the grid profile (mean edge strength at each position modulo 8, so that it does not draw the latent "
           "grid), LPIPS-VGG and DISTS against the crops. LPIPS-VGG and DISTS are thus training "
           "losses (both on VGG16 features): LPIPS-Alex and FID are the independent checks."]
          if "decoder" in t.get("steps", {}) else []),
        *(["- Stage 1 alone (a decode with no diffusion steps) is drawn by a copy of the decoder fitted for pixel MSE "
           "on the LCMs' latents at every rate (`stage1-decoder.safetensors`, the recipe's stage1); what the sampler "
           "draws goes through the decoder above."] if "stage1" in t.get("steps", {}) else []),
        *([f"- Sampling: the sampler starts {_down(sampling_start(config))} down the schedule from the noised stage-1 "
           f"latent (`config.json` \"sampling\"); the decoder stage drew its samples starting "
           f"{_down(t['decoder_sampling_start'])} down."] if "decoder_sampling_start" in t else []), "",
        *([history] if history else []),
        f"## Validation on {n} held-out 256x256 tiles ({steps} diffusion steps, tile i decoded with seed i)", "",
        "| rate | real bpp | estimate bpp | real vs estimate | PSNR | MS-SSIM | LPIPS-Alex | DISTS | "
        "lattice | stage-1 PSNR | stage-1 LPIPS | JPEG 2000 bpp | JPEG 2000 PSNR | JPEG 2000 LPIPS | JPEG 2000 DISTS | "
        "encode s/tile | decode s/tile |",
        "|" + "---|" * 17,
    ]
    f = lambda v, d=3: "n/a" if v is None or v != v else f"{v:.{d}f}"  # noqa: E731
    for rate, s in results.items():
        lines.append(
            f"| {rate} | {f(s['bpp'], 4)} | {f(s['estimate_bpp'], 4)} | {100 * s['real_over_estimate']:+.1f} % | "
            f"{f(s['magc_psnr'], 2)} | {f(s['magc_ms_ssim'])} | {f(s['magc_lpips_alex'])} | {f(s['magc_dists'])} | "
            f"{f(s['magc_lattice'])} | {f(s['stage1_psnr'], 2)} | {f(s['stage1_lpips_alex'])} | {f(s.get('jpeg2000_bpp'), 4)} | "
            f"{f(s.get('jpeg2000_psnr'), 2)} | {f(s.get('jpeg2000_lpips_alex'))} | {f(s.get('jpeg2000_dists'))} | "
            f"{f(s['encode_s_per_tile'], 2)} | {f(s['decode_s_per_tile'], 2)} |")
    originals = next(iter(results.values()))["original_lattice"]
    lines += ["", "Lattice: the lattice index of the decoded tiles (how much their edges favour the 8-pixel latent "
              f"grid, `metrics.lattice_index`); the originals give {f(originals)}."]
    first = next(iter(results.values()))["at_tile_size"]
    lines += ["", f"Real stream vs estimate at the plugin's default tile size ({first['tile_size']} px, "
              f"{first['crops']} held-out Dubai crops, compress only):", "",
              "| rate | real bpp | estimate bpp | real vs estimate |", "|---|---|---|---|"]
    lines += [f"| {rate} | {f(o['bpp'], 4)} | {f(o['estimate_bpp'], 4)} | {100 * o['real_over_estimate']:+.1f} % |"
              for rate, o in ((r, s["at_tile_size"]) for r, s in results.items())]
    lines += ["", "Reproduce: `python -m magc_plugin.training.validate --model <folder> "
              f"--limit {n} --steps {steps}`.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m magc_plugin.training.validate", description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--work", default="runs/validate")
    args = parser.parse_args(argv)
    results, n, warns = validate(args.model, args.limit, args.steps, Path(args.work))
    config = json.loads((Path(args.model) / "config.json").read_text())
    card_path = Path(args.model) / "MODEL_CARD.md"
    history = card_history(card_path.read_text()) if card_path.exists() else ""
    card = model_card(config, results, n, args.steps, history)
    if warns:
        card += "\nMetric notes: " + "; ".join(warns) + "\n"
    card_path.write_text(card)
    print(card)


if __name__ == "__main__":
    main()
