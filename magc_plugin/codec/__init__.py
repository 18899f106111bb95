"""MAGC codec core: plain PyTorch, no QGIS import.

    from magc_plugin.codec import MAGCModel
    model = MAGCModel.from_pretrained("default")
    payload = model.compress_tile(rgb_u8, class_raster_u8)
    rgb = model.decompress_tile(payload, class_raster_u8, steps=20, seed=0)

Names are imported lazily, so light modules (classes, errors) load without torch.
"""
from importlib import import_module

_EXPORTS = {
    "CLASS_NAMES": "classes", "NUM_CLASSES": "classes", "to_one_hot": "classes",
    "MAGCError": "errors",
    "MAGCModel": "model", "resolve_device": "model", "resolve_model_path": "folders",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
