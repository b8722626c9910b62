"""What a review asks of an audit: accuracy, per-class figures, the confusion matrix, the sure mistakes, the
right-for-the-wrong-reason cases, filtered and sorted rows and a class's mean map. Read by the review report and
the Audit page alike (plain data out; DuckDB SQL over the audit's ``rows`` view in)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import CamError
from ..render import upsample
from .rows import SEP
from .store import Audit

#: Grid the class mean map is averaged on (maps of different aspect ratios are resized to it first).
MEAN_MAP_SIDE = 32
#: Columns that describe the image rather than a score: not offered as a score range.
_NOT_SCORES = {"index", "label_idx", "pred_idx", "width", "height"}
#: Columns the gallery cannot sort by (lists).
_LISTS = ("map", "top5_idx", "top5_prob", "box")


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class Summary:
    """Counts over the audit's rows, and top-1 / top-5 accuracy over the labelled rows that did not fail."""

    rows: int
    errors: int
    labelled: int
    correct_top1: int
    correct_top5: int
    wrong_reason: dict[str, int] = field(default_factory=dict)  # method -> rows flagged
    boxed_correct: int = 0  # rows right at top-1 with a box: those the wrong-reason flag can be raised on

    @property
    def top1(self) -> float | None:
        return _ratio(self.correct_top1, self.labelled)

    @property
    def top5(self) -> float | None:
        return _ratio(self.correct_top5, self.labelled)


def summary(audit: Audit) -> Summary:
    """Rows, errors, labelled rows (with a label and no error), correct top-1 / top-5, wrong-reason flags."""
    flags = "".join(f", count(*) FILTER (WHERE {_q(m + SEP + 'wrong_reason')}) AS {_q(m)}" for m in audit.methods)
    got = audit.sql("SELECT count(*) AS n, count(error) AS errors, "
                    "count(*) FILTER (WHERE error IS NULL AND label_idx IS NOT NULL) AS labelled, "
                    "count(*) FILTER (WHERE error IS NULL AND correct_top1) AS c1, "
                    "count(*) FILTER (WHERE error IS NULL AND correct_top5) AS c5, "
                    "count(*) FILTER (WHERE error IS NULL AND correct_top1 AND box IS NOT NULL) AS boxed"
                    f"{flags} FROM rows").to_pylist()[0]
    return Summary(rows=got["n"], errors=got["errors"], labelled=got["labelled"], correct_top1=got["c1"],
                   correct_top5=got["c5"], wrong_reason={m: got[m] for m in audit.methods},
                   boxed_correct=got["boxed"])


@dataclass(frozen=True)
class ClassRow:
    """One true class: how many images, how many right at top-1 / top-5, mean confidence, the class most often
    predicted instead (and how often)."""

    label_idx: int
    label: str
    images: int
    correct_top1: int
    correct_top5: int
    mean_confidence: float
    confused_with: str | None
    confused_count: int

    @property
    def top1(self) -> float:
        return self.correct_top1 / self.images

    @property
    def top5(self) -> float:
        return self.correct_top5 / self.images


def per_class(audit: Audit) -> list[ClassRow]:
    """Per true class (labelled rows without error), in class-index order."""
    base = "FROM rows WHERE error IS NULL AND label_idx IS NOT NULL"
    classes = audit.sql(f"SELECT label_idx, any_value(label) AS label, count(*) AS n, "
                        "count(*) FILTER (WHERE correct_top1) AS c1, count(*) FILTER (WHERE correct_top5) AS c5, "
                        f"avg(confidence) AS conf {base} GROUP BY label_idx ORDER BY label_idx").to_pylist()
    wrong = audit.sql(f"SELECT label_idx, pred_label, count(*) AS n {base} AND NOT correct_top1 "
                      "GROUP BY label_idx, pred_label ORDER BY label_idx, n DESC, pred_label").to_pylist()
    top_wrong: dict[int, tuple[str, int]] = {}
    for row in wrong:
        top_wrong.setdefault(row["label_idx"], (row["pred_label"], row["n"]))
    return [ClassRow(label_idx=r["label_idx"], label=r["label"], images=r["n"], correct_top1=r["c1"],
                     correct_top5=r["c5"], mean_confidence=float(r["conf"]),
                     confused_with=top_wrong.get(r["label_idx"], (None, 0))[0],
                     confused_count=top_wrong.get(r["label_idx"], (None, 0))[1]) for r in classes]


@dataclass(frozen=True)
class Confusion:
    """``counts[i][j]``: images of true class ``classes[i]`` predicted as ``classes[j]``; ``classes`` are the
    true classes present, then the other predicted classes, each as (index, label)."""

    classes: list[tuple[int, str]]
    counts: np.ndarray

    @property
    def labels(self) -> list[str]:
        return [label for _, label in self.classes]


def confusion(audit: Audit) -> Confusion:
    """The confusion matrix over labelled rows without error (only classes that occur, not all 1000)."""
    cells = audit.sql("SELECT label_idx, any_value(label) AS label, pred_idx, any_value(pred_label) AS pred, "
                      "count(*) AS n FROM rows WHERE error IS NULL AND label_idx IS NOT NULL "
                      "GROUP BY label_idx, pred_idx").to_pylist()
    true = sorted({(c["label_idx"], c["label"]) for c in cells})
    seen = {i for i, _ in true}
    other = sorted({(c["pred_idx"], c["pred"]) for c in cells if c["pred_idx"] not in seen})
    classes = true + other
    pos = {i: k for k, (i, _) in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for c in cells:
        counts[pos[c["label_idx"]], pos[c["pred_idx"]]] += c["n"]
    return Confusion(classes=classes, counts=counts)


def confident_mistakes(audit: Audit, limit: int = 12) -> list[dict[str, Any]]:
    """The wrong top-1 predictions the model was surest of (confidence high to low, then index)."""
    return audit.sql('SELECT * EXCLUDE (top5_idx, top5_prob) FROM rows WHERE error IS NULL AND NOT correct_top1 '
                     'ORDER BY confidence DESC, "index" LIMIT ?', [int(limit)]).to_pylist()


def wrong_reason_cases(audit: Audit, method: str, limit: int = 12) -> list[dict[str, Any]]:
    """Rows right at top-1 whose ``method`` map peaks outside the box, most confident first."""
    _method(audit, method)
    return audit.sql(f'SELECT * FROM rows WHERE error IS NULL AND {_q(method + SEP + "wrong_reason")} '
                     'ORDER BY confidence DESC, "index" LIMIT ?', [int(limit)]).to_pylist()


def errors(audit: Audit, limit: int = 50) -> list[dict[str, Any]]:
    """The rows that failed (path and message), in index order."""
    return audit.sql('SELECT "index", path, error FROM rows WHERE error IS NOT NULL ORDER BY "index" LIMIT ?',
                     [int(limit)]).to_pylist()


def _method(audit: Audit, method: str) -> None:
    if method not in audit.methods:
        raise CamError(f"this audit has no {method!r} maps; it has {', '.join(audit.methods) or 'none'}")


def score_columns(audit: Audit) -> list[str]:
    """Numeric columns a person can filter on by range or sort by (confidence, timings, scores)."""
    numeric = (pa.types.is_floating, pa.types.is_integer)
    return [f.name for f in audit.schema
            if any(t(f.type) for t in numeric) and f.name not in _NOT_SCORES and not f.name.endswith(("_h", "_w"))]


def sort_columns(audit: Audit) -> list[str]:
    """Every column the gallery can be sorted by (not the list-valued ones)."""
    return [f.name for f in audit.schema if not f.name.endswith(_LISTS)]


@dataclass(frozen=True)
class Filters:
    """What to keep: a true class (index), correct / incorrect top-1, a confidence range, ranges on any score
    column, only right-for-the-wrong-reason rows of a method. ``None`` keeps everything."""

    label_idx: int | None = None
    correct: bool | None = None
    confidence: tuple[float, float] | None = None
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    wrong_reason: str | None = None  # method name
    errors: bool = False  # keep failed rows too


def _where(audit: Audit, f: Filters) -> tuple[str, list[Any]]:
    clauses: list[str] = [] if f.errors else ["error IS NULL"]
    params: list[Any] = []
    if f.label_idx is not None:
        clauses.append("label_idx = ?")
        params.append(int(f.label_idx))
    if f.correct is not None:
        clauses.append("correct_top1 = ?")
        params.append(bool(f.correct))
    ranges = dict(f.ranges)
    if f.confidence is not None:
        ranges["confidence"] = f.confidence
    allowed = set(score_columns(audit))
    for column, (lo, hi) in ranges.items():
        if column not in allowed:
            raise CamError(f"cannot filter on {column!r}; choose from {', '.join(sorted(allowed))}")
        clauses.append(f"{_q(column)} BETWEEN ? AND ?")
        params += [float(lo), float(hi)]
    if f.wrong_reason is not None:
        _method(audit, f.wrong_reason)
        clauses.append(_q(f.wrong_reason + SEP + "wrong_reason"))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def select(audit: Audit, filters: Filters = Filters(), order_by: str = "index", descending: bool = False,
           limit: int = 48, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """How many rows pass ``filters``, and one page of them (maps left out) sorted by ``order_by``."""
    if order_by not in sort_columns(audit):
        raise CamError(f"cannot sort by {order_by!r}; choose from {', '.join(sort_columns(audit))}")
    where, params = _where(audit, filters)
    total = int(audit.sql(f"SELECT count(*) AS n FROM rows{where}", params)["n"][0].as_py())
    maps = ", ".join(_q(m + SEP + "map") for m in audit.methods)
    exclude = f" EXCLUDE ({maps})" if maps else ""
    direction = "DESC" if descending else "ASC"
    page = audit.sql(f'SELECT *{exclude} FROM rows{where} ORDER BY {_q(order_by)} {direction} NULLS LAST, '
                     f'"index" LIMIT ? OFFSET ?', [*params, int(limit), int(offset)]).to_pylist()
    return total, page


def unit_map(raw: np.ndarray) -> np.ndarray:
    """A raw map scaled to [0, 1] by its peak (negatives clipped); a blank map stays zeros."""
    arr = np.nan_to_num(np.asarray(raw, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    peak = float(arr.max()) if arr.size else 0.0
    return arr / peak if peak > 1e-12 else np.zeros_like(arr)


def mean_map(audit: Audit, method: str, label_idx: int | None = None, *, correct: bool | None = None,
             side: int = MEAN_MAP_SIDE) -> tuple[np.ndarray, int]:
    """The mean of the class's maps (each scaled to [0, 1] and resized to ``side``×``side``) and how many went in.
    ``label_idx`` None: every labelled-or-not row without error."""
    _method(audit, method)
    where, params = _where(audit, Filters(label_idx=label_idx, correct=correct))
    c = lambda name: _q(method + SEP + name)  # noqa: E731
    rows = audit.sql(f"SELECT {c('map')} AS m, {c('map_h')} AS h, {c('map_w')} AS w FROM rows{where}"
                     f" AND {c('map')} IS NOT NULL", params).to_pylist()
    total = np.zeros((side, side), dtype=np.float64)
    for row in rows:
        grid = np.asarray(row["m"], dtype=np.float32).reshape(row["h"], row["w"])
        total += upsample(unit_map(grid), (side, side))
    return (total / len(rows)).astype(np.float32) if rows else total.astype(np.float32), len(rows)


def source_root(manifest: Mapping[str, Any], folder: Path) -> Path | None:
    """The folder the rows' ``path`` values are relative to: the data folder, or a CSV's folder; an audit made
    from an upload keeps its images in ``images/`` inside the audit folder."""
    inside = folder / "images"
    if inside.is_dir():
        return inside.resolve()
    source = manifest.get("source")
    if not source:
        return None
    src = Path(str(source)).expanduser()
    if not src.is_absolute():
        src = Path.cwd() / src
    src = src.resolve()
    return src.parent if src.is_file() else src


def image_path(root: Path | None, path: str) -> Path | None:
    """The image file for a row's ``path`` under ``root``, or None when it is missing or would leave ``root``."""
    if root is None or not path:
        return None
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def class_names(audit: Audit) -> Sequence[tuple[int, str]]:
    """The true classes present (index, label), in index order."""
    rows = audit.sql("SELECT DISTINCT label_idx, label FROM rows WHERE label_idx IS NOT NULL "
                     "ORDER BY label_idx").to_pylist()
    return [(r["label_idx"], r["label"]) for r in rows]
