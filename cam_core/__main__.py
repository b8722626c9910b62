"""Entry point for ``python -m cam_core`` (predict, explain, methods, layers); see cam_core/cli.py."""
from __future__ import annotations

from cam_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
