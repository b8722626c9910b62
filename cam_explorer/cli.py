"""``main``: the console script ``cam-explorer`` (also ``python -m cam_explorer`` and ``python -m cam_core``).

Results go to stdout as one JSON object per line; progress and errors go to stderr. Exit codes: 0 ok,
1 something failed (a failing image gets an ``error`` record and the others still run), 2 a usage error,
130 interrupted.
"""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

from cam_core.errors import CamError

# Every command module registers its commands (and parsers) on import; the table is complete from here on.
from . import (audit_command, audit_report_command, evaluate_command, explain_command,  # noqa: F401
               evolution_command, info_commands, sanity_command, top_patches_command,
               visualize_command, walkthrough_command)
from .commands import COMMANDS
from .parsing import PROG, UsageError, build_parser
from .writers import one_line


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run one command line (``argv``, default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser(prog).parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    args.debug = debug
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"error: {one_line(exc)}\n")
        return 2
    except CamError as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"error: {one_line(exc)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:  # `... | head`: the reader went away; silence the flush at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except Exception as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {one_line(exc)} (rerun with --debug for the traceback)\n")
        return 1
