"""``python -m cam_explorer``: the same as the ``cam-explorer`` console script."""
from __future__ import annotations

from cam_explorer.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m cam_explorer"))
