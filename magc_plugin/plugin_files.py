"""Where the plugin's data files are (resources/, i18n/); apart from plugin.py so that the Processing tools
can find their icons without importing the plugin object that registers them."""
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent


def plugin_file(*parts):
    """Path of a plugin data file (resources/, i18n/): inside the deployed plugin, else at the repository root."""
    for root in (PLUGIN_DIR, PLUGIN_DIR.parent):
        path = root.joinpath(*parts)
        if path.exists():
            return path
    return PLUGIN_DIR.joinpath(*parts)
