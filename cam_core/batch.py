"""Explain many images in one go: safe ZIP reading, one result (or one error) per file, and the
downloads a batch produces (a ZIP of overlay PNGs and a CSV of predictions).

A broken file never stops the batch: its ``BatchResult`` carries the one-line error instead of a map.
"""
from __future__ import annotations

import csv
import io
import logging
import re
import struct
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from .errors import CamError
from .explain import explain
from .imaging import load_image
from .metrics import evaluate
from .render import overlay, to_png_bytes

log = logging.getLogger("cam_explorer.batch")

#: At most this many images in one batch (uploads and ZIP members together).
MAX_ITEMS = 200
#: A ZIP whose members declare more than this in total (uncompressed) is refused (zip bomb).
MAX_TOTAL_BYTES = 512 * 1024 * 1024
#: One member over this (uncompressed) becomes that file's error; the others go on.
MAX_MEMBER_BYTES = 50 * 1024 * 1024
#: A ZIP whose table of contents (central directory) is larger than this is refused before it is parsed:
#: ``zipfile`` builds one object per entry, and a 400 MB upload can list millions of empty ones (seconds of
#: CPU and gigabytes). 200 files with long names and macOS's ``__MACOSX`` twins need well under 200 KB.
MAX_DIRECTORY_BYTES = 1024 * 1024
#: Long side, in pixels, of the copy of each image kept for the gallery and the overlay ZIP.
KEEP_SIDE = 1024
#: Columns of the predictions CSV, in order.
CSV_COLUMNS = ("file", "label", "class_idx", "prob", "method", "layer", "error")

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_UNSAFE = re.compile(r"[^\w.\- ()+]+", re.UNICODE)


@dataclass(frozen=True)
class Item:
    """One file of a batch: its sanitized ``name`` and its bytes, or the ``error`` that made it unreadable."""

    name: str
    data: bytes = field(repr=False)
    error: str | None = None


@dataclass
class BatchResult:
    """One file's outcome: the top-1 class, its probability and heat map, or ``error`` (one line)."""

    name: str
    method: str
    layer: str | None = None
    label: str | None = None
    class_idx: int | None = None
    prob: float | None = None
    heatmap: np.ndarray | None = field(default=None, repr=False)
    image: Image.Image | None = field(default=None, repr=False)  # the image, long side ≤ KEEP_SIDE
    elapsed_ms: float = 0.0
    error: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # metric name -> score (cam_core.evaluate)

    @property
    def ok(self) -> bool:
        return self.error is None


def sanitize_name(name: str, fallback: str = "image") -> str:
    """A safe base file name: no folders, no control or shell characters, at most 120 characters."""
    base = PurePosixPath(str(name).replace("\\", "/")).name
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" .")
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 120 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else base[:120]
    return base or fallback


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``stem (2).ext``, ``stem (3).ext``… so that no two files of a batch share a name."""
    if name not in taken:
        taken.add(name)
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    n = 2
    while True:
        candidate = f"{stem} ({n}){dot}{ext}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate
        n += 1


def is_zip(name: str, data: bytes) -> bool:
    """True for a ZIP archive (by its first bytes, or by a ``.zip`` name)."""
    return data[:4] in _ZIP_MAGIC or name.lower().endswith(".zip")


def _skipped(info: zipfile.ZipInfo) -> bool:
    """Folders, macOS resource forks and hidden files (``.DS_Store``) are not images."""
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    return info.is_dir() or any(p == "__MACOSX" for p in parts) or not parts or parts[-1].startswith(".")


def open_zip(data: bytes, name: str, max_members: int, per: str = "per batch") -> zipfile.ZipFile:
    """The archive opened, after its table of contents was checked against ``MAX_DIRECTORY_BYTES`` (``zipfile``
    parses all of it on opening); ``CamError`` when it is too large or not a readable ZIP."""
    directory = _directory_bytes(data)
    if directory is not None and directory > MAX_DIRECTORY_BYTES:
        raise CamError(f"{name}: its table of contents is {directory / 2**20:,.1f} MB, room for far more than "
                       f"{max_members} files (the limit {per}); refused before reading it")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise CamError(f"{name}: not a readable ZIP archive ({exc})") from None


def check_declared(name: str, members: Iterable[zipfile.ZipInfo], max_total_bytes: int) -> None:
    """``CamError`` when the members declare more than ``max_total_bytes`` uncompressed (a possible zip bomb)."""
    declared = sum(info.file_size for info in members)
    if declared > max_total_bytes:
        raise CamError(f"{name}: {declared / 2**20:,.0f} MB uncompressed, over the "
                       f"{max_total_bytes / 2**20:,.0f} MB limit (refused as a possible zip bomb)")


def read_zip(data: bytes, name: str = "archive.zip", *, max_members: int = MAX_ITEMS,
             max_total_bytes: int = MAX_TOTAL_BYTES, max_member_bytes: int = MAX_MEMBER_BYTES) -> list[Item]:
    """The files inside a ZIP, as ``Item``s with sanitized, unique names (folders and ``__MACOSX`` skipped).

    Refused with ``CamError`` when it is not a ZIP, has a table of contents over ``MAX_DIRECTORY_BYTES``,
    more than ``max_members`` files, or declares more than ``max_total_bytes`` uncompressed. A member that is
    encrypted, over ``max_member_bytes``, a ZIP itself, or decompresses to more than it declared becomes an
    ``Item`` with ``error`` set; the others are kept.
    """
    with open_zip(data, name, max_members) as archive:
        members = [info for info in archive.infolist() if not _skipped(info)]
        if len(members) > max_members:
            raise CamError(f"{name}: {len(members)} files, over the limit of {max_members} per batch")
        check_declared(name, members, max_total_bytes)
        items: list[Item] = []
        taken: set[str] = set()
        for info in members:
            member = _unique(sanitize_name(info.filename), taken)
            items.append(_read_member(archive, info, member, max_member_bytes))
    return items


def _directory_bytes(data: bytes) -> int | None:
    """The size of the archive's central directory, from its end record (ZIP64 too), or None if there is none.

    ``zipfile`` parses exactly this many bytes when it opens the archive, one object per entry.
    """
    end_record = getattr(zipfile, "_EndRecData", None)  # what ZipFile itself reads first; private, so guarded
    if end_record is None:  # pragma: no cover - a Python without it: zipfile's own parse is the only check
        return None
    try:
        record = end_record(io.BytesIO(data))
    except (OSError, ValueError, struct.error, zipfile.BadZipFile):
        return None
    return int(record[zipfile._ECD_SIZE]) if record else None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, limit: int) -> Item:
    if info.flag_bits & 0x1:
        return Item(name, b"", f"{name}: encrypted ZIP member (cannot read it)")
    if info.file_size > limit:
        return Item(name, b"", f"{name}: {info.file_size / 2**20:,.0f} MB uncompressed, over the "
                               f"{limit / 2**20:,.0f} MB limit per file")
    try:
        with archive.open(info) as fh:
            # Read at most one byte past what the header declares: a lying header cannot inflate us.
            content = fh.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
        return Item(name, b"", f"{name}: cannot extract from the ZIP ({exc})")
    if len(content) > info.file_size:
        return Item(name, b"", f"{name}: decompresses to more than its declared size (refused)")
    if is_zip(name, content):
        return Item(name, b"", f"{name}: a ZIP inside the ZIP, which is not opened; put its images in the outer "
                               "archive or upload it on its own")
    return Item(name, content)


def gather(files: Iterable[tuple[str, bytes]], *, max_items: int = MAX_ITEMS) -> list[Item]:
    """The batch's items from uploaded files: images pass through, ZIP archives are expanded (``read_zip``).

    An archive that is refused (not a ZIP, a zip bomb, too many files) becomes one ``Item`` with its error and
    the other files go on. Names are sanitized and made unique across the batch; more than ``max_items`` files
    in all raise ``CamError``.
    """
    items: list[Item] = []
    for raw_name, data in files:
        name = sanitize_name(raw_name)
        if is_zip(name, data):
            try:
                items.extend(read_zip(data, name, max_members=max_items))
            except CamError as exc:
                items.append(Item(name, b"", str(exc)))
        else:
            items.append(Item(name, data))
        if len(items) > max_items:
            raise CamError(f"{len(items)} or more images, over the limit of {max_items} per batch")
    taken: set[str] = set()
    return [Item(_unique(it.name, taken), it.data, it.error) for it in items]


def explain_item(item: Item, model: nn.Module, preprocess: Callable[[Image.Image], Any],
                 categories: Sequence[str], method: str, layer: str | None = None,
                 params: dict[str, Any] | None = None, *, keep_side: int = KEEP_SIDE,
                 metrics: Sequence[str] = (), settings: dict[str, Any] | None = None) -> BatchResult:
    """Decode ``item`` and explain its top-1 class with ``method``, then score the map with ``metrics``
    (``cam_core.evaluate``); any failure becomes ``error`` (one line)."""
    started = time.perf_counter()
    result = BatchResult(item.name, method)
    if item.error is not None:
        result.error = item.error
        return result
    try:
        image = load_image(item.data, name=item.name)
        x = preprocess(image)
        exp = explain(model, x, method, layer, None, **dict(params or {}))
        if metrics:
            scored = evaluate(model, x, exp, tuple(metrics), exp.class_idx, **dict(settings or {}))
            result.scores = {name: float(r.score) for name, r in scored.items()}
        result.layer, result.class_idx, result.prob = exp.layer, exp.class_idx, exp.prob
        if exp.class_idx is not None:
            result.label = categories[exp.class_idx] if exp.class_idx < len(categories) else f"class {exp.class_idx}"
        result.heatmap = exp.heatmap
        kept = image.copy()
        kept.thumbnail((keep_side, keep_side), Image.Resampling.LANCZOS)
        result.image = kept
    except CamError as exc:
        message = str(exc)
        result.error = message if message.startswith(item.name) else f"{item.name}: {message}"
        log.warning("batch: %s", result.error, exc_info=exc)
    except Exception as exc:  # our bug, not the person's: one line here, the traceback in the log
        log.exception("batch: %s failed", item.name)
        result.error = f"{item.name}: unexpected {type(exc).__name__} ({str(exc).splitlines()[0][:160] if str(exc) else ''})"
    result.elapsed_ms = (time.perf_counter() - started) * 1000.0
    return result


def run_batch(items: Sequence[Item], model: nn.Module, preprocess: Callable[[Image.Image], Any],
              categories: Sequence[str], method: str, layer: str | None = None,
              params: dict[str, Any] | None = None, *,
              progress: Callable[[int, int], None] | None = None, metrics: Sequence[str] = (),
              settings: dict[str, Any] | None = None) -> list[BatchResult]:
    """``explain_item`` for every item in order, calling ``progress(done, total)`` after each."""
    results = []
    for i, item in enumerate(items):
        results.append(explain_item(item, model, preprocess, categories, method, layer, params, metrics=metrics,
                                    settings=settings))
        if progress is not None:
            progress(i + 1, len(items))
    return results


def overlay_name(name: str) -> str:
    """The overlay PNG's name for an input file: ``cat.jpg`` → ``cat_overlay.png``."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{stem}_overlay.png"


def overlays_zip(results: Sequence[BatchResult], alpha: float = 0.5, cmap: str = "jet") -> bytes:
    """A ZIP holding one overlay PNG per successful result (files that failed are listed in the CSV)."""
    buf = io.BytesIO()
    taken: set[str] = set()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for r in results:
            if r.ok and r.image is not None and r.heatmap is not None:
                png = to_png_bytes(overlay(r.image, r.heatmap, alpha, cmap))
                archive.writestr(_unique(overlay_name(r.name), taken), png)
    return buf.getvalue()


def predictions_csv(results: Sequence[BatchResult]) -> str:
    """The predictions as CSV text: one row per file (``CSV_COLUMNS``, then one column per metric scored), the
    error column filled for failures; with metrics, a last row ``mean`` holds each metric's mean over the files."""
    metric_names = list(dict.fromkeys(name for r in results for name in r.scores))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *metric_names])
    for r in results:
        writer.writerow([r.name, r.label or "", "" if r.class_idx is None else r.class_idx,
                         "" if r.prob is None else f"{r.prob:.6f}", r.method, r.layer or "", r.error or "",
                         *(f"{r.scores[m]:.6f}" if m in r.scores else "" for m in metric_names)])
    if metric_names:
        means = []
        for m in metric_names:
            values = [r.scores[m] for r in results if m in r.scores]
            means.append(f"{sum(values) / len(values):.6f}" if values else "")
        writer.writerow(["mean", "", "", "", "", "", "", *means])
    return out.getvalue()
