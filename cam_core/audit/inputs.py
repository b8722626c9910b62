"""An audit's image set: an ImageFolder (one subfolder per class), a CSV (``path,label`` and an optional box
``x0,y0,x1,y1`` in the image's pixels) or a plain folder (no labels: correctness unknown) — a local path, or a
URI (``s3://…``, ``gs://…``, ``file://…``) listed and read through ``pyarrow.fs`` (``location.py``).

Labels match the model's category names (exact, then case-insensitive) or, given ``wnids``, ImageNet WordNet
IDs (Imagenette's folder names). Unknown names are reported once each, with the closest labels.
"""
from __future__ import annotations

import csv
import difflib
import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import CamError
from . import location
from .location import is_uri

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class InputItem:
    """One image to audit: ``path`` (absolute), ``name`` (relative to the data root, the row's key), the label
    as written, its class index (``None`` when unlabelled or unknown) and the box in the image's pixels."""

    path: str
    name: str
    label: str | None = None
    label_idx: int | None = None
    box: tuple[float, float, float, float] | None = None


@dataclass
class AuditInputs:
    """The items (each path once, in a stable order), the layout found, and one message per unknown label."""

    items: list[InputItem]
    layout: str  # "imagefolder", "csv" or "folder"
    root: str
    unknown: dict[str, list[str]] = field(default_factory=dict)  # label as written -> closest model labels
    duplicates: int = 0  # CSV lines naming a path already listed (kept once)

    @property
    def messages(self) -> list[str]:
        return [f"label {name!r} is not one of the model's labels" + (f"; closest: {', '.join(near)}" if near else "")
                for name, near in self.unknown.items()]


class _Labels:
    """Label text -> class index, remembering each unknown name once with its closest labels."""

    def __init__(self, categories: Sequence[str], wnids: Sequence[str] | None) -> None:
        self.categories = list(categories)
        self.exact = {c: i for i, c in enumerate(self.categories)}
        folded: dict[str, list[int]] = {}
        for i, c in enumerate(self.categories):
            folded.setdefault(c.lower(), []).append(i)
        self.folded = {k: v[0] for k, v in folded.items() if len(v) == 1}
        self.wnids = {w: i for i, w in enumerate(wnids or ())}
        self.unknown: dict[str, list[str]] = {}

    def __call__(self, text: str | None) -> int | None:
        if text is None or not text.strip():
            return None
        text = text.strip()
        for table, key in ((self.exact, text), (self.wnids, text), (self.folded, text.lower())):
            if key in table:
                return table[key]
        if text not in self.unknown:
            self.unknown[text] = difflib.get_close_matches(text, self.categories, n=3, cutoff=0.5)
        return None


def _image_name(name: str) -> bool:
    """An image by its file name: a known suffix, not hidden."""
    base = PurePosixPath(name).name
    return PurePosixPath(base).suffix.lower() in IMAGE_SUFFIXES and not base.startswith(".")


def _is_image(p: Path) -> bool:
    return p.is_file() and _image_name(p.name)


def _box(row: dict[str, str], where: str) -> tuple[float, float, float, float] | None:
    cells = [row.get(k) for k in ("x0", "y0", "x1", "y1")]
    if all(c is None or not str(c).strip() for c in cells):
        return None
    try:
        values = tuple(float(c) for c in cells)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CamError(f"{where}: the box x0,y0,x1,y1 must be four numbers, got {cells}") from None
    x0, y0, x1, y1 = values
    if not all(math.isfinite(v) for v in values) or not (x0 < x1 and y0 < y1):
        raise CamError(f"{where}: the box needs finite x0 < x1 and y0 < y1, got {cells}")
    return values


def _read_csv(text: str, where: str, locate: Callable[[str], str], labels: _Labels) -> tuple[list[InputItem], int]:
    """The items of a CSV list's ``text`` (``where``: its name in messages; ``locate``: a path as written → the
    file to read)."""
    items, seen, duplicates = [], set(), 0
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "path" not in reader.fieldnames:
        raise CamError(f"{where}: a CSV audit list needs a header with a 'path' column "
                       "(and optionally label, x0, y0, x1, y1)")
    for line, row in enumerate(reader, start=2):
        written = (row.get("path") or "").strip()
        if not written:
            continue
        name = written if is_uri(written) else Path(written).as_posix()
        if name in seen:
            duplicates += 1
            continue
        seen.add(name)
        label = (row.get("label") or "").strip() or None
        items.append(InputItem(locate(written), name, label, labels(label), _box(row, f"{where}:{line}")))
    return items, duplicates


def _read_uri(source: str, labels: _Labels) -> AuditInputs:
    """The image set at a URI (``s3://``, ``gs://``, ``file://``, …), listed and read through ``pyarrow.fs``
    with the same layouts, names and order as a local folder."""
    source = source.rstrip("/")
    found = location.kind(source)
    if found == "file" and source.lower().endswith(".csv"):
        folder = location.parent(source)
        items, duplicates = _read_csv(location.read_text(source), PurePosixPath(source).name,
                                      functools.partial(location.locate, folder), labels)
        return AuditInputs(items, "csv", folder, labels.unknown, duplicates)
    if found != "dir":
        raise CamError(f"{source}: neither a folder of images nor a .csv list")
    entries = location.listing(source)
    classes = [n for n, folder in entries if folder and "/" not in n and not n.startswith(".")]
    if classes:
        files = [n for n, folder in entries if not folder and _image_name(n)]
        items = [InputItem(location.join(source, n), n, c, labels(c)) for c in classes for n in files
                 if n.startswith(c + "/")]
        return AuditInputs(items, "imagefolder", source, labels.unknown)
    items = [InputItem(location.join(source, n), n) for n, folder in entries
             if not folder and "/" not in n and _image_name(n)]
    return AuditInputs(items, "folder", source)


def read_inputs(source: str | Path, categories: Sequence[str], wnids: Sequence[str] | None = None) -> AuditInputs:
    """The image set at ``source`` (a CSV file or a folder), labels matched against ``categories``."""
    labels = _Labels(categories, wnids)
    if is_uri(str(source)):
        return _read_uri(str(source), labels)
    root = Path(source)
    if root.is_file() and root.suffix.lower() == ".csv":
        folder = root.parent
        items, duplicates = _read_csv(root.read_bytes().decode("utf-8-sig"), root.name,
                                      lambda p: p if is_uri(p) else str((folder / p).resolve()), labels)
        return AuditInputs(items, "csv", str(root.parent.resolve()), labels.unknown, duplicates)
    if not root.is_dir():
        raise CamError(f"{source}: neither a folder of images nor a .csv list")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes:
        items = [InputItem(str(f.resolve()), f.relative_to(root).as_posix(), d.name, labels(d.name))
                 for d in classes for f in sorted(d.rglob("*")) if _is_image(f)]
        return AuditInputs(items, "imagefolder", str(root.resolve()), labels.unknown)
    items = [InputItem(str(f.resolve()), f.name) for f in sorted(root.iterdir()) if _is_image(f)]
    return AuditInputs(items, "folder", str(root.resolve()))
