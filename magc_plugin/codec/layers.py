"""Building blocks of the latent compression module (MAGC.md, stage 1).

Blocks follow the paper: conv3x3 -> channel LayerNorm -> LeakyReLU; residual
blocks of two of those; stride-2 conv3x3 down; conv1x1 to 4C + PixelShuffle up.
SPADE uses a parameter-free channel norm (per pixel, across channels) so a tile's
output does not depend on the statistics of the rest of the tile.
"""
import torch
from torch import nn


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor."""

    def __init__(self, channels, affine=True, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            x = x * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return x


def conv_norm_act(in_ch, out_ch, stride=1):
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1),
        ChannelNorm(out_ch),
        nn.LeakyReLU(0.2, inplace=True),
    )


class ResBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.body = nn.Sequential(conv_norm_act(ch, ch), conv_norm_act(ch, ch))

    def forward(self, x):
        return x + self.body(x)


def down(in_ch, out_ch):
    return conv_norm_act(in_ch, out_ch, stride=2)


class Up(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * 4, 1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.conv(x))


class SPADE(nn.Module):
    """out = norm(x) * (1 + gamma) + beta, gamma/beta = conv(cat(map_feat, norm(x)))."""

    def __init__(self, ch, map_ch, hidden=None):
        super().__init__()
        hidden = hidden or ch
        self.norm = ChannelNorm(ch, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(ch + map_ch, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, ch, 3, padding=1)
        self.beta = nn.Conv2d(hidden, ch, 3, padding=1)

    def forward(self, x, map_feat):
        normed = self.norm(x)
        h = self.shared(torch.cat([map_feat, normed], dim=1))
        return normed * (1 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    """The intended two-branch SPADE residual block (the reference drops its first branch)."""

    def __init__(self, ch, map_ch):
        super().__init__()
        self.norm_0 = SPADE(ch, map_ch)
        self.conv_0 = nn.Conv2d(ch, ch, 3, padding=1)
        self.norm_1 = SPADE(ch, map_ch)
        self.conv_1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x, map_feat):
        dx = self.conv_0(self.act(self.norm_0(x, map_feat)))
        dx = self.conv_1(self.act(self.norm_1(dx, map_feat)))
        return x + dx


class MapPyramid(nn.Module):
    """One-hot map (K, H, W) -> features at 1/8, 1/16 and 1/32 of the image side."""

    def __init__(self, num_classes, map_ch):
        super().__init__()
        self.stem = nn.Sequential(
            nn.PixelUnshuffle(4),
            nn.Conv2d(num_classes * 16, map_ch, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(map_ch, map_ch, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.to_16 = nn.Sequential(nn.Conv2d(map_ch, map_ch, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.to_32 = nn.Sequential(nn.Conv2d(map_ch, map_ch, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True))

    def forward(self, one_hot):
        f8 = self.stem(one_hot)
        f16 = self.to_16(f8)
        f32 = self.to_32(f16)
        return f8, f16, f32
