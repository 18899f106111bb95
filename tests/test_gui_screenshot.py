"""The desktop app under Xvfb: QGIS starts with the plugin enabled, the toolbox lists the MAGC tools.

Screenshots go to the test's tmp folder; set MAGC_SCREENSHOT_DIR (e.g. resources/screenshots) to keep them.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from build import PLUGIN, headless_env, stage_plugin

pytestmark = pytest.mark.slow
SESSION = Path(__file__).parent / "gui" / "screenshot_session.py"


def test_desktop_screenshot(raster_path, buildings_gpkg, tmp_path):
    if not (shutil.which("xvfb-run") and Path("/usr/bin/qgis").exists()):
        pytest.fail("xvfb-run or /usr/bin/qgis is missing: run 'build.py setup'")
    stage_plugin(tmp_path / "plugins" / PLUGIN)
    profiles = tmp_path / "profiles"
    ini = profiles / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\nmagc_plugin=true\nprocessing=true\n[qgis]\nshowTips=false\n"
                   "checkVersion=false\n")
    shots = tmp_path / "shots"
    shots.mkdir()
    env = headless_env({k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH",
                                                                          "QGIS_OPTIONS_PATH")})
    env.update(QT_QPA_PLATFORM="xcb", QT_XCB_GL_INTEGRATION="none", QGIS_PLUGINPATH=str(tmp_path / "plugins"),
               MAGC_SHOT_DIR=str(shots), MAGC_SHOT_LAYERS=os.pathsep.join([str(raster_path), str(buildings_gpkg)]))
    result = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "/usr/bin/qgis", "--noversioncheck",
                             "--nologo", "--profiles-path", str(profiles), "--code", str(SESSION)],
                            env=env, capture_output=True, text=True, timeout=240)
    session = shots / "session.json"
    assert session.exists(), f"QGIS exited with {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    state = json.loads(session.read_text())
    assert PLUGIN in state["active"] and state["provider"] and state["toolbox"]
    from PIL import Image
    for name in ("toolbox.png", "compress_dialog.png"):
        pixels = np.asarray(Image.open(shots / name).convert("L"))
        assert pixels.std() > 10, f"{name} is blank"
    if os.environ.get("MAGC_SCREENSHOT_DIR"):
        for name in ("toolbox.png", "compress_dialog.png"):
            shutil.copy2(shots / name, Path(os.environ["MAGC_SCREENSHOT_DIR"]) / name)
