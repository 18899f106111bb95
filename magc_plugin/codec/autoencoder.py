"""Image <-> latent at 1/8 resolution: the frozen first-stage autoencoder.

Two implementations behind one interface (``encode``/``decode`` on images in
[0, 1], latents already multiplied by the latent scale factor):

- ``CompactAutoencoder``: the project's own small convolutional autoencoder
  (a TAESD-style layout, 32 latent channels), which can start from the MIT
  TAEF2 weights in ``../shared/weights/taef2`` and is fine-tuned on aerial imagery.
- ``DiffusersAutoencoder``: any diffusers ``AutoencoderKL`` folder, such as the
  Stable Diffusion 2.1 VAE; its scale factor comes from its config.
"""
import torch
from torch import nn

DOWNSCALE = 8


def _conv(n_in, n_out, **kwargs):
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class _Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class _Block(nn.Module):
    def __init__(self, ch, mid_norm=False):
        super().__init__()
        self.conv = nn.Sequential(_conv(ch, ch), nn.ReLU(), _conv(ch, ch), nn.ReLU(), _conv(ch, ch))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = None
        if mid_norm:
            hidden = ch * 4
            self.pool = nn.Sequential(nn.Conv2d(ch, hidden, 1, bias=False), nn.GroupNorm(4, hidden),
                                      nn.ReLU(inplace=True), nn.Conv2d(hidden, ch, 1, bias=False))

    def forward(self, x):
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def _encoder(latent_channels, width, mid_norm):
    b = lambda norm=False: _Block(width, norm)  # noqa: E731
    return nn.Sequential(
        _conv(3, width), b(),
        _conv(width, width, stride=2, bias=False), b(), b(), b(),
        _conv(width, width, stride=2, bias=False), b(), b(), b(),
        _conv(width, width, stride=2, bias=False), b(mid_norm), b(mid_norm), b(mid_norm),
        _conv(width, latent_channels),
    )


def _decoder(latent_channels, width, mid_norm):
    b = lambda norm=False: _Block(width, norm)  # noqa: E731
    return nn.Sequential(
        _Clamp(), _conv(latent_channels, width), nn.ReLU(),
        b(mid_norm), b(mid_norm), b(mid_norm), nn.Upsample(scale_factor=2), _conv(width, width, bias=False),
        b(), b(), b(), nn.Upsample(scale_factor=2), _conv(width, width, bias=False),
        b(), b(), b(), nn.Upsample(scale_factor=2), _conv(width, width, bias=False),
        b(), _conv(width, 3),
    )


class CompactAutoencoder(nn.Module):
    """Small convolutional autoencoder; latent = raw encoder output * latent_scale."""

    def __init__(self, latent_channels=32, width=64, mid_norm=True, latent_scale=1.0):
        super().__init__()
        self.config = dict(kind="compact", latent_channels=latent_channels, width=width,
                           mid_norm=mid_norm, latent_scale=latent_scale)
        self.latent_channels = latent_channels
        self.encoder = _encoder(latent_channels, width, mid_norm)
        self.decoder = _decoder(latent_channels, width, mid_norm)

    @property
    def latent_scale(self):
        return self.config["latent_scale"]

    def load_taesd_weights(self, encoder_state, decoder_state):
        """Initialise from TAESD-family state dicts (e.g. TAEF2)."""
        self.encoder.load_state_dict(encoder_state)
        self.decoder.load_state_dict(decoder_state)

    def encode(self, images):
        return self.encoder(images) * self.latent_scale

    def decode(self, latents, decoder=None):
        """Pixels of latents, drawn by `decoder` (a module shaped as self.decoder) or this autoencoder's own."""
        return (self.decoder if decoder is None else decoder)(latents / self.latent_scale).clamp(0, 1)


class DiffusersAutoencoder(nn.Module):
    """A diffusers AutoencoderKL (the paper's Stable Diffusion VAE)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.latent_channels = vae.config.latent_channels
        self.config = dict(kind="diffusers", latent_channels=self.latent_channels,
                           latent_scale=float(vae.config.scaling_factor))

    @property
    def latent_scale(self):
        return self.config["latent_scale"]

    def encode(self, images):
        return self.vae.encode(images * 2 - 1).latent_dist.mode() * self.latent_scale

    def decode(self, latents, decoder=None):
        if decoder is not None:
            raise ValueError("A diffusers autoencoder draws with its own decoder only.")
        return ((self.vae.decode(latents / self.latent_scale).sample + 1) / 2).clamp(0, 1)
