"""A tiny land-cover segmentation network, to score decoded images by mIoU.

MAGC claims decoded images keep the semantics a downstream model needs; this module
measures that with a small UNet (0.39 M parameters, 0.8 MB in fp16) trained on the
training split only (Dubai tiles 1-6 with full 6-class masks, Zanzibar OAM tiles
with OSM buildings), never on the held-out regions the benchmark scores.

It predicts the five mapped project classes (building, road, water, vegetation,
other_land; class index = output channel + 1). Labels come in two kinds:

- Dubai masks: every class known (``not_mapped`` = unlabeled, ignored);
- OAM tiles: only buildings known (the dataset's building masks), every other pixel
  is "not a building", so the loss there is cross-entropy on building pixels and ``-log(1 - p_building)``
  elsewhere (a partial-label loss).

Scores (:class:`IoUMeter`): mIoU over the five classes on fully labelled pixels,
building IoU where only buildings are known, and the mIoU of the prediction on a
decoded image against the prediction on its original.

Command line::

    python -m magc_plugin.evaluation.segmentation train [--minutes 25] [--threads 1]
    python -m magc_plugin.evaluation.segmentation eval [--limit 48]
"""
import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..codec.classes import BUILDING, CLASS_NAMES, NOT_MAPPED

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "segnet.safetensors"
PREDICTED = CLASS_NAMES[1:]  # output channel c is project class c + 1
WIDTHS = (16, 32, 64, 96)


def _block(in_ch, out_ch):
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
    )


class TinyUNet(nn.Module):
    """A four-level UNet: RGB uint8-range input -> logits for the five mapped classes."""

    def __init__(self, widths=WIDTHS, num_classes=len(PREDICTED)):
        super().__init__()
        self.widths = tuple(widths)
        self.down = nn.ModuleList()
        in_ch = 3
        for w in self.widths:
            self.down.append(_block(in_ch, w))
            in_ch = w
        self.up = nn.ModuleList()
        for w_skip, w_in in zip(reversed(self.widths[:-1]), reversed(self.widths[1:])):
            self.up.append(_block(w_in + w_skip, w_skip))
        self.head = nn.Conv2d(self.widths[0], num_classes, 1)

    def forward(self, x):
        """x: float (N, 3, H, W) in 0..255, H and W multiples of 8."""
        h = x / 127.5 - 1.0
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], 1))
        return self.head(h)


def load_segnet(path=None):
    """The trained network, or None with a printed reason when its weights are absent."""
    from safetensors.torch import load_file, safe_open
    path = Path(path or DEFAULT_WEIGHTS)
    if not path.is_file():
        print(f"[magc] segmentation weights not found at {path}: mIoU is skipped "
              f"(train them with `python -m magc_plugin.evaluation.segmentation train`).")
        return None
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata() or {}
    net = TinyUNet(widths=json.loads(meta.get("widths", json.dumps(WIDTHS))))
    net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return net.eval()


@torch.no_grad()
def predict(net, image, tile=512):
    """uint8 RGB (H, W, 3) -> class raster (H, W) of project classes 1..5, tile by tile."""
    h, w = image.shape[:2]
    out = np.empty((h, w), dtype=np.uint8)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            patch = image[y:y + tile, x:x + tile]
            ph, pw = patch.shape[:2]
            t = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None].float()
            t = F.pad(t, (0, (-pw) % 8, 0, (-ph) % 8), mode="replicate")
            out[y:y + ph, x:x + pw] = (net(t)[0, :, :ph, :pw].argmax(0) + 1).numpy().astype(np.uint8)
    return out


class IoUMeter:
    """Accumulated confusion matrices; `scores()` gives the mIoU figures of the benchmark.

    - ``miou_gt``: mIoU over classes 1..5 on pixels with a full label (Dubai masks);
    - ``building_iou_gt``: building IoU on building-only labels (OAM tiles);
    - ``miou_vs_original``: mIoU of the prediction on decoded images against the
      prediction on the originals (every pixel).
    """

    K = len(CLASS_NAMES)
    FIELDS = ("gt", "building", "agreement")  # the confusion matrices it holds

    def __init__(self):
        self.gt = np.zeros((self.K, self.K), np.int64)
        self.building = np.zeros((2, 2), np.int64)
        self.agreement = np.zeros((self.K, self.K), np.int64)

    @classmethod
    def pooled(cls, meters):
        """One meter holding the confusion of every meter of `meters` (e.g. the per-sample ones of a group)."""
        total = cls()
        for meter in meters:
            for field in cls.FIELDS:
                setattr(total, field, getattr(total, field) + getattr(meter, field))
        return total

    @classmethod
    def _confusion(cls, truth, pred, k):
        return np.bincount(truth.astype(np.int64).ravel() * k + pred.astype(np.int64).ravel(),
                           minlength=k * k).reshape(k, k)

    def add(self, pred, truth, full_labels, pred_original=None):
        """pred/truth: class rasters; full_labels: truth labels every class (else buildings only)."""
        if full_labels:
            known = truth != NOT_MAPPED
            self.gt += self._confusion(truth[known], pred[known], self.K)
        else:
            self.building += self._confusion(truth == BUILDING, pred == BUILDING, 2)
        if pred_original is not None:
            self.agreement += self._confusion(pred_original, pred, self.K)

    @staticmethod
    def _iou(conf):
        inter = np.diag(conf).astype(float)
        union = conf.sum(0) + conf.sum(1) - np.diag(conf)
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan), union

    @classmethod
    def _miou(cls, conf):
        iou, union = cls._iou(conf)
        present = (conf.sum(1) > 0)[1:]  # classes seen in the reference, never not_mapped
        return float(np.mean(iou[1:][present])) if present.any() else float("nan")

    def scores(self):
        building = self._iou(self.building)[0][1] if self.building.sum() else float("nan")
        return {"miou_gt": self._miou(self.gt), "building_iou_gt": float(building),
                "miou_vs_original": self._miou(self.agreement)}


# -- training -------------------------------------------------------------------------

def partial_label_loss(logits, target, full_labels):
    """Cross-entropy on fully labelled samples; building / not-building on the others.

    target: (N, H, W) int64 project classes; full_labels: (N,) bool. The three kinds
    of term (full labels, partial building, partial not-building) are averaged
    separately and then together, so the many background pixels of OAM tiles do not
    drown the rest.
    """
    log_p = F.log_softmax(logits, 1)
    full = full_labels[:, None, None].expand_as(target)
    known = full & (target != NOT_MAPPED)
    b = BUILDING - 1
    terms = [
        -log_p.permute(0, 2, 3, 1)[known].gather(1, (target[known] - 1)[:, None]).squeeze(1),
        -log_p[:, b][~full & (target == BUILDING)],
        -torch.log1p(-log_p[:, b][~full & (target != BUILDING)].exp().clamp(max=1 - 1e-6)),
    ]
    return torch.stack([t.mean() for t in terms if t.numel()]).mean()


class CropSampler:
    """Random augmented crops from in-memory (image, class raster, full_labels) triples.

    A crop comes from a fully labelled image with probability `p_full` (the few large
    Dubai images), else from a building-only one (the many small OAM tiles).
    """

    def __init__(self, items, size, p_full=0.6, seed=0):
        self.items = [it for it in items if min(it[1].shape) >= size]
        self.groups = [[it for it in self.items if it[2]], [it for it in self.items if not it[2]]]
        self.p_full = p_full if all(self.groups) else float(bool(self.groups[0]))
        self.size = size
        self.rng = np.random.default_rng(seed)

    def batch(self, n):
        xs, ys, fulls = [], [], []
        for _ in range(n):
            group = self.groups[0] if self.rng.random() < self.p_full else self.groups[1]
            image, classes, full = group[self.rng.integers(len(group))]
            h, w = classes.shape
            y, x = self.rng.integers(h - self.size + 1), self.rng.integers(w - self.size + 1)
            img, cls = image[y:y + self.size, x:x + self.size], classes[y:y + self.size, x:x + self.size]
            k = int(self.rng.integers(4))
            img, cls = np.rot90(img, k), np.rot90(cls, k)
            if self.rng.random() < 0.5:
                img, cls = img[:, ::-1], cls[:, ::-1]
            xs.append(np.ascontiguousarray(img))
            ys.append(np.ascontiguousarray(cls))
            fulls.append(full)
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float()
        return x, torch.from_numpy(np.stack(ys)).long(), torch.tensor(fulls)


def ground_truth(name, classes):
    """The segmentation labels of a sample: Dubai guidance is its mask; OAM tiles use the
    dataset's building mask (masks/<tile>.tif, 255 = building), not the rasterized guidance."""
    if not name.startswith("oam/"):
        return classes
    import rasterio
    from ..data import data_root
    _, region, stem = name.split("/")
    with rasterio.open(data_root() / "oam-osm-buildings" / region / "masks" / f"{stem}.tif") as src:
        mask = src.read(1)
    return np.where(mask > 0, BUILDING, NOT_MAPPED).astype(np.uint8)


def _load_items(split, max_oam):
    from ..data import SPLITS, dubai_images, oam_tiles
    spec = SPLITS[split]
    items = [(img, cls, True) for _, img, cls in dubai_images(spec["dubai"])]
    oam = oam_tiles(spec["oam"])
    items += [(img, ground_truth(name, cls), False) for _, (name, img, cls) in zip(range(max_oam), oam)]
    return items


def evaluate(net, samples):
    """IoU scores of `net` on (name, image, class raster) samples (Dubai = full labels)."""
    meter = IoUMeter()
    for name, image, classes in samples:
        meter.add(predict(net, image), ground_truth(name, classes), full_labels=name.startswith("dubai"))
    return meter.scores()


def save_segnet(net, path, meta):
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half() if v.is_floating_point() else v.detach()
             for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={k: json.dumps(v) for k, v in meta.items()})


def train(out=DEFAULT_WEIGHTS, minutes=25.0, threads=1, batch=8, crop=128, lr=3e-3, max_oam=1000, seed=0,
          eval_every=250):
    """Train for a fixed wall-clock budget (cosine learning rate over it); keep the best on tile_7."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    from ..data import crops, dubai_images
    t0 = time.time()
    sampler = CropSampler(_load_items("train", max_oam), crop, seed=seed)
    val = [(f"dubai/{n}", c_img, c_cls) for n, img, cls in dubai_images(["tile_7"])
           for _, c_img, c_cls in list(crops(img, cls, 256, 512))[:3]]
    print(f"loaded {len(sampler.items)} training images, {len(val)} validation crops in {time.time() - t0:.0f} s",
          flush=True)
    net = TinyUNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    budget, start, step, best = minutes * 60, time.time(), 0, -1.0
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * frac))
        net.train()
        x, y, full = sampler.batch(batch)
        loss = partial_label_loss(net(x), y, full)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % eval_every == 0 or time.time() - start >= budget:
            scores = evaluate(net.eval(), val)
            print(f"step {step} t={time.time() - start:.0f}s loss={loss.item():.3f} val_tile7 {scores}", flush=True)
            if scores["miou_gt"] > best:
                best = scores["miou_gt"]
                save_segnet(net, out, {"widths": list(net.widths), "classes": list(PREDICTED), "steps": step,
                                       "val_tile7_miou": best, "crop": crop, "batch": batch,
                                       "train_split": "dubai tile_1-4,6 + zanzibar_tz"})
    print(f"done: {step} steps, best tile_7 mIoU {best:.3f}, weights {out}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m magc_plugin.evaluation.segmentation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train the network on the training split")
    p_train.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    p_train.add_argument("--minutes", type=float, default=25.0)
    p_train.add_argument("--threads", type=int, default=1)
    p_train.add_argument("--max-oam", type=int, default=1000, help="Zanzibar tiles to load (all: 966)")
    p_eval = sub.add_parser("eval", help="score the network on the held-out split")
    p_eval.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p_eval.add_argument("--limit", type=int, default=48)
    args = parser.parse_args(argv)
    if args.command == "train":
        train(args.out, args.minutes, args.threads, max_oam=args.max_oam)
    else:
        from ..data import heldout_samples
        torch.set_num_threads(1)
        net = load_segnet(args.weights)
        if net is not None:
            print(json.dumps(evaluate(net, heldout_samples(args.limit)), indent=2))


if __name__ == "__main__":
    main()
