"""``cam-explorer audit-report AUDIT_DIR [--out FILE]``: the review report of an audit as one self-contained HTML
file (``cam_core.audit.report``). Its parser and its command live here together; importing this module registers
both."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cam_core.audit import review
from cam_core.audit.report import write_review_report
from cam_core.audit.store import open_audit

from . import writers
from .commands import command
from .parsing import UsageError, subcommand

DEFAULT_NAME = "review.html"


@subcommand
def _audit_report(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("audit-report", parents=[common], help="the review report of an audit, one HTML file",
                       description="Write one self-contained HTML file (no network) from an audit folder: "
                                   "summary, per-class accuracy, confusion matrix, the most confident mistakes "
                                   "and right-for-the-wrong-reason cases with overlays, provenance. Prints one "
                                   "JSON object.")
    p.add_argument("audit_dir", metavar="AUDIT_DIR", help="the audit folder (`cam-explorer audit --out`)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help=f"HTML file to write (default AUDIT_DIR/{DEFAULT_NAME})")
    return p


@command
def audit_report(args: argparse.Namespace) -> int:
    """Write the review report and print one JSON record (where, images, accuracy, errors)."""
    folder = Path(args.audit_dir)
    if not folder.is_dir():
        raise UsageError(f"{args.audit_dir!r}: not a folder; give the audit folder `cam-explorer audit` wrote")
    out = Path(args.out) if args.out else folder / DEFAULT_NAME
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--out {args.out!r}: give an .html file name")
    with open_audit(folder) as audit:
        written = write_review_report(audit, out)
        s = review.summary(audit)
    writers.emit({"report": str(written), "images": s.rows, "errors": s.errors, "labelled": s.labelled,
                  "top1": writers.finite(s.top1), "top5": writers.finite(s.top5),
                  "bytes": written.stat().st_size})
    return 0
