"""Codec core with tiny seeded configs: shapes, bit-exact round trips, determinism, conditioning, I/O, errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from magc_plugin.codec import MAGCError
from magc_plugin.codec.classes import NUM_CLASSES, to_one_hot
from magc_plugin.codec.entropy_coding import Encoder
from magc_plugin.codec.layout import hold_to_layout, layout_of
from magc_plugin.codec.folders import model_rates
from magc_plugin.codec.model import MAGCModel, compact_config
from magc_plugin.codec.tile_colour import mean_colour, recentre, split_payload

REPO = Path(__file__).resolve().parents[1]
TINY = dict(latent_channels=4, ae_width=16, N=16, M=16, map_channels=8, num_slices=4, hyper_channels=8, unet_channels=(16, 32),
            adapter_map_channels=8)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = MAGCModel.from_config(compact_config(**TINY)).eval()
    model.update_tables()
    return model


def scene(size=128, seed=0):
    rng = np.random.default_rng(seed)
    img = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    cls = rng.integers(0, NUM_CLASSES, (size, size)).astype(np.uint8)
    return img, cls


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_tile_round_trip_shapes(model):
    img, cls = scene(128)
    payload = model.compress_tile(img, cls)
    assert isinstance(payload, bytes) and len(payload) > 4
    latent = model.decode_latent(payload, cls)
    assert latent.shape == (1, 4, 16, 16)
    out = model.decompress_tile(payload, cls, steps=2, seed=0)
    assert out.shape == img.shape and out.dtype == np.uint8


def test_non_square_tile(model):
    img, cls = scene(192)
    img, cls = img[:128], cls[:128]
    out = model.decompress_tile(model.compress_tile(img, cls), cls, steps=1)
    assert out.shape == (128, 192, 3)


def test_decoder_recovers_y_bit_exactly(model):
    img, cls = scene(128, seed=3)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    payload, y_hat_encoder = model.lcm.compress(model.autoencoder.encode(x), to_one_hot(cls))
    y_hat_decoder = model.lcm.decompress_y(payload, (4, 4))
    assert torch.equal(y_hat_encoder, y_hat_decoder)


def tile_y(model, seed=3):
    """y of a 128-pixel scene: (1, 16, 4, 4) with the tiny model."""
    img, cls = scene(128, seed=seed)
    with torch.no_grad():
        return model.lcm.analyse(model.autoencoder.encode(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255),
                                 to_one_hot(cls))


@pytest.mark.parametrize("rate", model_rates())
def test_the_shipped_lcm_codes_y_bit_exactly(rate):
    """Its real tables (160 scales, rows thousands of symbols wide), on a y from a random latent and map."""
    from magc_plugin.codec.folders import read_config, resolve_model_path
    from magc_plugin.codec.model import load_lcm
    path = resolve_model_path("default")
    config = read_config(path)
    lcm = load_lcm(path, config, rate).eval()
    torch.manual_seed(0)
    y = lcm.analyse(torch.randn(1, config["lcm"]["latent_channels"], 16, 24), to_one_hot(scene(192, seed=1)[1][:128]))
    payload, y_hat = lcm.compress_y(y)
    assert len(payload) % 4 == 0 and torch.equal(lcm.decompress_y(payload, (4, 6)), y_hat)
    assert (y_hat - y).abs().max() <= 0.5


def test_values_outside_the_tables_round_trip_through_the_escape(model):
    """compressai's table rows end some scales out (at most about 1,600 for the widest); values beyond are coded
    after the row's escape symbol, exactly up to ESCAPE_SPAN past the row and clamped farther out, the encoder's
    y_hat saying so."""
    from magc_plugin.codec.entropy_coding import ESCAPE_SPAN
    y = tile_y(model)
    y[0, 1, 2, 3], y[0, 5, 0, 0], y[0, 15, 3, 3] = 5000.0, -7000.0, 1e9
    payload, y_hat = model.lcm.compress_y(y)
    assert torch.equal(model.lcm.decompress_y(payload, (4, 4)), y_hat)
    assert abs(y_hat[0, 1, 2, 3] - 5000) <= 0.5 and abs(y_hat[0, 5, 0, 0] + 7000) <= 0.5
    assert 5000 < y_hat[0, 15, 3, 3] < 2 * ESCAPE_SPAN


def test_damaged_streams_are_refused(model):
    """The stream must be whole words and end exactly where its last symbol does."""
    payload, _ = model.lcm.compress_y(tile_y(model))
    damaged = {"cut by one word": payload[:-4], "all but one word cut": payload[:4], "first word cut": payload[4:],
               "empty": b"", "one word appended": payload + b"\x5a\xa5\x0f\xf0",
               "zero word appended": payload + bytes(4), "one byte appended": payload + b"\x01"}
    for what, stream in damaged.items():
        with pytest.raises(MAGCError, match="the file is damaged|stream is damaged") as refused:
            model.lcm.decompress_y(stream, (4, 4))
        assert what != "one byte appended" or "not whole 32-bit words" in str(refused.value)
        assert what != "one word appended" or "cut short or has bytes after its end" in str(refused.value)


def test_garbage_streams_are_refused_or_decode_to_a_tile(model):
    """Random bytes never raise anything but MAGCError. Work is bounded by construction: the number of symbols
    decoded follows from the tile's size, each in bounded time, whatever the bytes."""
    rng = np.random.default_rng(0)
    for length in range(201):
        try:
            y_hat = model.lcm.decompress_y(rng.bytes(length), (4, 4))
        except MAGCError:
            continue
        assert y_hat.shape == (1, 16, 4, 4)


def test_decode_is_deterministic_for_a_seed(model):
    img, cls = scene(128)
    payload = model.compress_tile(img, cls)
    a = model.decompress_tile(payload, cls, steps=3, seed=7)
    b = model.decompress_tile(payload, cls, steps=3, seed=7)
    c = model.decompress_tile(payload, cls, steps=3, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sampler_starts_down_the_schedule_from_the_noised_stage1_latent(model):
    from magc_plugin.codec.sampler import SeededNoise, sample, sampling_scheduler
    img, cls = scene(128)
    latent_tilde = model.decode_latent(model.compress_tile(img, cls), cls)
    one_hot = model._one_hot(cls, img.shape[:2])
    seen = []

    def denoiser(x, t, *args):
        seen.append((x.clone(), int(t)))
        return model.denoiser(x, t, *args)

    scheduler = sampling_scheduler(model.config["schedule"])
    scheduler.set_timesteps(20)
    noise = SeededNoise(5)(0, tuple(latent_tilde.shape))
    sample(denoiser, latent_tilde, one_hot, steps=20, noise=5, schedule=model.config["schedule"], start=0.65)
    assert [t for _, t in seen] == scheduler.timesteps[7:].tolist()
    assert torch.allclose(seen[0][0], scheduler.add_noise(latent_tilde, noise, scheduler.timesteps[7:8]))
    seen.clear()
    sample(denoiser, latent_tilde, one_hot, steps=20, noise=5, schedule=model.config["schedule"])
    assert len(seen) == 20 and torch.equal(seen[0][0], noise * scheduler.init_noise_sigma)
    # A model runs its folder's start; folders without one (before 0.2.3) sample from pure noise.
    calls = []
    model.sample(latent_tilde, cls, steps=20, callback=lambda i, n: calls.append(n))
    assert model.sampling_start == 0.3 and len(calls) == 6
    older = MAGCModel({k: v for k, v in model.config.items() if k != "sampling"}, None, None, None, "medium")
    assert older.sampling_start == 1.0


def test_stream_decodes_identically_in_another_process(model, tmp_path):
    """Encode here, encode and decode again in a fresh interpreter with other thread settings: same bytes (the
    entropy coder's models come from the integer tables), same image."""
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    img, cls = scene(128, seed=5)
    reloaded = MAGCModel.from_pretrained(folder, device="cpu")
    payload = reloaded.compress_tile(img, cls)
    expected = reloaded.decompress_tile(payload, cls, steps=2, seed=1)
    np.save(tmp_path / "cls.npy", cls)
    (tmp_path / "payload.bin").write_bytes(payload)
    script = f"""
import numpy as np, torch
torch.set_num_threads(1)
from magc_plugin.codec.model import MAGCModel
m = MAGCModel.from_pretrained({str(folder)!r}, device="cpu")
cls = np.load({str(tmp_path / 'cls.npy')!r})
payload = open({str(tmp_path / 'payload.bin')!r}, "rb").read()
img = np.load({str(tmp_path / 'img.npy')!r})
assert m.compress_tile(img, cls) == payload, "encoder not deterministic"
np.save({str(tmp_path / 'out.npy')!r}, m.decompress_tile(payload, cls, steps=2, seed=1))
"""
    np.save(tmp_path / "img.npy", img)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin"})
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)


def test_spade_uses_the_map(model):
    img, cls = scene(128)
    payload = model.compress_tile(img, cls)
    other = np.roll(cls, 37, axis=1)
    assert not torch.equal(model.decode_latent(payload, cls), model.decode_latent(payload, other))
    assert model.compress_tile(img, cls) != model.compress_tile(img, other)


def test_adapter_residuals_change_the_unet_output(model):
    den = model.denoiser
    x = torch.randn(1, 4, 16, 16)
    latent = torch.randn(1, 4, 16, 16)
    _, cls = scene(128)
    with torch.no_grad():
        for p in den.adapter.stages[-1].body[-1].parameters():  # make sure the last stage is not a no-op
            p.normal_()
        base = den(x, 500, latent, to_one_hot(cls))
        other = den(x, 500, latent, to_one_hot(np.zeros_like(cls)))
        den.adapter.scale, scale = 0.0, den.adapter.scale
        none = den(x, 500, latent, to_one_hot(cls))
        den.adapter.scale = scale
    assert not torch.allclose(base, other)
    assert not torch.allclose(base, none)


def test_partial_map_works(model):
    img, _ = scene(128)
    cls = np.zeros((128, 128), np.uint8)
    cls[20:40, 20:60] = 1  # only buildings known
    out = model.decompress_tile(model.compress_tile(img, cls), cls, steps=1)
    assert out.shape == img.shape


def test_save_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    loaded = MAGCModel.from_pretrained(tmp_path / "m", device="cpu")
    img, cls = scene(128)
    assert loaded.compress_tile(img, cls) == model.compress_tile(img, cls)
    ident = loaded.identity()
    assert len(ident["weights_sha256"]) == 64 and ident["rate"] == "medium"
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == "magc-model"


def test_the_layout_codec_travels_with_its_folder_and_gives_the_streams_their_meaning(model, tmp_path):
    """A folder holds the layout codec its rates share beside their LCMs; the stream checksum covers it, so a file whose
    layout was coded by another codec is refused rather than decoded into other colours. A folder from before
    0.4.0 (no layout in config.json) codes the latent alone and holds nothing to a layout."""
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["rates"]["medium"]["layout_file"] == "layout.safetensors"
    loaded = MAGCModel.from_pretrained(tmp_path / "m", device="cpu")
    img, cls = scene(128, seed=2)
    payload = loaded.compress_tile(img, cls)
    assert np.array_equal(loaded.decompress_tile(payload, cls, steps=1), model.decompress_tile(payload, cls, steps=1))
    checksum = loaded.stream_sha256
    from safetensors.torch import load_file, save_file
    state = load_file(str(tmp_path / "m" / "layout.safetensors"))
    state["g_s.out.1.weight"] = state["g_s.out.1.weight"] * 1.01
    save_file(state, str(tmp_path / "m" / "layout.safetensors"))
    assert MAGCModel.from_pretrained(tmp_path / "m", device="cpu").stream_sha256 != checksum
    del config["layout"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    older = MAGCModel.from_pretrained(tmp_path / "m", device="cpu")
    assert older.layout is None
    lcm_only = older.compress_tile(img, cls)
    assert len(lcm_only) < len(payload) and older.decode_y(lcm_only, cls.shape).shape[1] == model.lcm.config["M"]


def test_stage1_alone_is_drawn_by_the_stage1_decoder_which_travels_with_its_folder(tmp_path):
    """Steps 0 (no diffusion) draw stage 1 with the folder's stage-1 decoder and any other step count with the
    autoencoder's; in a folder whose layout is not residual (before 0.7.0) the file is a drawing weight (weights
    checksum), not a stream one. A folder from before 0.5.0 (no stage-1 decoder in config.json) draws stage 1 with the
    autoencoder's decoder."""
    model = tiny_model()
    del model.config["layout"]["base"]
    with torch.no_grad():
        for p in model.stage1_decoder.parameters():
            p.mul_(1.5)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "stage1-decoder.safetensors").is_file()
    loaded = MAGCModel.from_pretrained(tmp_path / "m", device="cpu")
    img, cls = scene(128, seed=4)
    payload = loaded.compress_tile(img, cls)
    stage1, drawn = loaded.decompress_tile(payload, cls, steps=0), loaded.decompress_tile(payload, cls, steps=2)
    assert np.array_equal(stage1, model.decompress_tile(payload, cls, steps=0))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["stage1_decoder"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    older = MAGCModel.from_pretrained(tmp_path / "m", device="cpu")
    assert older.stage1_decoder is None and older.stream_sha256 == loaded.stream_sha256
    assert older.weights_sha256 != loaded.weights_sha256
    assert not np.array_equal(older.decompress_tile(payload, cls, steps=0), stage1)
    assert np.array_equal(older.decompress_tile(payload, cls, steps=2), drawn)


def test_saved_folder_keeps_the_trained_latent_scale(tmp_path):
    model = tiny_model()
    model.autoencoder.config["latent_scale"] = 1.4331  # what training's latent cache stage sets
    model.save_pretrained(tmp_path / "m")
    loaded = MAGCModel.from_pretrained(tmp_path / "m", device="cpu")
    assert loaded.autoencoder.latent_scale == 1.4331
    img, cls = scene(128)
    assert loaded.compress_tile(img, cls) == model.compress_tile(img, cls)


def test_float16_storage_keeps_entropy_models_exact(model, tmp_path):
    from safetensors.torch import load_file
    model.save_pretrained(tmp_path / "m32")
    model.save_pretrained(tmp_path / "m16", storage_dtype=torch.float16)
    state = load_file(str(tmp_path / "m16" / "lcm-medium.safetensors"))
    entropy = {k: v for k, v in state.items() if k.startswith(("entropy_bottleneck.", "gaussian_conditional."))}
    assert entropy and all(v.dtype in (torch.float32, torch.int32) for v in entropy.values())
    assert {v.dtype for k, v in state.items() if k not in entropy} == {torch.float16}
    img, cls = scene(128)
    loaded = MAGCModel.from_pretrained(tmp_path / "m16", device="cpu")
    assert next(loaded.denoiser.parameters()).dtype == torch.float32  # computes in float32
    payload = loaded.compress_tile(img, cls)
    again = MAGCModel.from_pretrained(tmp_path / "m16", device="cpu").compress_tile(img, cls)
    assert payload == again
    ref = model.decompress_tile(model.compress_tile(img, cls), cls, steps=0).astype(int)
    assert np.abs(loaded.decompress_tile(payload, cls, steps=0).astype(int) - ref).mean() < 3


def test_real_bits_close_to_estimate(model):
    img, cls = scene(256, seed=2)
    real = len(model.compress_tile(img, cls)) * 8
    estimate = model.estimate_bits(img, cls)
    assert real <= estimate * 1.10 + 64  # untrained tiny model: loose; trained figures in the model card


@pytest.mark.parametrize("bad, message", [
    (np.zeros((100, 128, 3), np.uint8), "multiples of 64"),
    (np.zeros((128, 128), np.uint8), "RGB"),
    (np.zeros((128, 128, 3), np.float32), "uint8"),
    (np.zeros((128, 128, 4), np.uint8), "RGB"),
])
def test_bad_tiles_are_refused_clearly(model, bad, message):
    with pytest.raises(MAGCError, match=message):
        model.compress_tile(bad, np.zeros(bad.shape[:2], np.uint8))


def test_bad_guidance_is_refused_clearly(model):
    img, cls = scene(128)
    with pytest.raises(MAGCError, match="rasterize the guidance"):
        model.compress_tile(img, cls[:64])
    with pytest.raises(MAGCError, match="class values"):
        model.compress_tile(img, np.full((128, 128), 9, np.uint8))
    with pytest.raises(MAGCError, match="truncated"):
        model.decode_latent(b"\x01", cls)


def test_decoded_tile_has_the_tile_mean_colour(model):
    """The payload starts with the tile's mean colour and the decoder re-centres on it, with or
    without diffusion; the untrained model's own output is far from it."""
    rng = np.random.default_rng(3)
    img = (np.array([170, 90, 60]) + rng.normal(0, 20, (128, 128, 3))).clip(0, 255).astype(np.uint8)
    cls = np.full((128, 128), 2, np.uint8)
    payload = model.compress_tile(img, cls)
    assert payload[:3] == bytes(np.rint(img.reshape(-1, 3).mean(axis=0)).astype(np.uint8))
    target = img.reshape(-1, 3).mean(axis=0)
    uncorrected = model.latent_to_image(model.decode_latent(payload, cls)).reshape(-1, 3).mean(axis=0)
    assert np.abs(uncorrected - target).max() > 10
    for steps in (0, 2):
        decoded = model.decompress_tile(payload, cls, steps=steps).reshape(-1, 3).mean(axis=0)
        assert np.abs(decoded - target).max() < 1.5, (steps, decoded, target)


def test_recentre_shifts_by_the_region_and_clips():
    image = np.zeros((4, 8, 3), np.uint8)
    image[:, 4:] = 250
    out = recentre(image, np.array([10, 20, 30], np.float32), (slice(None), slice(0, 4)))
    assert (out[0, 0] == [10, 20, 30]).all() and (out[0, 7] == 255).all()


def test_tile_with_context_codes_only_its_core(model):
    """The context is seen, not coded: the payload decodes to the core's size, and equals coding the
    core's part of the latent's y computed over the whole image, then the core's residual layout (the core's alone:
    its base is the core's stage 1)."""
    img, cls = scene(192)
    payload = model.compress_tile(img, cls, core=(64, 64, 64, 128))
    assert model.decode_latent(payload, cls[64:192, 64:128]).shape[-2:] == (16, 8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    encoder = Encoder()
    with torch.no_grad():
        y = model.lcm.analyse(model.autoencoder.encode(x), model._one_hot(cls, cls.shape))
        y_hat = model.lcm.encode_y(encoder, y[..., 2:6, 2:4].contiguous())
        core_map = model._one_hot(cls[64:192, 64:128], (128, 64))
        base = model.layout_base(model.lcm.synthesise(y_hat, core_map), img[64:192, 64:128].reshape(-1, 3).mean(0).round())
        layout_y = model.layout.analyse(layout_of(x[..., 64:192, 64:128], model.config["layout"]["cell"]) - base, core_map)
    model.layout.encode_y(encoder, layout_y)
    assert payload == mean_colour(img[64:192, 64:128]) + encoder.payload()
    for bad in [(16, 0, 64, 64), (0, 0, 96, 64), (160, 0, 64, 64), (-64, 0, 64, 64)]:
        with pytest.raises(MAGCError, match="must lie inside"):
            model.compress_tile(img, cls, core=bad)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(MAGCError, match="No MAGC model"):
        MAGCModel.from_pretrained(tmp_path / "nothing")


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(MAGCError, match="CUDA"):
        tiny_model().to_device("cuda")


def _tiny_sd_folder(path):
    """A randomly initialised Stable-Diffusion-shaped folder (diffusers layout), never a download."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    torch.manual_seed(0)
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), latent_channels=4,
                  norm_num_groups=8, layers_per_block=1, scaling_factor=0.18215).save_pretrained(path / "vae")
    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                         down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                         cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8).save_pretrained(path / "unet")
    return path


def test_sd21_scale_round_trip(tmp_path):
    sd = _tiny_sd_folder(tmp_path / "sd")
    model = MAGCModel.from_sd21(sd, N=16, M=16, map_channels=8, num_slices=4, num_res_blocks=1).eval()
    assert model.denoiser.unet.conv_in.in_channels == 8
    assert torch.count_nonzero(model.denoiser.unet.conv_in.weight[:, 4:]) == 0  # new channels start at zero
    model.update_tables()
    model.save_pretrained(tmp_path / "magc-sd21")
    loaded = MAGCModel.from_pretrained(tmp_path / "magc-sd21", device="cpu")
    assert loaded.config["scale"] == "sd21"
    img, cls = scene(128)
    payload = loaded.compress_tile(img, cls)
    assert payload == model.compress_tile(img, cls)
    out = loaded.decompress_tile(payload, cls, steps=2, seed=0)
    assert out.shape == img.shape


def test_the_stream_checksum_covers_the_encoding_side_of_a_diffusers_vae_not_its_drawing_side(tmp_path):
    from safetensors.torch import save_file
    from magc_plugin.codec.folders import stream_sha256
    keys = ("vae.encoder.conv.weight", "vae.quant_conv.weight", "vae.post_quant_conv.weight", "vae.decoder.conv.weight")
    (tmp_path / "lcm.safetensors").write_bytes(b"lcm")

    def checksum(nudged=None, scale=0.18215):
        save_file({k: torch.ones(2) + (k == nudged) for k in keys}, tmp_path / "ae.safetensors")
        return stream_sha256(tmp_path / "ae.safetensors", [tmp_path / "lcm.safetensors"], scale)

    base = checksum()
    assert checksum("vae.decoder.conv.weight") == checksum("vae.post_quant_conv.weight") == base
    assert len({base, checksum("vae.encoder.conv.weight"), checksum("vae.quant_conv.weight"), checksum(scale=0.2)}) == 4
    (tmp_path / "lcm.safetensors").write_bytes(b"another lcm")
    assert checksum() != base


def test_the_stream_checksum_covers_the_layout_cell_and_keeps_that_of_older_folders(tmp_path):
    """The same layout weights at another cell side read a stream otherwise; folders before 0.6.0 (16-pixel cells)
    keep the checksum their files hold."""
    from safetensors.torch import save_file
    from magc_plugin.codec.folders import stream_sha256
    save_file({"encoder.conv.weight": torch.ones(2)}, tmp_path / "ae.safetensors")
    (tmp_path / "lcm.safetensors").write_bytes(b"lcm")
    checksum = lambda *cell: stream_sha256(tmp_path / "ae.safetensors", [tmp_path / "lcm.safetensors"], 1.0, *cell)  # noqa: E731
    assert checksum(16) == checksum()
    assert len({checksum(), checksum(8), checksum(4)}) == 3


def test_the_stream_holds_the_layout_over_stage1_after_the_latent(model):
    """decode_y gives the latent's y_hat, then the layout codec's, from one stream that must end exactly. The layout
    codes the tile's cell means less its base: stage 1 of the latent's y_hat drawn by the stage-1 decoder, re-centred
    on the tile's colour. The decoder adds the base back before the hold (a window is handed its tiles' layouts)."""
    img, cls = scene(128, seed=5)
    payload = model.compress_tile(img, cls)
    y_hat = model.decode_y(payload, cls.shape)
    m = model.lcm.config["M"]
    assert y_hat.shape == (1, m + model.layout.config["M"], 4, 4)
    colour = split_payload(payload)[0]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    one_hot = model._one_hot(cls, cls.shape)
    base = model.layout_base(model.lcm.synthesise(y_hat[:, :m], one_hot), colour)
    with torch.no_grad():
        layout_y = model.layout.analyse(layout_of(x, model.config["layout"]["cell"]) - base, one_hot)
        residual = model.layout.synthesise(y_hat[:, m:], one_hot)
    assert torch.equal(y_hat[:, m:], model.layout.encode_y(Encoder(), layout_y))
    layout_hat = model.tile_layout(y_hat, cls, colour)
    assert np.array_equal(layout_hat, (residual + base)[0].numpy())
    decoded = model.decompress_tile(payload, cls, steps=0)
    assert np.array_equal(model.decode_window(y_hat, cls, colour, steps=0, layout_hat=torch.from_numpy(layout_hat)[None]),
                          decoded)
    assert not np.array_equal(model.decode_window(y_hat, cls, colour, steps=0, layout_hat=residual), decoded)
    with pytest.raises(MAGCError, match="cut short|damaged"):
        model.decode_y(payload[:-4], cls.shape)


def test_each_preset_has_its_residual_layout_codec_and_the_stage1_decoder_gives_the_stream_its_meaning(model, tmp_path):
    """Folders from 0.7.0 hold a layout codec per preset (its base differs: stage 1 at that rate). The stage-1 decoder
    draws the base, so it enters the stream checksum with the layout's base: a file is refused by a folder whose
    stage-1 decoder differs, and by one whose layout is not residual (0.6.x)."""
    import copy
    from safetensors.torch import load_file, save_file
    other = copy.deepcopy(model.layout)
    with torch.no_grad():
        other.g_s.out[1].weight.mul_(1.01)
    model.save_pretrained(tmp_path / "m", lcms={"low": model.lcm, "medium": model.lcm},
                          layout={"low": other, "medium": model.layout})
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert [config["rates"][r]["layout_file"] for r in ("low", "medium")] == ["layout-low.safetensors",
                                                                               "layout-medium.safetensors"]
    low, medium = (MAGCModel.from_pretrained(tmp_path / "m", rate=r, device="cpu") for r in ("low", "medium"))
    img, cls = scene(128, seed=7)
    assert medium.compress_tile(img, cls) == model.compress_tile(img, cls)
    assert torch.equal(low.layout.g_s.out[1].weight, other.g_s.out[1].weight)
    checksum = medium.stream_sha256
    config["layout"].pop("base")
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert MAGCModel.from_pretrained(tmp_path / "m", device="cpu").stream_sha256 != checksum
    config["layout"]["base"] = "stage1"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    state = load_file(str(tmp_path / "m" / "stage1-decoder.safetensors"))
    save_file({k: v * 1.01 if v.is_floating_point() else v for k, v in state.items()},
              str(tmp_path / "m" / "stage1-decoder.safetensors"))
    assert MAGCModel.from_pretrained(tmp_path / "m", device="cpu").stream_sha256 != checksum


@pytest.mark.parametrize("cell", [16, 8])
def test_holding_to_the_layout_moves_cell_means_and_keeps_detail(cell):
    """The coarse cells take the layout's colour; the detail inside them (the image minus its cell means) stays."""
    rng = np.random.default_rng(0)
    image = (128 + rng.normal(0, 20, (64, 96, 3))).clip(0, 255).astype(np.uint8)
    target = np.zeros((64, 96, 3), np.float32)
    target[:, :48] = [200, 40, 40]
    target[:, 48:] = [30, 60, 220]
    target_layout = layout_of(torch.from_numpy(target / 255).permute(2, 0, 1)[None], cell)
    held = hold_to_layout(image, target_layout, cell)
    rows, cols = 64 // cell, 96 // cell
    cell_means = lambda a: a.reshape(rows, cell, cols, cell, 3).mean(axis=(1, 3))  # noqa: E731
    means = cell_means(held)
    # away from the colour edge (bilinear blending spreads it over one cell each side)
    edge = cols // 2
    assert np.abs(means[:, :edge - 1] - [200, 40, 40]).max() < 6 and np.abs(means[:, edge + 1:] - [30, 60, 220]).max() < 6
    detail = lambda a: a.astype(float) - cell_means(a).repeat(cell, 0).repeat(cell, 1)  # noqa: E731
    inside = (slice(None), slice(0, cell))
    assert np.abs(detail(held)[inside] - detail(image)[inside]).mean() < 2


def test_each_pass_of_the_hold_brings_the_cell_means_closer_to_the_layout():
    """Blending spreads each cell's move over its neighbours: one pass leaves the means short where neighbouring cells
    differ; the further passes move them by what is missing."""
    rng = np.random.default_rng(3)
    image = (128 + rng.normal(0, 10, (128, 128, 3))).clip(0, 255).astype(np.uint8)
    target = torch.from_numpy(rng.uniform(0.25, 0.75, (1, 3, 8, 8)).astype(np.float32))
    target_layout = layout_of(target.repeat_interleave(16, -2).repeat_interleave(16, -1), 16)
    errors = [np.abs(hold_to_layout(image, target_layout, 16, passes).reshape(8, 16, 8, 16, 3).mean(axis=(1, 3))
                     - target[0].permute(1, 2, 0).numpy() * 255).mean() for passes in (1, 2, 3)]
    assert errors[2] < errors[1] < errors[0] and errors[2] < errors[0] / 2, errors
