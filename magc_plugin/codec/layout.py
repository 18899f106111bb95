"""The colour layout: a second, small stage-1 codec for the picture's block means (the model's layout cell: 8 pixels
since 0.6.0, 16 before), and the hold of the decoded pixels to it.

The latent codec (lcm.py) spends its bits on the autoencoder's latent, where colour is spread non-linearly over 32
channels and the autoencoder itself shifts block colours (its own round trip keeps 16-pixel block means to about
29 dB on held-out tiles): decoded roofs came back grey, vegetation moved. The layout codec is the same
SPADE-conditioned hyperprior module (lcm.py) run on the block means of the pixels (on the latent's 8-pixel grid,
larger cells' means repeated on it, so that its y lies beside the latent's), so the bits it carries are the colours and
layout that a viewer checks first. The decoder moves the block means of whatever the latent path and diffusion drew
onto the layout's, the moves blended bilinearly, and keeps the finer detail:

    pixels --cell means--> layout --LCM(map)--> bits --> layout_hat
    decoded = drawn + upsample(cell means of layout_hat - cell means of drawn)
"""
import numpy as np
import torch
import torch.nn.functional as F

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
