"""The benchmark end to end on two tiny samples with a tiny random model, and its parts."""
import csv
import re

import numpy as np
import pytest

from magc_plugin.evaluation import bench, segmentation


def tiny_samples(limit=None):
    rng = np.random.default_rng(0)
    out = []
    for name in ("dubai/tile_8/synthetic@0,0", "oam/catanduanes_ph/synthetic"):
        image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        classes = rng.integers(0, 6 if name.startswith("dubai") else 2, (64, 64)).astype(np.uint8)
        out.append((name, image, classes))
    return out[:limit]


def test_bench_end_to_end(tmp_path, tiny_model_dir, monkeypatch):
    import torch
    monkeypatch.setattr(bench, "heldout_samples", tiny_samples)
    monkeypatch.setattr(segmentation, "ground_truth", lambda name, classes: classes)  # no mask files here
    torch.manual_seed(0)
    segnet = tmp_path / "segnet.safetensors"
    segmentation.save_segnet(segmentation.TinyUNet(), segnet, {"widths": list(segmentation.WIDTHS)})
    out = tmp_path / "report"
    # No metric weights and no FID here (fast): the bench must still run and say why figures are missing;
    # the perceptual metrics themselves are tested in test_metrics.py.
    summary = bench.main(["--out", str(out), "--model", str(tiny_model_dir), "--limit", "2", "--steps", "2",
                          "--seeds", "2", "--step-curve", "1", "--codecs", "jpeg,jpeg2000", "--segnet", str(segnet), "--grid", "2",
                          "--weights-dir", str(tmp_path / "no_weights"), "--no-fid"])
    for name in ("index.html", "per_image.csv", "summary.csv", "targets.csv", "rate_psnr.png", "grid.png",
                 "steps_curve.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    codecs = {r["codec"] for r in rows}
    assert codecs == {"magc", "magc-stage1", "magc-emptymap", "jpeg", "jpeg2000"}
    assert {r["steps"] for r in rows if r["codec"] == "magc"} == {"1", "2"}
    assert all(float(r["bpp"]) > 0 and int(r["bytes"]) > 0 for r in rows)
    magc = [s for s in summary if s["codec"] == "magc" and s["steps"] == 2]
    assert len(magc) == 1 and magc[0]["n"] == 4 and not np.isnan(magc[0]["miou_vs_original"])
    # 2 samples x 2 decodes, each with a seed no other decode of the row has
    seeds = [r["seed"] for r in rows if (r["codec"], r["steps"], r["rate"]) == ("magc", "2", magc[0]["rate"])]
    assert len(seeds) == 4 and len(set(seeds)) == 4
    assert {s["match"] for s in summary if s["codec"] == "jpeg"} == {"x1", "x2"}
    html = (out / "index.html").read_text()
    assert "rate_psnr.png" in html and "grid.png" in html and "Targets" in html
    assert "lpips_alex skipped" in html
    assert re.search(r"container bytes of a one-tile file[^<]*</td><td>\d{2}<", html)  # about 60, not kB


def test_spread_and_targets():
    assert bench.spread(list(range(10)), 3) == [0, 3, 6]
    assert bench.spread([1, 2], 5) == [1, 2]
    summary = [
        {"codec": "magc", "rate": "low", "match": "", "steps": 20, "bpp": 0.05, "lpips_alex": 0.3, "lpips_vgg": 0.3,
         "dists": 0.2, "fid": 50.0, "miou_gt": 0.5, "miou_vs_original": 0.6},
        {"codec": "jpeg", "rate": "low", "match": "x2", "steps": "", "bpp": 0.1, "lpips_alex": 0.5,
         "lpips_vgg": 0.2, "dists": 0.3, "fid": float("nan"), "miou_gt": 0.4, "miou_vs_original": 0.7},
    ]
    met = {r["metric"]: r["met"] for r in bench.check_targets(summary, 20)}
    assert met == {"lpips_alex": "yes", "lpips_vgg": "NO", "dists": "yes", "fid": "not measured",
                   "miou_gt": "yes", "miou_vs_original": "NO"}
    # a codec whose floor is above twice MAGC's bitrate is named, not compared
    floor = {**summary[1], "codec": "webp", "match": "x1", "bpp": 0.18, "lpips_alex": 0.1, "lpips_vgg": 0.1}
    rows = bench.check_targets(summary + [floor], 20)
    assert {r["metric"]: r["met"] for r in rows} == met
    assert all(r["out_of_reach"] == "webp (0.18)" for r in rows)
    assert {r["met"] for r in bench.check_targets([summary[0], floor], 20)} == {"no codec reaches this bitrate"}


def test_iou_meter_and_partial_loss():
    import torch
    meter = segmentation.IoUMeter()
    truth = np.array([[1, 2], [5, 0]], np.uint8)
    meter.add(truth.copy(), truth, full_labels=True, pred_original=truth)
    meter.add(np.array([[1, 1], [3, 3]], np.uint8), np.array([[1, 0], [0, 0]], np.uint8), full_labels=False)
    scores = meter.scores()
    assert scores["miou_gt"] == pytest.approx(1.0) and scores["building_iou_gt"] == pytest.approx(0.5)
    logits = torch.zeros(2, 5, 4, 4, requires_grad=True)
    target = torch.tensor([1, 0]).view(2, 1, 1).expand(2, 4, 4).clone()
    loss = segmentation.partial_label_loss(logits, target, torch.tensor([True, False]))
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0
