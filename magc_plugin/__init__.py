"""MAGC: map-assisted generative compression of remote-sensing rasters, as a QGIS plugin.

Importing this package imports nothing heavy: QGIS loads it through classFactory,
and the codec (torch, compressai, diffusers) is imported only when a tool runs.
"""
__version__ = "0.7.0"


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import MAGCPlugin
    return MAGCPlugin(iface)
