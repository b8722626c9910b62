"""The Audit page's cached reads: each keyed by the audit folder and the part files present (a running audit
adds parts, so its figures refresh), computed in ``cam_core.audit.review`` / ``report``; and the hand-over of
one image to Inspect. Only files inside the configured audits folders are ever read."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from cam_core.audit import review
from cam_core.audit.paths import audit_roots, within_roots
from cam_core.audit.report import build_review_report, overlay_image
from cam_core.audit.store import MANIFEST, Audit, open_audit, part_files
from cam_core.render import colorize, upsample
import models
from cam_core.errors import CamError
from cam_core.imaging import load_image

from . import engine, state
from .sidebar import show_photo
from .widgets import set_remembered

Sig = tuple[Any, ...]
#: Long side of a gallery tile, pixels.
TILE_SIDE = 256


def signature(folder: Path) -> Sig:
    """What the cached figures of ``folder`` depend on: its part files (names and sizes) and the manifest's
    modification time."""
    parts = tuple((p.name, p.stat().st_size) for p in part_files(folder))
    manifest = folder / MANIFEST
    return parts, manifest.stat().st_mtime_ns if manifest.is_file() else 0


@st.cache_resource(max_entries=8, show_spinner=False)
def _open(folder: str) -> Audit:
    return open_audit(folder)


def audit_of(folder: Path) -> Audit:
    """The open audit (one DuckDB connection per folder, shared by sessions; its queries take a lock)."""
    return _open(str(folder))


def _overview(folder: str, sig: Sig) -> dict[str, Any]:
    audit = _open(folder)
    return {"summary": review.summary(audit), "per_class": review.per_class(audit),
            "confusion": review.confusion(audit), "classes": list(review.class_names(audit)),
            "scores": review.score_columns(audit), "sorts": review.sort_columns(audit),
            "errors": review.errors(audit)}


def overview(folder: str, sig: Sig) -> dict[str, Any]:
    """Summary, per-class rows, confusion matrix, classes present and filterable columns of the audit."""
    return engine.cached(None, "audit_overview", _overview, image=False, entries=16, folder=folder, sig=sig)


def _range(folder: str, sig: Sig, column: str) -> tuple[float, float] | None:
    audit = _open(folder)
    if column not in review.score_columns(audit):
        return None
    got = audit.sql(f'SELECT min("{column}") AS lo, max("{column}") AS hi FROM rows WHERE error IS NULL')
    lo, hi = got["lo"][0].as_py(), got["hi"][0].as_py()
    return None if lo is None else (float(lo), float(hi))


def column_range(folder: str, sig: Sig, column: str) -> tuple[float, float] | None:
    """The smallest and largest value of a score column (None when it has none)."""
    return engine.cached(None, "audit_range", _range, image=False, folder=folder, sig=sig, column=column)


def _select(folder: str, sig: Sig, key: Any, filters: review.Filters, order_by: str, descending: bool,
            limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
    return review.select(_open(folder), filters, order_by, descending, limit, offset)


def selection(folder: str, sig: Sig, filters: review.Filters, order_by: str, descending: bool, limit: int,
              offset: int) -> tuple[int, list[dict[str, Any]]]:
    """How many rows pass the filters, and one page of them (``review.select``)."""
    key = (filters.label_idx, filters.correct, filters.confidence, tuple(sorted(filters.ranges.items())),
           filters.wrong_reason, filters.errors)
    return engine.cached(None, "audit_select", _select, image=False, folder=folder, sig=sig, key=key,
                         _filters=filters, order_by=order_by, descending=descending, limit=limit, offset=offset)


def _mean(folder: str, sig: Sig, method: str, label_idx: int | None, correct: bool | None, side: int
          ) -> tuple[np.ndarray, int]:
    heat, n = review.mean_map(_open(folder), method, label_idx, correct=correct)
    return colorize(upsample(heat, (side, side))), n


def mean_map(folder: str, sig: Sig, method: str, label_idx: int | None, correct: bool | None, side: int = 192
             ) -> tuple[np.ndarray, int]:
    """The class's mean map, coloured at ``side``×``side``, and how many maps went in (``review.mean_map``)."""
    return engine.cached(None, "audit_mean_map", _mean, image=False, folder=folder, sig=sig, method=method,
                         label_idx=label_idx, correct=correct, side=side)


def report_html(folder: Path) -> str:
    """The review report of the audit (``cam_core.audit.report``), for the page's download button; images only
    from inside the audits folders."""
    audit = _open(str(folder))
    return build_review_report(audit, image_root=image_root(folder, audit.manifest))


def image_root(folder: Path, manifest: dict[str, Any]) -> Path | None:
    """Where the audit's images are, when that is inside the audits folders (else None: maps are shown alone)."""
    root = review.source_root(manifest, folder)
    return root if within_roots(root, audit_roots()) else None


def _tile(folder: str, sig: Sig, index: int, method: str, row: dict[str, Any]) -> tuple[Image.Image | None,
                                                                                 str | None]:
    audit = _open(folder)
    raw = audit.map(index, method) if row.get("error") is None else None
    root = image_root(Path(folder), audit.manifest)
    picture, note = overlay_image(row, raw, root, side=TILE_SIDE)
    if root is None and raw is not None:
        note = "map only: the images are outside the audits folders"
    return picture, note


def tile(folder: str, sig: Sig, index: int, method: str, row: dict[str, Any]) -> tuple[Image.Image | None,
                                                                                   str | None]:
    """The row's overlay (long side ``TILE_SIDE``) and a note when only the map could be shown."""
    return engine.cached(None, "audit_tile", _tile, image=False, entries=256, folder=folder, sig=sig, index=index,
                         method=method, _row=row)


_GOTO = "_audit_goto_inspect"
_REFUSED = "_audit_inspect_refused"


def open_in_inspect(folder: Path, manifest: dict[str, Any], row: dict[str, Any], method: str) -> None:
    """(A button's callback.) Make the row's image the session's photo and the audit's model, input size,
    method and layer the view; the next run goes to Inspect (``go_to_inspect_if_asked``). When the image
    cannot be read from here, says why under the button instead (``inspect_refused``)."""


    ss = st.session_state
    ss[_REFUSED] = None
    root = image_root(folder, manifest)
    path = review.image_path(root, row.get("path") or "")
    if path is None:
        ss[_REFUSED] = (row["index"], f"{row.get('path')}: the image is not inside the audits folders, so it "
                                      "cannot be opened here")
        return
    data = path.read_bytes()
    try:
        image = load_image(data, name=path.name)
    except CamError as exc:
        ss[_REFUSED] = (row["index"], str(exc))
        return
    show_photo(state.ImageRef(path.name, image, state.digest_of(data), data))
    model = manifest.get("model")
    if model in models.SPECS:
        set_remembered("model", model)
        size = manifest.get("input_size")
        set_remembered("size", size if size and size != models.SPECS[model].input_size else None)
    set_remembered("method", method)
    if manifest.get("layer"):
        state.remember("layer", manifest["layer"])
    state.remember("class", None)
    ss[_GOTO] = True


def inspect_refused(index: int) -> str | None:
    """Why the image ``index`` could not be opened in Inspect just now, if it could not."""
    got = st.session_state.get(_REFUSED)
    return got[1] if got and got[0] == index else None


def go_to_inspect_if_asked() -> None:
    """Switch to Inspect when an Open-in-Inspect button asked for it (call first on the page)."""
    if st.session_state.pop(_GOTO, False):
        st.switch_page("pages/inspect.py")
