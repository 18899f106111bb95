"""Run inside the QGIS desktop app (qgis --code): load a sample, show the MAGC tools, take screenshots, quit.

Writes into $MAGC_SHOT_DIR: toolbox.png, compress_dialog.png, session.json (plugin state).
"""
import json
import os

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QDockWidget, QLineEdit
from qgis.utils import active_plugins, iface

OUT = os.environ["MAGC_SHOT_DIR"]
STATE = {}


def show_toolbox():
    window = iface.mainWindow()
    window.showMaximized()
    for path in os.environ.get("MAGC_SHOT_LAYERS", "").split(os.pathsep):
        if path.endswith(".tif"):
            iface.addRasterLayer(path, os.path.basename(path))
        elif path:
            iface.addVectorLayer(path, os.path.basename(path), "ogr")
    dock = window.findChild(QDockWidget, "ProcessingToolbox")
    dock.show()
    dock.raise_()
    search = dock.findChild(QLineEdit, "searchBox")
    if search is not None:
        search.setText("MAGC")
    STATE.update(active=list(active_plugins), provider=QgsApplication.processingRegistry().providerById("magc")
                 is not None, toolbox=dock.isVisible())
    QTimer.singleShot(3000, grab_toolbox)


def grab_toolbox():
    iface.mainWindow().grab().save(os.path.join(OUT, "toolbox.png"))
    import processing
    dialog = processing.createAlgorithmDialog("magc:compressraster")
    dialog.resize(900, 700)
    dialog.show()
    STATE["dialog"] = dialog  # keep it alive until the grab
    QTimer.singleShot(2000, grab_dialog)


def grab_dialog():
    STATE.pop("dialog").grab().save(os.path.join(OUT, "compress_dialog.png"))
    with open(os.path.join(OUT, "session.json"), "w") as fh:
        json.dump(STATE, fh)
    QgsProject.instance().setDirty(False)
    os._exit(0)  # no save-project prompt, no shutdown hang under Xvfb


QTimer.singleShot(4000, show_toolbox)
