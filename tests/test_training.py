"""The training recipe's checkpoints: a finished stage is reused, or extended when asked for more steps."""
import json
import shutil

import numpy as np
import pytest
import torch

from magc_plugin.codec.classes import BUILDING, NUM_CLASSES
from magc_plugin.codec.folders import SHIPPED_MODELS
from magc_plugin.codec.model import MAGCModel, compact_config
from magc_plugin import data
from magc_plugin.training import recipe
from magc_plugin.training.recipe import RATES, Trainer

from test_codec import TINY
from test_metrics import needs_weights


def trainer(tmp_path, lcm_steps, denoiser_steps=1, decoder_steps=1, layout_steps=None, stage1_steps=1):
    t = Trainer(tmp_path / "work", tmp_path / "out", torch.device("cpu"),
                steps={"ae": 1, "lcm": lcm_steps, "layout": layout_steps or lcm_steps, "residual": lcm_steps,
                       "denoiser": denoiser_steps, "stage1": stage1_steps, "decoder": decoder_steps}, batch=2)
    t.config = compact_config(**TINY, rates={r: {"target_bpp": bpp} for r, bpp in RATES.items()})
    return t


def latent_cache():
    """What the cache stage holds: scaled latents of 256-pixel crops and their class maps."""
    rng = np.random.default_rng(0)
    return {"latents": torch.from_numpy(rng.standard_normal((3, TINY["latent_channels"], 32, 32))).half(),
            "classes": torch.from_numpy(rng.integers(0, NUM_CLASSES, (3, 256, 256)).astype(np.uint8)),
            "latent_scale": 1.0, "maps": data.MAPS_VERSION}


@pytest.fixture
def cache():
    return latent_cache()


def random_crops():
    """Training crops for the cache's class maps (what Trainer.train_images gives), random pixels."""
    rng = np.random.default_rng(1)
    return [(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), cls.numpy()) for cls in latent_cache()["classes"]]


def use_crops(t, crops):
    """Train on these (image, class raster) crops, each cut from an image of its own, instead of the data folder's."""
    t._images, t._image_names = crops, [f"image {i}" for i in range(len(crops))]


def export_all(t, cache):
    """Every stage the export needs (the layout codecs on random crops), then the export; the LCMs."""
    if not hasattr(t, "_images"):
        use_crops(t, random_crops())
    lcms = {rate: t.stage_lcm(cache, rate) for rate in RATES}
    ae = MAGCModel.from_config(t.config).autoencoder
    layout = None if t._residuals_done() else t.stage_layout()
    stage1_decoder = t.stage_stage1_decoder(cache, ae, lcms)
    t.export(ae, lcms, t.stage_residuals(ae, lcms, stage1_decoder, layout), t.stage_denoiser(cache, lcms),
             stage1_decoder)
    return lcms


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A tiny model folder written by the recipe's export (2 LCM steps, 1 denoiser step)."""
    tmp_path, cache = tmp_path_factory.mktemp("model"), latent_cache()
    export_all(trainer(tmp_path, 2), cache)
    return tmp_path / "out"


@pytest.fixture
def crops(cache):
    """The training crops the cache's latents stand for (what Trainer.train_images gives)."""
    return random_crops()


@pytest.fixture
def small_bank(monkeypatch):
    monkeypatch.setattr(recipe, "DECODER_BANK", 2 * recipe.DECODER_BATCH)


def weights(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


@pytest.mark.skipif(not data.have_data(), reason="a full run checks for ../shared/data before any stage")
def test_the_codec_stages_train_side_by_side_in_processes_of_their_own(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the 2-core budget, whatever this machine has
    t = trainer(tmp_path, 2, layout_steps=3)  # the longest stage starts first
    t._save("ae", model=MAGCModel.from_config(t.config).autoencoder.state_dict(), step=1, done=True)
    # the processes read the data folder's split: the cache says it holds that split's crops
    torch.save(dict(cache, images=data.image_names("train")), tmp_path / "work" / "latents.pt")
    t._codecs_in_parallel()
    targets = {"layout": recipe.LAYOUT_RATE} | {f"lcm-{rate}": target for rate, target in RATES.items()}
    for name, target in targets.items():
        state = torch.load(tmp_path / "work" / f"{name}.pt", weights_only=False)
        assert state["done"] and state["step"] == t.steps[recipe._stage_of(name)] and state["target"] == target
    assert f"training {', '.join(targets)} in 3 processes" in (tmp_path / "work" / "train.log").read_text()


@pytest.mark.skipif(not data.have_data(), reason="needs the OpenAerialMap tiles of ../shared/data")
def test_oam_tiles_get_their_osm_footprints_as_buildings():
    """The OSM polygons carry no building tag (only osm_id): burnt as a buildings layer, they cover what the
    dataset's own building masks cover."""
    import rasterio
    region = data.data_root() / "oam-osm-buildings" / "catanduanes_ph"
    ious = []
    for mask_path in sorted((region / "masks").glob("*-21.tif"))[:12]:
        with rasterio.open(mask_path) as mask:
            built = mask.read(1) > 0
        burnt = data.oam_guidance(region, mask_path.stem) == BUILDING
        if built.any():
            ious.append((built & burnt).sum() / (built | burnt).sum())
    assert len(ious) >= 6 and np.mean(ious) > 0.85, ious


@pytest.mark.skipif(not data.have_data(), reason="a training pack is written from ../shared/data")
def test_training_from_a_pack_sees_the_crops_of_the_data_folder(tmp_path, monkeypatch):
    """A pack stands in for ../shared/data (and GDAL) on a machine that has neither: the same crops, in order."""
    monkeypatch.setitem(data.SPLITS, "train", {"dubai": ["tile_8"], "oam": ["catanduanes_ph"]})
    pack = tmp_path / "train.zip"
    assert data.write_training_pack(pack) == len(list(data.dubai_images(["tile_8"]))) + len(list(
        (data.data_root() / "oam-osm-buildings" / "catanduanes_ph" / "images").glob("*.png")))
    from_pack = Trainer(tmp_path / "work", tmp_path / "out", torch.device("cpu"), pack=pack).train_images()
    from_folder = trainer(tmp_path, 1).train_images()
    assert len(from_pack) == len(from_folder) > 84
    assert all(np.array_equal(a, b) and np.array_equal(ca, cb) for (a, ca), (b, cb) in zip(from_pack, from_folder))
    assert any((cls == BUILDING).any() for _, cls in from_pack)  # the OSM footprints came along


def test_a_training_pack_of_other_maps_or_no_pack_at_all_is_refused_with_what_to_do(tmp_path):
    import zipfile
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as pack:
        pack.writestr("index.json", json.dumps({"format": data.PACK_FORMAT, "maps": data.MAPS_VERSION - 1,
                                                "images": []}))
    with pytest.raises(ValueError, match="write the pack again"):
        data.pack_samples(other)
    with zipfile.ZipFile(other, "w") as pack:
        pack.writestr("index.json", json.dumps({"format": "magc-training-pack-0", "maps": data.MAPS_VERSION}))
    with pytest.raises(ValueError, match="write it again"):
        data.pack_samples(other)
    (tmp_path / "not.zip").write_text("an image folder, perhaps")
    with pytest.raises(ValueError, match="not a training pack"):
        data.pack_samples(tmp_path / "not.zip")
    from magc_plugin.training.__main__ import main
    with pytest.raises(SystemExit):
        main(["--pack", str(tmp_path / "missing.zip")])


def test_a_cache_with_maps_made_otherwise_has_them_made_again(tmp_path, cache, crops):
    t = trainer(tmp_path, 1)
    use_crops(t, [(img, np.zeros_like(cls)) for img, cls in crops])
    stale = dict(cache, maps=data.MAPS_VERSION - 1)
    torch.save(stale, tmp_path / "work" / "latents.pt")
    refreshed = t.stage_cache(MAGCModel.from_config(t.config).autoencoder)
    assert torch.equal(refreshed["latents"], cache["latents"]) and not refreshed["classes"].any()
    assert torch.load(tmp_path / "work" / "latents.pt", weights_only=False)["maps"] == data.MAPS_VERSION
    assert "guidance maps made again" in (tmp_path / "work" / "train.log").read_text()


def test_a_cache_of_the_first_images_is_extended_and_one_of_other_images_encoded_again(tmp_path, cache, crops):
    """The split grew (new images come last): only the new images' crops are encoded, at the cache's scale. A cache
    of other images is of no use: all are encoded again."""
    t = trainer(tmp_path, 1)
    use_crops(t, crops)
    ae = MAGCModel.from_config(t.config).autoencoder
    torch.save(dict(cache, latents=cache["latents"][:2], images=t.image_names()[:2], latent_scale=0.5),
               tmp_path / "work" / "latents.pt")
    grown = t.stage_cache(ae)
    assert torch.equal(grown["latents"][:2], cache["latents"][:2]) and len(grown["latents"]) == 3
    x = torch.from_numpy(crops[2][0]).permute(2, 0, 1)[None].float().div(255)
    ae.config["latent_scale"] = 1.0
    assert torch.allclose(grown["latents"][2].float(), (ae.encode(x)[0] * 0.5).half().float(), atol=1e-2)
    assert grown["images"] == t.image_names() and grown["latent_scale"] == 0.5
    assert "2 latents kept, 1 crops of 1 new images encoded" in (tmp_path / "work" / "train.log").read_text()
    assert torch.equal(t.stage_cache(ae)["latents"], grown["latents"])  # complete: used as it is

    torch.save(dict(cache, images=["another image"] * 3), tmp_path / "work" / "latents.pt")
    again = t.stage_cache(ae)
    assert not torch.equal(again["latents"], cache["latents"]) and again["images"] == t.image_names()
    assert "other images than these: encoding them again" in (tmp_path / "work" / "train.log").read_text()


def test_the_split_s_image_names_come_from_the_file_names_in_the_order_of_its_samples(tmp_path, monkeypatch):
    monkeypatch.setitem(data.SPLITS, "small", {"dubai": ["tile_8"], "neon": ["TEAK"]})
    if not data.have_data():
        pytest.skip("needs ../shared/data")
    names = data.image_names("small")
    sampled = list(dict.fromkeys(name.split("@")[0] for name, _, _ in data.samples("small")))
    assert names == sampled and names[-1].startswith("neon/TEAK/")


@pytest.mark.skipif(not data.have_data(), reason="needs the NEON plots of ../shared/data")
def test_neon_plots_train_on_some_sites_and_check_transfer_on_the_others():
    """No NEON site is in both splits; a plot's map is its tree-crown boxes as vegetation; the transfer samples are
    the plots' centres, the training samples their grid crops."""
    from magc_plugin.codec.classes import NOT_MAPPED, VEGETATION
    assert not set(data.SPLITS["train"]["neon"]) & set(data.SPLITS["transfer"]["neon"])
    root = data.data_root() / "neon-forest"
    annotation = root / "annotations" / "SJER" / "SJER_003.xml"
    classes = data.neon_guidance(annotation, (400, 400))
    assert set(np.unique(classes)) == {NOT_MAPPED, VEGETATION} and 0.02 < (classes == VEGETATION).mean() < 0.9
    assert (data.neon_guidance(root / "annotations" / "none.xml", (400, 400)) == NOT_MAPPED).all()
    transfer = data.transfer_samples(6)
    assert len(transfer) == 6 and len({name for name, _, _ in transfer}) == 6
    sites = {name.split("/")[1] for name, _, _ in data.transfer_samples()}
    assert sites == set(data.SPLITS["transfer"]["neon"])
    name, image, classes = transfer[0]
    whole = next(p for n, p, _, _ in data._neon_plots([name.split("/")[1]]) if n == name)
    assert np.array_equal(image, whole[72:328, 72:328]) and image.shape == (256, 256, 3)
    first = next(s for s in data._samples_of(((n, i, c) for n, i, c, _ in data._neon_plots(["TEAK"]))))
    assert first[0].startswith("neon/TEAK/") and first[0].endswith("@0,0")


def test_lcm_stage_extends_a_finished_checkpoint(tmp_path, cache):
    short = trainer(tmp_path, 2).stage_lcm(cache, "low")
    checkpoint = tmp_path / "work" / "lcm-low.pt"
    first = torch.load(checkpoint, weights_only=False)
    assert first["done"] and first["step"] == 2 and first["extended"] == []

    longer = trainer(tmp_path, 4)
    extended = longer.stage_lcm(cache, "low")
    state = torch.load(checkpoint, weights_only=False)
    assert state["done"] and state["step"] == 4 and state["extended"] == [2]
    assert longer.extended["lcm-low"] == [2]
    assert not torch.equal(weights(short), weights(extended))

    again = trainer(tmp_path, 4)
    reused = again.stage_lcm(cache, "low")
    assert torch.load(checkpoint, weights_only=False)["seconds"] == state["seconds"]  # not trained again
    assert again.extended["lcm-low"] == [2]
    assert torch.equal(weights(reused), weights(extended))


def test_lcm_stage_retrains_an_unfinished_checkpoint_made_for_another_target(tmp_path, cache, monkeypatch):
    """Only a finished module is re-aimed (test_a_preset_aimed_elsewhere_re_aims_its_lcm): one stopped halfway
    towards another target is trained afresh."""
    trainer(tmp_path, 2).stage_lcm(cache, "low")
    checkpoint = tmp_path / "work" / "lcm-low.pt"
    state = torch.load(checkpoint, weights_only=False)
    assert state["target"] == RATES["low"]
    torch.save({**state, "done": False, "step": 1}, checkpoint)
    monkeypatch.setitem(RATES, "low", RATES["low"] * 2)

    retargeted = trainer(tmp_path, 3)
    retargeted.stage_lcm(cache, "low")
    state = torch.load(checkpoint, weights_only=False)
    # trained from step 0, not extended from the old module
    assert state["target"] == RATES["low"] and state["step"] == 3 and state["extended"] == []
    assert "training it afresh" in (tmp_path / "work" / "train.log").read_text()


def test_denoiser_stage_extends_from_its_ema_weights(tmp_path, cache):
    t = trainer(tmp_path, 1, denoiser_steps=2)
    lcms = {"low": t.stage_lcm(cache, "low")}
    short = t.stage_denoiser(cache, lcms)
    longer = trainer(tmp_path, 1, denoiser_steps=3)
    extended = longer.stage_denoiser(cache, lcms)
    state = torch.load(tmp_path / "work" / "denoiser.pt", weights_only=False)
    assert state["step"] == 3 and state["extended"] == [2] and longer.extended["denoiser"] == [2]
    # one more EMA step from the short run's weights: close to them, not equal
    assert not torch.equal(weights(short), weights(extended))
    assert torch.allclose(weights(short), weights(extended), atol=1e-2)


def test_denoiser_stage_says_when_its_lcms_were_retargeted(tmp_path, cache, monkeypatch):
    t = trainer(tmp_path, 1)
    t.stage_denoiser(cache, {"low": t.stage_lcm(cache, "low")})
    assert torch.load(tmp_path / "work" / "denoiser.pt", weights_only=False)["lcm_targets"] == {"low": RATES["low"]}
    monkeypatch.setitem(RATES, "low", RATES["low"] * 2)
    again = trainer(tmp_path, 1)
    again.stage_denoiser(cache, {"low": again.stage_lcm(cache, "low")})
    assert "so that it sees their outputs" in (tmp_path / "work" / "train.log").read_text()


@needs_weights
def test_decoder_stage_fits_the_decoder_not_the_encoder(tmp_path, cache, crops, small_bank):
    torch.manual_seed(0)  # a tiny decoder that draws every pixel beyond the clamp would get no gradient
    t = trainer(tmp_path, 1, decoder_steps=2)
    use_crops(t, crops)
    lcms = {"low": t.stage_lcm(cache, "low")}
    den = t.stage_denoiser(cache, lcms)
    ae = MAGCModel.from_config(t.config).autoencoder
    encoder, decoder = weights(ae.encoder), weights(ae.decoder)
    t.stage_decoder(cache, ae, lcms, den)
    assert torch.equal(weights(ae.encoder), encoder)  # bitstreams stay as they were
    assert not torch.equal(weights(ae.decoder), decoder)
    state = torch.load(tmp_path / "work" / "decoder.pt", weights_only=False)
    assert state["done"] and state["step"] == 2
    assert state["basis"] == {"denoiser_steps": 1, "lcm_targets": {"low": RATES["low"]},
                              "sampling_start": recipe.DECODER_BANK_START, "maps": data.MAPS_VERSION}
    bank = torch.load(tmp_path / "work" / "decoder-bank.pt", weights_only=False)
    assert bank["latents"].shape == (recipe.DECODER_BANK, TINY["latent_channels"], 16, 16)
    assert bank["crops"].shape == (recipe.DECODER_BANK, 3, 128, 128)


@needs_weights
def test_decoder_stage_fits_afresh_after_the_denoiser_changed(tmp_path, cache, crops, small_bank):
    t = trainer(tmp_path, 1)
    use_crops(t, crops)
    lcms = {"low": t.stage_lcm(cache, "low")}
    t.stage_decoder(cache, MAGCModel.from_config(t.config).autoencoder, lcms, t.stage_denoiser(cache, lcms))

    longer = trainer(tmp_path, 1, denoiser_steps=2)
    use_crops(longer, crops)
    den = longer.stage_denoiser(cache, lcms)
    longer.stage_decoder(cache, MAGCModel.from_config(longer.config).autoencoder, lcms, den)
    assert "fitting it afresh" in (tmp_path / "work" / "train.log").read_text()
    state = torch.load(tmp_path / "work" / "decoder.pt", weights_only=False)
    assert state["basis"]["denoiser_steps"] == 2 and state["extended"] == []
    assert torch.load(tmp_path / "work" / "decoder-bank.pt", weights_only=False)["basis"] == state["basis"]


@needs_weights
def test_decoder_stage_fits_afresh_after_its_loss_changed(tmp_path, cache, crops, small_bank, monkeypatch):
    t = trainer(tmp_path, 1)
    use_crops(t, crops)
    lcms = {"low": t.stage_lcm(cache, "low")}
    den = t.stage_denoiser(cache, lcms)
    t.stage_decoder(cache, MAGCModel.from_config(t.config).autoencoder, lcms, den)
    monkeypatch.setattr(recipe, "GRID_WEIGHT", 0.0)
    t.stage_decoder(cache, MAGCModel.from_config(t.config).autoencoder, lcms, den)
    assert "fitting it afresh" in (tmp_path / "work" / "train.log").read_text()
    assert torch.load(tmp_path / "work" / "decoder.pt", weights_only=False)["loss"]["grid"] == 0.0


@needs_weights
def test_decoder_stage_fits_afresh_for_samples_from_another_sampling_start(tmp_path, cache, crops, small_bank,
                                                                          monkeypatch):
    t = trainer(tmp_path, 1)
    use_crops(t, crops)
    lcms = {"low": t.stage_lcm(cache, "low")}
    den = t.stage_denoiser(cache, lcms)
    monkeypatch.setattr(recipe, "DECODER_BANK_START", 1.0)
    t.stage_decoder(cache, MAGCModel.from_config(t.config).autoencoder, lcms, den)
    from_noise = torch.load(tmp_path / "work" / "decoder-bank.pt", weights_only=False)["latents"]
    monkeypatch.setattr(recipe, "DECODER_BANK_START", 0.5)
    t.stage_decoder(cache, MAGCModel.from_config(t.config).autoencoder, lcms, den)
    assert "fitting it afresh" in (tmp_path / "work" / "train.log").read_text()
    assert torch.load(tmp_path / "work" / "decoder.pt", weights_only=False)["basis"]["sampling_start"] == 0.5
    bank = torch.load(tmp_path / "work" / "decoder-bank.pt", weights_only=False)
    assert bank["basis"]["sampling_start"] == 0.5 and not torch.equal(bank["latents"], from_noise)


def test_stage1_decoder_stage_fits_a_copy_of_the_decoder(tmp_path, cache, crops):
    """It draws stage 1 alone: the autoencoder (so the streams and the decoder stage's start) stays as it was."""
    torch.manual_seed(0)  # some random tiny decoders draw every pixel beyond the clamp, where no gradient flows
    t = trainer(tmp_path, 1, stage1_steps=2)
    use_crops(t, crops)
    lcms = {rate: t.stage_lcm(cache, rate) for rate in RATES}
    ae = MAGCModel.from_config(t.config).autoencoder
    before = weights(ae)
    fitted = t.stage_stage1_decoder(cache, ae, lcms)
    assert torch.equal(weights(ae), before)
    assert weights(fitted).shape == weights(ae.decoder).shape and not torch.equal(weights(fitted), weights(ae.decoder))
    state = torch.load(tmp_path / "work" / "stage1.pt", weights_only=False)
    assert state["done"] and state["step"] == 2 and state["lcm_targets"] == RATES

    retargeted = dict(lcms)
    del retargeted["high"]
    t.stage_stage1_decoder(cache, ae, retargeted)  # fitted on other LCMs: fitted afresh on these
    assert "stage1: its checkpoint was fitted on LCMs" in (tmp_path / "work" / "train.log").read_text()
    assert torch.load(tmp_path / "work" / "stage1.pt", weights_only=False)["lcm_targets"] == {
        rate: RATES[rate] for rate in ("low", "medium")}


def test_local_std_measures_the_contrast_of_each_cell():
    flat = torch.full((1, 3, 32, 32), 0.5)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    stripes = torch.zeros(1, 3, 32, 32)
    stripes[..., :16, :] = checker[:16].float()  # top cells a 0/1 checkerboard, bottom cells flat
    assert torch.allclose(recipe._local_std(flat), torch.full((1, 3, 2, 2), 1e-3), atol=1e-4)
    cells = recipe._local_std(stripes)
    assert torch.allclose(cells[..., 0, :], torch.full((1, 3, 2), 0.5), atol=1e-3)
    assert torch.all(cells[..., 1, :] < 2e-3)


def test_training_goes_on_from_a_model_folder(tmp_path, cache, crops, model_folder):
    """seed_from turns a model folder into finished checkpoints: stages given more steps extend its weights,
    the others are reused as they are, and the cache keeps the model's latent scale."""
    shipped = MAGCModel.from_pretrained(model_folder, rate="low", device="cpu")
    t = trainer(tmp_path, 3)
    use_crops(t, crops)
    t.seed_from(model_folder)
    log = (tmp_path / "work" / "train.log").read_text()
    assert "lcm-low: continuing from" in log and "residual-low: continuing from" in log and \
        "denoiser: continuing from" in log and "layout: continuing from" not in log
    assert torch.load(tmp_path / "work" / "residual-low.pt", weights_only=False)["step"] == 2
    assert torch.load(tmp_path / "work" / "lcm-low.pt", weights_only=False)["extended"] == []
    assert t.stage_cache(t.stage_ae())["latent_scale"] == shipped.autoencoder.latent_scale
    assert torch.equal(weights(t.stage_denoiser(cache, {})), weights(shipped.denoiser))  # 1 step: finished, reused
    ae = t.stage_ae()
    assert torch.equal(weights(t.stage_stage1_decoder(cache, ae, {r: None for r in RATES})),
                       weights(shipped.stage1_decoder))
    reused = t.stage_decoder(cache, ae, {r: None for r in RATES}, None)  # its record matches the stage: not refit
    assert torch.equal(weights(reused.decoder), weights(shipped.autoencoder.decoder))
    extended = t.stage_lcm(cache, "low")
    state = torch.load(tmp_path / "work" / "lcm-low.pt", weights_only=False)
    assert state["step"] == 3 and state["extended"] == [2] and state["target"] == RATES["low"]
    assert not torch.equal(weights(extended), weights(shipped.lcm))

    t.seed_from(model_folder)  # a checkpoint of the work folder is never replaced
    assert torch.load(tmp_path / "work" / "lcm-low.pt", weights_only=False)["step"] == 3
    assert "lcm-low: the work folder has a checkpoint, kept" in (tmp_path / "work" / "train.log").read_text()


def test_a_folder_from_before_the_sampling_start_counts_its_decoder_as_fitted_to_samples_from_noise(tmp_path,
                                                                                                   model_folder):
    older = tmp_path / "older"
    shutil.copytree(model_folder, older)
    config = json.loads((older / "config.json").read_text())
    assert config["training"].pop("decoder_sampling_start") == recipe.DECODER_BANK_START
    (older / "config.json").write_text(json.dumps(config))
    trainer(tmp_path, 1).seed_from(older)
    assert torch.load(tmp_path / "work" / "decoder.pt", weights_only=False)["basis"]["sampling_start"] == 1.0


def test_a_folder_from_before_the_maps_version_counts_its_decoder_as_fitted_on_version_1_maps(tmp_path, model_folder):
    """Its decoder saw the empty OAM maps: the decoder stage, whose crops now have version-2 maps, refits it."""
    older = tmp_path / "older"
    shutil.copytree(model_folder, older)
    config = json.loads((older / "config.json").read_text())
    assert config["training"].pop("decoder_maps") == data.MAPS_VERSION
    (older / "config.json").write_text(json.dumps(config))
    trainer(tmp_path, 1).seed_from(older)
    assert torch.load(tmp_path / "work" / "decoder.pt", weights_only=False)["basis"]["maps"] == 1


def test_a_folder_with_a_layout_codec_per_preset_seeds_no_layout(tmp_path, model_folder):
    """0.4.0 and 0.4.1 folders code each preset's own layout: none of them is the one layout codec this recipe
    trains, so the layout stage starts afresh while the other stages go on from the folder."""
    older = tmp_path / "older"
    shutil.copytree(model_folder, older)
    config = json.loads((older / "config.json").read_text())
    del config["layout"]["lambda"], config["layout"]["target_bpp"], config["layout"]["base"]
    (older / "config.json").write_text(json.dumps(config))
    trainer(tmp_path, 1).seed_from(older)
    assert not (tmp_path / "work" / "layout.pt").exists() and (tmp_path / "work" / "lcm-low.pt").exists()
    assert not (tmp_path / "work" / "residual-low.pt").exists()


def test_going_on_from_the_shipped_model_keeps_its_decoder(tmp_path):
    """`build.py train -- --from-model` counts the shipped decoder as fitted by the decoder stage as it stands."""
    t = trainer(tmp_path, 1)
    t.seed_from(SHIPPED_MODELS / "compact")
    state = torch.load(tmp_path / "work" / "decoder.pt", weights_only=False)
    assert state["basis"] == recipe._decoder_basis(t._load("denoiser")["step"], RATES, recipe.DECODER_BANK_START,
                                                   data.MAPS_VERSION)
    assert state["loss"] == recipe._decoder_loss_terms()


def test_a_model_seeded_with_more_steps_than_asked_records_the_steps_it_had(tmp_path, cache, model_folder):
    t = trainer(tmp_path, 1)
    t.seed_from(model_folder)
    export_all(t, cache)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["training"]["steps"]["lcm"] == 2


def test_exporting_a_seeded_model_leaves_its_lcm_files_as_they_were(tmp_path, cache, model_folder):
    """The quantiles are fitted where a codec is trained, not at every export: a run that extends only other stages
    writes the same LCM and layout codec bytes (so the same CDF tables)."""
    t = trainer(tmp_path, 2)
    t.seed_from(model_folder)
    export_all(t, cache)
    for name in [f"{codec}-{rate}.safetensors" for rate in RATES for codec in ("lcm", "layout")]:
        assert (tmp_path / "out" / name).read_bytes() == (model_folder / name).read_bytes()


def test_training_refuses_to_go_on_from_a_model_it_did_not_train(tmp_path, model_folder, monkeypatch):
    untrained = tmp_path / "untrained"
    shutil.copytree(model_folder, untrained)
    config = json.loads((untrained / "config.json").read_text())
    del config["training"]
    (untrained / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="no training record"):
        trainer(tmp_path, 1).seed_from(untrained)
    monkeypatch.setitem(RATES, "lowest", RATES["low"] / 2)
    with pytest.raises(SystemExit, match="other rate presets"):
        trainer(tmp_path, 1).seed_from(model_folder)
    assert not (tmp_path / "work" / "lcm-low.pt").exists()


def test_a_preset_aimed_elsewhere_re_aims_its_lcm(tmp_path, cache, model_folder, monkeypatch):
    """Going on from a folder whose low preset had another target: its low LCM is re-aimed (the stage's last
    RETARGET_STEPS steps start from its weights and lambda), the other LCMs are reused, and the denoiser's log says
    that it was trained on the old module's outputs."""
    old_target = RATES["low"]
    monkeypatch.setitem(RATES, "low", old_target * 1.5)
    monkeypatch.setattr(recipe, "RETARGET_STEPS", 0)  # no step at the new target: the weights are the old module's
    t = trainer(tmp_path, 2)
    t.seed_from(model_folder)
    old = torch.load(tmp_path / "work" / "lcm-low.pt", weights_only=False)
    lcms = {rate: t.stage_lcm(cache, rate) for rate in RATES}
    state = torch.load(tmp_path / "work" / "lcm-low.pt", weights_only=False)
    assert state["target"] == RATES["low"] and state["step"] == 2 and state["extended"] == []
    assert state["lambda"] == old["lambda"] and torch.equal(state["model"]["g_a.stem.0.weight"], old["model"]["g_a.stem.0.weight"])
    t.stage_denoiser(cache, lcms)
    log = (tmp_path / "work" / "train.log").read_text()
    assert f"its checkpoint was trained for {old_target} bpp, now for {RATES['low']} bpp: re-aiming it" in log
    assert "lcm-medium: its checkpoint" not in log and "extend it (more denoiser steps)" in log


def test_a_layout_codec_on_other_cells_is_re_aimed(tmp_path, model_folder, monkeypatch):
    """The layout cell is part of what the layout codec is trained for: going on from a folder whose codec coded other
    cells (or from a checkpoint before 0.6.0, which records none: 16 pixels) re-aims it; the same cells reuse it."""
    monkeypatch.setattr(recipe, "RETARGET_STEPS", 1)
    older = tmp_path / "older"  # a folder of 0.6.x: one layout codec, not residual
    shutil.copytree(model_folder, older)
    config = json.loads((older / "config.json").read_text())
    del config["layout"]["base"]
    (older / "config.json").write_text(json.dumps(config))
    t = trainer(tmp_path, 2)
    t.seed_from(older)
    use_crops(t, random_crops())
    seeded = torch.load(tmp_path / "work" / "layout.pt", weights_only=False)
    assert seeded["cell"] == t.config["layout"]["cell"]
    t.stage_layout()
    assert torch.load(tmp_path / "work" / "layout.pt", weights_only=False)["seconds"] == seeded["seconds"]  # reused

    older = {k: v for k, v in seeded.items() if k != "cell"}
    torch.save(older, tmp_path / "work" / "layout.pt")
    t.config["layout"]["cell"] = 8
    t.stage_layout()
    state = torch.load(tmp_path / "work" / "layout.pt", weights_only=False)
    assert state["cell"] == t.config["layout"]["cell"] and state["done"] and state["step"] == 2
    log = (tmp_path / "work" / "train.log").read_text()
    assert (f"layout: its checkpoint was trained for {seeded['target']} bpp on 16-pixel cells, now for "
            f"{seeded['target']} bpp on 8-pixel cells: re-aiming it") in log


def test_each_preset_s_residual_layout_codec_starts_from_the_shared_one_over_the_bases_its_codec_draws(tmp_path, cache,
                                                                                                       crops):
    """The residual stage fine-tunes the shared layout codec per preset on the crops' layouts less their bases; the
    bases the recipe draws (cached) are those the codec subtracts when it compresses the crop."""
    t = trainer(tmp_path, 1)
    use_crops(t, crops)
    lcms = {rate: t.stage_lcm(cache, rate) for rate in RATES}
    ae, layout = MAGCModel.from_config(t.config).autoencoder, t.stage_layout()
    stage1_decoder = t.stage_stage1_decoder(cache, ae, lcms)
    residuals = t.stage_residuals(ae, lcms, stage1_decoder, layout)
    bases = torch.load(tmp_path / "work" / "layout-bases.pt", weights_only=False)
    assert list(bases["low"]["chosen"]) == [0, 1, 2] and bases["low"]["bases"].shape == (3, 3, 32, 32)
    model = MAGCModel(t.config, ae, lcms["low"], None, "low")
    model.layout, model.stage1_decoder = residuals["low"], stage1_decoder
    img, cls = crops[1]
    payload = model.compress_tile(img, cls)
    stage_1 = model.synthesise(model.decode_y(payload, cls.shape), cls, layout=False)[0]
    drawn = model.layout_base(stage_1, img.reshape(-1, 3).mean(0).round())[0].numpy()
    assert np.allclose(drawn, bases["low"]["bases"][1].numpy(), atol=1e-4)
    for rate in RATES:
        state = torch.load(tmp_path / "work" / f"residual-{rate}.pt", weights_only=False)
        assert state["done"] and state["step"] == 1 and state["cell"] == t.config["layout"]["cell"]
        assert not torch.equal(weights(residuals[rate]), weights(layout))
    assert "lambda" in t.config["rates"]["low"]["layout"]


def test_model_card_keeps_its_history_section():
    """Validation rewrites the card's figures; the hand-written history of the weights is carried over."""
    from magc_plugin.training.validate import card_history
    card = "# M\n\n## Training\n- steps\n\n## History\n- run 1\n- run 2\n\n## Validation on 4 tiles\n| a |\n"
    assert card_history(card) == "## History\n- run 1\n- run 2\n"
    assert card_history(card.replace("\n## Validation on 4 tiles\n| a |\n", "")) == "## History\n- run 1\n- run 2\n"
    assert card_history("# M\n\n## Training\n- steps\n") == ""


def _card_of(config):
    """The card that validation writes for `config`, with placeholder figures at one rate."""
    from magc_plugin.training.validate import model_card
    at_tile_size = {"tile_size": 512, "crops": 8, "bpp": 0.03, "estimate_bpp": 0.03, "real_over_estimate": 0.0}
    figures = dict.fromkeys(("bpp", "estimate_bpp", "real_over_estimate", "magc_psnr", "magc_ms_ssim",
                             "magc_lpips_alex", "magc_dists", "magc_lattice", "stage1_psnr", "stage1_lpips_alex",
                             "encode_s_per_tile", "decode_s_per_tile", "original_lattice"), 0.5)
    return model_card(config, {"low": dict(figures, at_tile_size=at_tile_size)}, 4, 20)


def test_model_card_says_where_the_sampler_and_the_decoder_stage_start_and_what_draws_stage_1():
    config = compact_config(rates={"low": {"target_bpp": 0.02, "lambda": 0.2}})
    config["training"] = {"steps": {"stage1": 300, "decoder": 400}, "decoder_sampling_start": 0.65}
    card = _card_of(config)
    start = round(100 * (1 - config["sampling"]["start"]))
    assert f"- Sampling: the sampler starts {start} % down the schedule" in card
    assert "the decoder stage drew its samples starting 35 % down." in card
    assert "- Stage 1 alone (a decode with no diffusion steps) is drawn by a copy of the decoder" in card


def test_model_card_names_the_sites_of_the_split_that_training_and_the_bench_read():
    card = _card_of(compact_config(rates={"low": {"target_bpp": 0.02, "lambda": 0.2}}))
    assert f"NEON airborne plots of sites {' and '.join(data.SPLITS['train']['neon'])}" in card
    assert f"no training sees: the NEON sites {' and '.join(data.SPLITS['transfer']['neon'])}" in card
