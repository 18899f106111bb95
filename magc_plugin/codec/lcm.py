"""Stage 1 of MAGC: the latent compression module (LCM).

Ye et al., "Map-Assisted Remote-Sensing Image Compression at Extremely Low
Bitrates" (arXiv 2409.01935), with a channel-wise context model (Minnen & Singh 2020)
on a hyperprior (Balle et al. 2018)::

    latent --g_a(SPADE: map)--> y --Q--> y_hat --g_s(SPADE: map)--> latent_tilde
                                |  ^
                         h_a    |  | means/scales, slice by slice
                                v  |
                                z --Q--> z_hat --h_s--> (latent means, latent scales)

The map conditions both transforms. z then y, slice by slice, make one entropy-coded stream per tile, the
only bits (entropy_coding.py: compressai's learned tables, constriction's ANS coder).

Cross-machine determinism: the entropy parameters (h_s and the slice nets) are
evaluated in float64 on the CPU and rounded to float32, so float noise between
machines or devices cannot flip a CDF index or a mean.
"""

import torch
from torch import nn
from torch.func import functional_call

from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel

from .classes import NUM_CLASSES
from .entropy_coding import Decoder, Encoder, Tables
from .errors import MAGCError
from .layers import MapPyramid, ResBlock, SPADEResBlock, Up, conv_norm_act, down

# 160 scales (5 % apart) rather than compressai's 64 (13 % apart): the coarser table costs about 2.7 %
# more bits than the rate model estimates at 0.05 bpp, the finer one 1.5 %
SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256, 160


def scale_table():
    return torch.exp(torch.linspace(torch.log(torch.tensor(SCALES_MIN)), torch.log(torch.tensor(SCALES_MAX)), SCALES_LEVELS))


class AnalysisTransform(nn.Module):
    """g_a: latent (1/8) -> y (1/32), SPADE at 1/8, 1/16 and 1/32."""

    def __init__(self, latent_channels, N, M, map_ch, num_res_blocks):
        super().__init__()
        rbs = lambda: nn.Sequential(*[ResBlock(N) for _ in range(num_res_blocks)])  # noqa: E731
        self.stem = nn.Sequential(nn.Conv2d(latent_channels, N, 3, padding=1), rbs())
        self.spade_8 = SPADEResBlock(N, map_ch)
        self.down_16 = nn.Sequential(down(N, N), rbs())
        self.spade_16 = SPADEResBlock(N, map_ch)
        self.down_32 = nn.Sequential(down(N, N), rbs())
        self.spade_32 = SPADEResBlock(N, map_ch)
        self.out = nn.Conv2d(N, M, 3, padding=1)

    def forward(self, x, maps):
        f8, f16, f32 = maps
        x = self.spade_8(self.stem(x), f8)
        x = self.spade_16(self.down_16(x), f16)
        x = self.spade_32(self.down_32(x), f32)
        return self.out(x)


class SynthesisTransform(nn.Module):
    """g_s: y_hat (1/32) -> latent_tilde (1/8), mirroring g_a."""

    def __init__(self, latent_channels, N, M, map_ch, num_res_blocks):
        super().__init__()
        rbs = lambda: nn.Sequential(*[ResBlock(N) for _ in range(num_res_blocks)])  # noqa: E731
        self.stem = nn.Conv2d(M, N, 3, padding=1)
        self.spade_32 = SPADEResBlock(N, map_ch)
        self.up_16 = nn.Sequential(rbs(), Up(N, N))
        self.spade_16 = SPADEResBlock(N, map_ch)
        self.up_8 = nn.Sequential(rbs(), Up(N, N))
        self.spade_8 = SPADEResBlock(N, map_ch)
        self.out = nn.Sequential(rbs(), nn.Conv2d(N, latent_channels, 3, padding=1))

    def forward(self, y_hat, maps):
        f8, f16, f32 = maps
        x = self.spade_32(self.stem(y_hat), f32)
        x = self.spade_16(self.up_16(x), f16)
        x = self.spade_8(self.up_8(x), f8)
        return self.out(x)


def slice_net(in_ch, out_ch):
    hidden = max(out_ch * 4, in_ch // 2)
    return nn.Sequential(
        nn.Conv2d(in_ch, hidden, 3, padding=1), nn.GELU(),
        nn.Conv2d(hidden, hidden // 2, 3, padding=1), nn.GELU(),
        nn.Conv2d(hidden // 2, out_ch, 3, padding=1),
    )


class LatentCompressionModule(CompressionModel):
    """SPADE-conditioned hyperprior codec with an N-slice channel-wise context model.

    Input: an autoencoder latent (B, C, H/8, W/8) already multiplied by the latent
    scale factor, and the one-hot guidance map (B, K, H, W). H and W must be
    multiples of 64 (y is 1/32 of the image side, z is 1/64).
    """

    def __init__(self, latent_channels=4, N=128, M=64, map_channels=192, num_slices=8,
                 num_res_blocks=2, hyper_channels=None, num_classes=NUM_CLASSES):
        super().__init__()
        if M % num_slices:
            raise MAGCError(f"M={M} must be divisible by num_slices={num_slices}.")
        self.config = dict(latent_channels=latent_channels, N=N, M=M, map_channels=map_channels,
                           num_slices=num_slices, num_res_blocks=num_res_blocks,
                           hyper_channels=hyper_channels or M, num_classes=num_classes)
        Z = self.config["hyper_channels"]
        self.num_slices = num_slices
        self.slice_channels = M // num_slices
        self.map_encoder = MapPyramid(num_classes, map_channels)
        self.g_a = AnalysisTransform(latent_channels, N, M, map_channels, num_res_blocks)
        self.g_s = SynthesisTransform(latent_channels, N, M, map_channels, num_res_blocks)
        self.h_a = nn.Sequential(conv_norm_act(M, N), down(N, N), nn.Conv2d(N, Z, 3, padding=1))
        self.h_s = nn.Sequential(nn.Conv2d(Z, N, 3, padding=1), nn.LeakyReLU(0.2), Up(N, N),
                                 conv_norm_act(N, N), nn.Conv2d(N, 2 * M, 3, padding=1))
        self.cc_mean = nn.ModuleList(slice_net(M + i * self.slice_channels, self.slice_channels) for i in range(num_slices))
        self.cc_scale = nn.ModuleList(slice_net(M + i * self.slice_channels, self.slice_channels) for i in range(num_slices))
        self.entropy_bottleneck = EntropyBottleneck(Z)
        self.gaussian_conditional = GaussianConditional(None)

    # -- training -------------------------------------------------------------
    def forward(self, latent, one_hot):
        maps = self.map_encoder(one_hot)
        y = self.g_a(latent, maps)
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        latent_means, latent_scales = self.h_s(z_hat).chunk(2, dim=1)
        y_hat_slices, y_likelihoods = [], []
        for i, y_slice in enumerate(y.chunk(self.num_slices, dim=1)):
            mu = self.cc_mean[i](torch.cat([latent_means, *y_hat_slices], dim=1))
            sigma = self.cc_scale[i](torch.cat([latent_scales, *y_hat_slices], dim=1))
            # Training: y plus uniform noise for the rate and the decoder alike. Rounding with a
            # straight-through gradient traps a small y in the rounding dead zone: it never carries bits.
            y_hat_slice, likelihood = self.gaussian_conditional(y_slice, sigma, mu)
            y_likelihoods.append(likelihood)
            y_hat_slices.append(y_hat_slice)
        latent_hat = self.g_s(torch.cat(y_hat_slices, dim=1), maps)
        return {"latent_hat": latent_hat,
                "likelihoods": {"y": torch.cat(y_likelihoods, dim=1), "z": z_likelihoods}}

    def update(self, scale_table_values=None, force=False):
        return super().update(scale_table=scale_table() if scale_table_values is None else scale_table_values, force=force)

    # -- entropy path: float64 on the CPU, rounded to float32 ------------------
    def _cpu64(self, module, x):
        params = {k: v.detach().to("cpu", torch.float64) for k, v in
                  list(module.named_parameters()) + list(module.named_buffers())}
        return functional_call(module, params, (x.detach().to("cpu", torch.float64),)).float()

    def _slice_params(self, i, latent_means, latent_scales, y_hat_slices):
        mu = self._cpu64(self.cc_mean[i], torch.cat([latent_means, *y_hat_slices], dim=1))
        sigma = self._cpu64(self.cc_scale[i], torch.cat([latent_scales, *y_hat_slices], dim=1))
        return mu, sigma

    def _hyper_coding(self, z_shape):
        """CDF index and median of every hyper-latent element, as compressai's EntropyBottleneck codes them."""
        eb = self.entropy_bottleneck
        return eb._build_indexes(z_shape), eb._get_medians().detach().reshape(1, -1, 1, 1).expand(z_shape)

    @torch.no_grad()
    def analyse(self, latent, one_hot):
        """y = g_a(latent | map), on the latent's device."""
        return self.g_a(latent, self.map_encoder(one_hot))

    @torch.no_grad()
    def compress(self, latent, one_hot):
        """Encode one latent (batch 1) -> (payload bytes, y_hat as the decoder will see it)."""
        return self.compress_y(self.analyse(latent, one_hot))

    @torch.no_grad()
    def compress_y(self, y):
        """Entropy-code one y (batch 1) -> (payload bytes, y_hat as the decoder will see it)."""
        encoder = Encoder()
        y_hat = self.encode_y(encoder, y)
        return encoder.payload(), y_hat

    @torch.no_grad()
    def encode_y(self, encoder, y):
        """Queue one y (batch 1), hyper-latent first, on `encoder` (entropy_coding.Encoder, which may hold other
        modules' symbols) -> y_hat as the decoder will see it."""
        if y.shape[0] != 1:
            raise MAGCError("LatentCompressionModule.encode_y codes one tile at a time (batch size 1).")
        z = self.h_a(y).cpu().float()
        y = y.cpu().float()
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        z_tables, y_tables = Tables(eb), Tables(gc)
        z_indexes, z_medians = self._hyper_coding(z.shape)
        z_symbols = encoder.add(z_tables, eb.quantize(z, "symbols", z_medians).numpy(), z_indexes.numpy())
        z_hat = eb.dequantize(torch.from_numpy(z_symbols), z_medians)
        latent_means, latent_scales = self._cpu64(self.h_s, z_hat).chunk(2, dim=1)
        y_hat_slices = []
        for i, y_slice in enumerate(y.chunk(self.num_slices, dim=1)):
            mu, sigma = self._slice_params(i, latent_means, latent_scales, y_hat_slices)
            y_q = encoder.add(y_tables, gc.quantize(y_slice, "symbols", mu).numpy(), gc.build_indexes(sigma).numpy())
            y_hat_slices.append(torch.from_numpy(y_q).float() + mu)
        return torch.cat(y_hat_slices, dim=1)

    @torch.no_grad()
    def decompress_y(self, payload, y_size):
        """Payload -> y_hat (1, M, h, w) on the CPU, bit-identical to the encoder's."""
        decoder = Decoder(bytes(payload))
        y_hat = self.decode_y(decoder, y_size)
        decoder.finish()
        return y_hat

    @torch.no_grad()
    def decode_y(self, decoder, y_size):
        """The next y_hat (1, M, h, w) read from `decoder` (entropy_coding.Decoder), on the CPU, bit-identical to
        the encoder's."""
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        z_tables, y_tables = Tables(eb), Tables(gc)
        z_shape = (1, eb.channels, max(1, y_size[0] // 2), max(1, y_size[1] // 2))
        z_indexes, z_medians = self._hyper_coding(z_shape)
        z_hat = eb.dequantize(torch.from_numpy(decoder.read(z_tables, z_indexes.numpy())), z_medians)
        latent_means, latent_scales = self._cpu64(self.h_s, z_hat).chunk(2, dim=1)
        if latent_means.shape[-2:] != tuple(y_size):
            raise MAGCError(f"Tile latent size {tuple(y_size)} does not match the hyperprior ({tuple(latent_means.shape[-2:])}).")
        y_hat_slices = []
        for i in range(self.num_slices):
            mu, sigma = self._slice_params(i, latent_means, latent_scales, y_hat_slices)
            y_q = decoder.read(y_tables, gc.build_indexes(sigma).numpy())
            y_hat_slices.append(torch.from_numpy(y_q).float() + mu)
        return torch.cat(y_hat_slices, dim=1)

    @torch.no_grad()
    def synthesise(self, y_hat, one_hot):
        """y_hat + map -> latent_tilde (1, C, 4h, 4w) on the map's device."""
        return self.g_s(y_hat.to(one_hot.device), self.map_encoder(one_hot))
