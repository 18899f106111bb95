"""python -m magc_plugin compress|decompress|rasterize|evaluate|info (see magc_plugin.cli)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
