"""The QGIS plugin object: registers the MAGC Processing provider and the translation.

QGIS desktop calls ``initGui``; ``qgis_process`` calls only ``initProcessing``. Both
go through one guarded registration, because registering the provider id a second
time makes QGIS delete the provider.
"""
from qgis.core import QgsApplication
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

from .plugin_files import plugin_file


def translation_file(locale):
    """The compiled translation for a QGIS locale ('fr', 'fr_FR'), or None."""
    for name in dict.fromkeys([locale, locale.split("_")[0]]):
        path = plugin_file("i18n", f"magc_{name}.qm")
        if name and path.is_file():
            return path
    return None


class MAGCPlugin:
    """Plugin entry object returned by ``classFactory``."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.translator = None
        self._install_translator()

    def _install_translator(self):
        path = translation_file(QgsApplication.locale() or "")
        if path is None:
            return
        translator = QTranslator()
        if translator.load(str(path)):
            QCoreApplication.installTranslator(translator)
            self.translator = translator

    def initProcessing(self):  # noqa: N802 (QGIS's name)
        from .processing.provider import MAGCProvider

        registry = QgsApplication.processingRegistry()
        if self.provider is not None or registry.providerById(MAGCProvider.ID) is not None:
            return
        self.provider = MAGCProvider()
        registry.addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS's name)
        self.initProcessing()

    def unload(self):
        if self.provider is not None and not sip.isdeleted(self.provider):
            QgsApplication.processingRegistry().removeProvider(self.provider)
        self.provider = None
        if self.translator is not None:
            QCoreApplication.removeTranslator(self.translator)
            self.translator = None
