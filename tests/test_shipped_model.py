"""The shipped default model on real held-out tiles (../shared/data): what a new checkout must decode.

Its figures are compared with JPEG 2000 at the same bpp on the same tiles, in the same process; the
absolute bounds only tell a plausible aerial image from noise or a broken decoder.
"""
import numpy as np
import pytest

from magc_plugin.codec.folders import model_rates
from magc_plugin.training import data

TILES = 4


@pytest.fixture(scope="module")
def heldout():
    if not data.have_data():
        pytest.skip(f"../shared/data is absent (looked in {data.data_root()}): real-data test not run")
    from magc_plugin.training.validate import heldout_subset
    return heldout_subset(TILES)


@pytest.fixture(scope="module")
def evaluator():
    from magc_plugin.evaluation.metrics import Evaluator
    evaluator = Evaluator(metrics=("psnr", "lpips_alex", "dists"), fid=False)
    probe = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    if np.isnan(list(evaluator.compare(evaluator.reference(probe), probe).values())).any():
        pytest.skip(f"the LPIPS / DISTS weights are not installed: {evaluator.warnings}")
    return evaluator


def test_the_shipped_model_decodes_held_out_tiles_better_than_jpeg2000_at_the_same_bpp(heldout, evaluator):
    from magc_plugin.codec.model import MAGCModel
    from magc_plugin.evaluation.baselines import encode_at_bpp
    refs = [evaluator.reference(img) for _, img, _ in heldout]
    rates = []
    for rate in model_rates("default"):
        model = MAGCModel.from_pretrained("default", rate=rate, device="cpu")
        magc, stage1, jp2, bpps = [], [], [], []
        for ref, (name, img, cls) in zip(refs, heldout):
            payload = model.compress_tile(img, cls)
            bpp = len(payload) * 8 / cls.size
            decoded = model.decompress_tile(payload, cls, steps=20, seed=0)
            assert decoded.shape == img.shape and decoded.dtype == np.uint8, name
            magc.append(evaluator.compare(ref, decoded))
            stage1.append(evaluator.compare(ref, model.decompress_tile(payload, cls, steps=0)))
            jp2.append(evaluator.compare(ref, encode_at_bpp("jpeg2000", img, bpp)[0]))
            bpps.append(bpp)
        mean = lambda rows, key: float(np.mean([r[key] for r in rows]))  # noqa: E731
        figures = {k: (mean(magc, k), mean(stage1, k), mean(jp2, k)) for k in ("psnr", "lpips_alex", "dists")}
        assert 0.005 < np.mean(bpps) < 0.15, (rate, bpps)
        # aerial imagery (these tiles: 14.6-16.4 dB, DISTS 0.21-0.23), not noise (8.5 dB, DISTS 0.61), a flat tile
        # of the mean colour (13.5 dB, DISTS 0.73) nor a blur (Gaussian sigma 8: 18.5 dB, DISTS 0.50)
        assert figures["psnr"][0] > 12 and figures["dists"][0] < 0.32, (rate, figures)
        for key in ("lpips_alex", "dists"):
            magc_value, stage1_value, jp2_value = figures[key]
            assert magc_value < jp2_value, (rate, key, figures)
            assert magc_value < stage1_value, (rate, key, figures)  # the diffusion decoder earns its keep
        rates.append(np.mean(bpps))
    assert rates == sorted(rates), rates
