"""Model folders without torch: where the shipped presets live, lookup, rates, checksums.

Kept torch-free so the QGIS toolbox can list rates and Diagnostics can run before
(or without) PyTorch being installed.
"""
import hashlib
import json
from pathlib import Path

from .errors import MAGCError

SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models"
DEFAULT_PRESET = "compact"


def resolve_model_path(path_or_preset):
    """A folder path, or the name of a model shipped in magc_plugin/models ('default' = compact)."""
    name = DEFAULT_PRESET if path_or_preset in (None, "", "default") else str(path_or_preset)
    shipped = SHIPPED_MODELS / name
    path = shipped if shipped.is_dir() else Path(name).expanduser()
    if not (path / "config.json").is_file():
        available = sorted(p.name for p in SHIPPED_MODELS.iterdir() if (p / "config.json").is_file()) if SHIPPED_MODELS.is_dir() else []
        raise MAGCError(f"No MAGC model at {path}: give a model folder with a config.json, or one of the "
                        f"shipped presets {available or '(none installed)'}.")
    return path


def read_config(path_or_preset):
    path = resolve_model_path(path_or_preset)
    try:
        return json.loads((path / "config.json").read_text())
    except ValueError as exc:
        raise MAGCError(f"{path / 'config.json'} is not valid JSON: {exc}") from exc


def model_rates(path_or_preset="default"):
    """The rate presets of a model folder, in the order of its config."""
    return tuple(read_config(path_or_preset)["rates"])


def sha256_files(paths):
    digest = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# Autoencoder tensors that only draw the image from a latent (the compact decoder, a diffusers VAE's decoder).
DRAWING_PARTS = ("decoder", "post_quant_conv")
# The same tables under another entropy coder make other streams: files from compressai's rANS are refused as such
ENTROPY_CODER = b"entropy-coder: constriction ANS, tables from compressai quantized CDFs, v1"
# The layout cell of every folder before 0.6.0, left out of their checksum so that their files keep it
FIRST_LAYOUT_CELL = 16


def stream_sha256(autoencoder_file, codec_files, latent_scale, layout_cell=FIRST_LAYOUT_CELL, layout_base=None):
    """The checksum of what gives a rate's stream its meaning: the stage-1 codecs' files (the LCM's, then the
    layout codec's where there is one: entropy models, synthesis; then the stage-1 decoder where the layout is coded
    over what it draws) with the layout's cell side and base, the entropy coder, and the autoencoder's encoding side
    with its latent scale. Models that differ only in their denoiser or their decoder
    (a decoder refit, say) read the same streams and draw other images from them."""
    from safetensors import safe_open
    digest = hashlib.sha256(sha256_files(codec_files).encode())
    digest.update(ENTROPY_CODER)
    digest.update(repr(float(latent_scale)).encode())
    if layout_cell != FIRST_LAYOUT_CELL:
        digest.update(f"layout cell {layout_cell}".encode())
    if layout_base:
        digest.update(f"layout over {layout_base}".encode())
    with safe_open(str(autoencoder_file), framework="numpy") as weights:
        for key in sorted(weights.keys()):
            if not set(key.split(".")[:2]) & set(DRAWING_PARTS):
                digest.update(key.encode())
                tensor = weights.get_tensor(key)
                digest.update(tensor.astype(tensor.dtype.newbyteorder("<")).tobytes())  # the same on any machine
    return digest.hexdigest()
