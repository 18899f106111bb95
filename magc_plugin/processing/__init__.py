"""QGIS Processing provider of MAGC: one module per algorithm on a thin shared base class."""
