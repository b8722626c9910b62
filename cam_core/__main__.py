"""``python -m cam_core``: hands over to CAM Explorer's command line (``cam-explorer``, cam_explorer/cli.py).

The command line is an application (it loads the models in ``models/``), so it lives beside ``app.py`` and
not in this library, which never imports ``models`` or ``cam_explorer``. This file stays so that people who
already type ``python -m cam_core ...`` keep working. The import happens only when run as a script, never
on ``import cam_core``: this is the one place in ``cam_core`` that names the application.
"""
from __future__ import annotations

import sys


def _hand_over() -> int:
    try:
        from cam_explorer.cli import main  # lazy on purpose: the library never imports the application
    except ModuleNotFoundError as exc:
        if exc.name != "cam_explorer":
            raise
        sys.stderr.write("error: the command line is in the cam_explorer package: run from the project folder "
                         "or install the project (`pip install -e .`), then use `cam-explorer`\n")
        return 1
    return main(prog="python -m cam_core")


if __name__ == "__main__":
    raise SystemExit(_hand_over())
