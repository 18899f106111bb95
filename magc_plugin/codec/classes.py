"""Guidance classes: the semantic map the codec is conditioned on.

A guidance map is a ``uint8`` class raster (H, W) whose value is the class index;
the networks see it as a one-hot tensor with one channel per class. Class 0,
``not_mapped``, marks pixels where the vector map says nothing, so partial maps
(only buildings known, say) are a normal input.
"""
import numpy as np

from .errors import MAGCError

CLASS_NAMES = ("not_mapped", "building", "road", "water", "vegetation", "other_land")
NUM_CLASSES = len(CLASS_NAMES)
NOT_MAPPED, BUILDING, ROAD, WATER, VEGETATION, OTHER_LAND = range(NUM_CLASSES)

# Display colours (RGB) for guidance previews and the rasterize tool's legend.
CLASS_COLOURS = {
    NOT_MAPPED: (0, 0, 0),
    BUILDING: (220, 60, 60),
    ROAD: (250, 250, 250),
    WATER: (40, 110, 220),
    VEGETATION: (60, 170, 60),
    OTHER_LAND: (200, 170, 110),
}


def check_class_raster(class_raster, shape=None):
    """Validate a class raster and return it as a contiguous uint8 array."""
    arr = np.asarray(class_raster)
    if arr.ndim != 2:
        raise MAGCError(f"The guidance map must be a 2-D class raster, got shape {arr.shape}.")
    if shape is not None and arr.shape != tuple(shape):
        raise MAGCError(
            f"The guidance map is {arr.shape[1]}x{arr.shape[0]} pixels but the image is "
            f"{shape[1]}x{shape[0]}: rasterize the guidance onto the image's grid."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise MAGCError(f"The guidance map must hold integer class values, got {arr.dtype}.")
    if arr.size and (arr.min() < 0 or arr.max() >= NUM_CLASSES):
        raise MAGCError(
            f"Guidance class values must be in 0..{NUM_CLASSES - 1} ({', '.join(CLASS_NAMES)}); "
            f"found {int(arr.min())}..{int(arr.max())}."
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


def to_one_hot(class_raster, device="cpu"):
    """Class raster (H, W) -> float32 one-hot tensor (1, K, H, W)."""
    import torch

    arr = check_class_raster(class_raster)
    idx = torch.from_numpy(arr.astype(np.int64)).to(device)
    one_hot = torch.nn.functional.one_hot(idx, NUM_CLASSES).permute(2, 0, 1).float()
    return one_hot.unsqueeze(0)


def colourize(class_raster):
    """Class raster -> RGB uint8 preview."""
    arr = check_class_raster(class_raster)
    palette = np.array([CLASS_COLOURS[i] for i in range(NUM_CLASSES)], dtype=np.uint8)
    return palette[arr]
