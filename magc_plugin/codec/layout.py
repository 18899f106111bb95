"""The colour layout: a second, small stage-1 codec for the picture's block means (the model's layout cell: 8 pixels
since 0.6.0, 16 before), and the hold of the decoded pixels to it.

The latent codec (lcm.py) spends its bits on the autoencoder's latent, where colour is spread non-linearly over 32
channels and the autoencoder itself shifts block colours (its own round trip keeps 16-pixel block means to about
29 dB on held-out tiles): decoded roofs came back grey, vegetation moved. The layout codec is the same
SPADE-conditioned hyperprior module (lcm.py) run on the block means of the pixels (on the latent's 8-pixel grid,
larger cells' means repeated on it, so that its y lies beside the latent's), so the bits it carries are the colours and
layout that a viewer checks first. The decoder moves the block means of whatever the latent path and diffusion drew
onto the layout's, the moves blended bilinearly, and keeps the finer detail. Since 0.7.0 the layout codec codes the
cell means less the tile's base (LAYOUT_BASE: stage 1's, which the decoder draws before it), with a codec per preset:

    pixels --cell means--> layout - base --LCM(map)--> bits --> residual_hat;  layout_hat = base + residual_hat
    decoded = drawn + upsample(cell means of layout_hat - cell means of drawn)
"""
import numpy as np
import torch
import torch.nn.functional as F

# Since 0.7.0 the layout codes the cell means less those of stage 1 drawn from the latent alone (the stage-1 decoder,
# re-centred on the tile's colour): the latent already carries them to 20 dB at low and 24 dB at high, and the layout
# codec, seeing only the map, coded them again from scratch (MODEL_CARD History, 0.7.0)
LAYOUT_BASE = "stage1"
GRID = 8  # the layout lies on the latent's grid (so the codec is the LCM's module), each cell's mean repeated on it
CENTRE, SPREAD = 0.5, 4.0  # pixel levels in [0, 1] to layout units (about unit variance, as the LCM expects)
# Three passes of the hold instead of one: held-out tiles' decoded 16-pixel block means +3.0 to +4.7 dB, PSNR +0.06 to
# +0.22 dB, LPIPS-Alex within +0.004 (MODEL_CARD History, 0.4.3).
HOLD_PASSES = 3


def layout_of(pixels, cell):
    """(B, 3, H, W) pixels in [0, 1] -> (B, 3, H/8, W/8) layout: the `cell`-pixel block means on the 8-pixel grid."""
    means = (F.avg_pool2d(pixels, cell) - CENTRE) * SPREAD
    return means.repeat_interleave(cell // GRID, -2).repeat_interleave(cell // GRID, -1)


def hold_to_layout(image, layout_hat, cell, passes=HOLD_PASSES):
    """The (H, W, 3) uint8 `image` with its `cell`-pixel block means moved onto those of `layout_hat`
    ((1, 3, H/8, W/8) layout units), the moves blended bilinearly so that no cell edge shows. Blending spreads each
    move over the neighbouring cells, so one pass leaves the means short of the layout's; each further pass moves
    them by what is still missing."""
    target = F.avg_pool2d((layout_hat.detach().float().cpu() / SPREAD + CENTRE) * 255, cell // GRID)
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    for _ in range(passes):
        shift = target - F.avg_pool2d(pixels, cell)
        pixels = pixels + F.interpolate(shift, scale_factor=cell, mode="bilinear", align_corners=False)
    return pixels[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
