"""The diffusion's noise, drawn by global latent position so that overlapping windows agree."""
import hashlib
import struct


class PositionalNoise:
    """Sampler noise source whose values depend on the seed and the *global* latent position.

    The latent plane is cut into blocks (one per tile); each block's noise for draw k
    comes from its own generator seeded with (seed, k, block column, block row), so any
    window sees the same noise as its overlapping neighbours.
    """

    def __init__(self, seed, x0, y0, block):
        self.seed, self.x0, self.y0, self.block = int(seed), x0, y0, block

    def _block(self, k, bx, by, channels):
        import torch
        key = hashlib.blake2b(struct.pack(">qqqq", self.seed, k, bx, by), digest_size=8).digest()
        generator = torch.Generator("cpu").manual_seed(int.from_bytes(key, "big") & (2**63 - 1))
        return torch.randn((channels, self.block, self.block), generator=generator)

    def __call__(self, k, shape):
        import torch
        _, channels, h, w = shape
        out = torch.empty(tuple(shape))
        b = self.block
        for by in range(self.y0 // b, (self.y0 + h - 1) // b + 1):
            for bx in range(self.x0 // b, (self.x0 + w - 1) // b + 1):
                ya, yb = max(self.y0, by * b), min(self.y0 + h, (by + 1) * b)
                xa, xb = max(self.x0, bx * b), min(self.x0 + w, (bx + 1) * b)
                out[0, :, ya - self.y0:yb - self.y0, xa - self.x0:xb - self.x0] = \
                    self._block(k, bx, by, channels)[:, ya - by * b:yb - by * b, xa - bx * b:xb - bx * b]
        return out
