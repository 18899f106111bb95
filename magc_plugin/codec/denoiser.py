"""Stage 2 of MAGC: the semantic adapter and the conditional latent denoiser.

The denoiser is a diffusers ``UNet2DConditionModel`` whose input is
cat(x_t, latent_tilde) (conv_in widened to 2C channels). The semantic adapter
(T2I-Adapter style) turns the guidance map and x_t into one residual per down
block, each scaled and ADDED to the UNet hidden state before that block::

    map --unshuffle(8)--conv--> m ; cat(m, x_t) --stage_0--> r_0 --stage_1--> r_1 ...
    h = conv_in(cat(x_t, latent_tilde)); for each down block i: h = block_i(h + s * r_i)

For the paper scale the UNet is Stable Diffusion 2.1-base with conv_in widened
(new channels zero-initialised) and an empty-prompt context; the compact scale
uses a small UNet without attention so it runs on a 2-core CPU.
"""
import torch
from torch import nn

from .classes import NUM_CLASSES


class _AdapterStage(nn.Module):
    def __init__(self, in_ch, out_ch, downsample):
        super().__init__()
        self.down = nn.Conv2d(in_ch, in_ch, 3, stride=2, padding=1) if downsample else nn.Identity()
        self.inp = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.body = nn.Sequential(nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.SiLU(), nn.Conv2d(out_ch, out_ch, 3, padding=1))

    def forward(self, x):
        x = self.inp(self.down(x))
        return x + self.body(x)


class SemanticAdapter(nn.Module):
    """Guidance map (+ x_t) -> one residual per UNet down block, at that block's input size."""

    def __init__(self, residual_channels, latent_channels, map_channels=192, num_classes=NUM_CLASSES, scale=0.18215):
        super().__init__()
        self.config = dict(residual_channels=list(residual_channels), latent_channels=latent_channels,
                           map_channels=map_channels, num_classes=num_classes, scale=scale)
        self.scale = scale
        self.map_stem = nn.Sequential(
            nn.PixelUnshuffle(8), nn.Conv2d(num_classes * 64, map_channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(map_channels, map_channels, 3, padding=1),
        )
        stages, in_ch = [], map_channels + latent_channels
        for i, ch in enumerate(residual_channels):
            stages.append(_AdapterStage(in_ch, ch, downsample=i > 0))
            in_ch = ch
        self.stages = nn.ModuleList(stages)

    def forward(self, one_hot, x_t):
        h = torch.cat([self.map_stem(one_hot), x_t], dim=1)
        residuals = []
        for stage in self.stages:
            h = stage(h)
            residuals.append(h * self.scale)
        return residuals


def adapter_residual_channels(unet):
    """Channels of the hidden state entering each down block."""
    out = unet.config.block_out_channels
    return [out[0]] + list(out[:-1])


def widen_conv_in(unet, extra_channels):
    """Widen conv_in by `extra_channels` zero-initialised input channels."""
    old = unet.conv_in
    new = nn.Conv2d(old.in_channels + extra_channels, old.out_channels, old.kernel_size, padding=old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)
    return unet


def compact_unet_config(latent_channels, block_out_channels=(64, 128, 192), layers_per_block=1):
    """A small attention-free UNet for the compact scale."""
    n = len(block_out_channels)
    return dict(
        sample_size=32, in_channels=2 * latent_channels, out_channels=latent_channels,
        down_block_types=("DownBlock2D",) * n, up_block_types=("UpBlock2D",) * n,
        mid_block_type="UNetMidBlock2D", block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block, cross_attention_dim=8, norm_num_groups=16,
    )


class ConditionalDenoiser(nn.Module):
    """epsilon(x_t, t | latent_tilde, map): a UNet with adapter residuals before each down block."""

    def __init__(self, unet, adapter, context=None):
        super().__init__()
        self.unet = unet
        self.adapter = adapter
        # Empty-prompt text context for cross-attention UNets (SD 2.1); unused otherwise.
        self.register_buffer("context", context if context is not None else torch.zeros(1, 1, unet.config.cross_attention_dim))

    def forward(self, x_t, t, latent_tilde, one_hot):
        unet = self.unet
        residuals = self.adapter(one_hot, x_t)
        if not torch.is_tensor(t):
            t = torch.tensor([t], device=x_t.device)
        t = t.expand(x_t.shape[0]).to(x_t.device)
        emb = unet.time_embedding(unet.get_time_embed(sample=x_t, timestep=t))
        context = self.context.to(x_t.dtype).expand(x_t.shape[0], -1, -1)

        def run(block, *args, **kwargs):
            if getattr(block, "has_cross_attention", False):
                kwargs["encoder_hidden_states"] = context
            return block(*args, **kwargs)

        h = unet.conv_in(torch.cat([x_t, latent_tilde], dim=1))
        skips = ()
        for i, block in enumerate(unet.down_blocks):
            h = h + residuals[i]
            if i == 0:
                skips = (h,)
            h, res = run(block, hidden_states=h, temb=emb)
            skips += res
        if unet.mid_block is not None:
            h = run(unet.mid_block, h, emb)
        for block in unet.up_blocks:
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            upsample_size = skips[-1].shape[2:] if skips else None
            h = run(block, hidden_states=h, temb=emb, res_hidden_states_tuple=res, upsample_size=upsample_size)
        if unet.conv_norm_out is not None:
            h = unet.conv_act(unet.conv_norm_out(h))
        return unet.conv_out(h)
