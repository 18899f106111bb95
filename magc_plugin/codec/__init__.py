"""MAGC codec core: plain PyTorch, no QGIS import.

    from magc_plugin.codec import MAGCModel
    model = MAGCModel.from_pretrained("default")
    payload = model.compress_tile(rgb_u8, class_raster_u8)
    rgb = model.decompress_tile(payload, class_raster_u8, steps=20, seed=0)
"""
from .classes import CLASS_NAMES, NUM_CLASSES, to_one_hot
from .errors import MAGCError
from .model import MAGCModel, resolve_device, resolve_model_path

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "MAGCError", "MAGCModel", "resolve_device", "resolve_model_path", "to_one_hot"]
