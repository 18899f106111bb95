"""Feather blending of overlapping windows, one strip of output rows at a time."""
import numpy as np


def ramp(length, before, after, margin):
    """Feathering weights along one axis: linear over 2*margin at sides that overlap a neighbour."""
    pos = np.arange(length, dtype=np.float32) + 0.5
    weight = np.ones(length, np.float32)
    if margin and before:
        weight = np.minimum(weight, pos / (2 * margin))
    if margin and after:
        weight = np.minimum(weight, (length - pos) / (2 * margin))
    return weight


class Strip:
    """Weighted sums of decoded pixels over output rows [y0, y1) and columns [x0, x1)."""

    def __init__(self, y0, y1, x0, x1):
        self.y0, self.y1, self.x0, self.x1 = y0, max(y0, y1), x0, x1
        self.sum = np.zeros((self.y1 - y0, x1 - x0, 3), np.float32)
        self.weight = np.zeros((self.y1 - y0, x1 - x0), np.float32)

    def add(self, image, weight, x, y):
        """Add an image (H, W, 3) with weights (H, W) whose top-left pixel is at (x, y)."""
        ya, yb = max(y, self.y0), min(y + image.shape[0], self.y1)
        xa, xb = max(x, self.x0), min(x + image.shape[1], self.x1)
        if ya >= yb or xa >= xb:
            return
        w = weight[ya - y:yb - y, xa - x:xb - x]
        here = (slice(ya - self.y0, yb - self.y0), slice(xa - self.x0, xb - self.x0))
        self.sum[here] += image[ya - y:yb - y, xa - x:xb - x] * w[..., None]
        self.weight[here] += w

    def merge(self, other):
        """Add the part of another strip that overlaps this one."""
        ya, yb = max(other.y0, self.y0), min(other.y1, self.y1)
        if ya < yb:
            self.sum[ya - self.y0:yb - self.y0] += other.sum[ya - other.y0:yb - other.y0]
            self.weight[ya - self.y0:yb - self.y0] += other.weight[ya - other.y0:yb - other.y0]

    def tail(self, y):
        """A copy of rows [y, y1) (what the next row of windows still adds to), so the rest can be freed."""
        rest = Strip(max(y, self.y0), self.y1, self.x0, self.x1)
        rest.merge(self)
        return rest

    def image(self, ya, yb):
        """The blended 8-bit pixels of rows [ya, yb)."""
        s, w = self.sum[ya - self.y0:yb - self.y0], self.weight[ya - self.y0:yb - self.y0]
        return np.rint(s / np.maximum(w, 1e-12)[..., None]).clip(0, 255).astype(np.uint8)
