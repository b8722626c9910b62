"""One audit row per image: the Arrow schema of the part files (the contract in docs/audit.md) and the columns
each chosen method adds (``M__map`` … ``M__wrong_reason``)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import CamError

FORMAT = 1
SEP = "__"  # method name + SEP + column: gradcam__map

BASE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("index", pa.int64(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("label", pa.string()),
    pa.field("label_idx", pa.int32()),
    pa.field("pred_idx", pa.int32()),
    pa.field("pred_label", pa.string()),
    pa.field("confidence", pa.float32()),
    pa.field("top5_idx", pa.list_(pa.int32())),
    pa.field("top5_prob", pa.list_(pa.float32())),
    pa.field("correct_top1", pa.bool_()),
    pa.field("correct_top5", pa.bool_()),
    pa.field("box", pa.list_(pa.float32())),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("error", pa.string()),
)

# Metric name (as on the CLI) -> the two columns it adds per method: score and verdict.
METRIC_COLUMNS = {"deletion": ("deletion", "deletion_verdict"), "insertion": ("insertion", "insertion_verdict")}


def method_fields(method: str, metrics: Sequence[str] = ()) -> list[pa.Field]:
    """The columns ``method`` adds: its raw map at the layer grid with the grid's size, its seconds, each asked
    metric's score and verdict, and the box scores (null without a box)."""
    c = lambda name: f"{method}{SEP}{name}"  # noqa: E731 - a column-name helper
    fields = [pa.field(c("map"), pa.list_(pa.float32())), pa.field(c("map_h"), pa.int32()),
              pa.field(c("map_w"), pa.int32()), pa.field(c("seconds"), pa.float32())]
    for metric in metrics:
        score, verdict = METRIC_COLUMNS[metric]
        fields += [pa.field(c(score), pa.float32()), pa.field(c(verdict), pa.string())]
    fields += [pa.field(c("pointing"), pa.bool_()), pa.field(c("energy"), pa.float32()),
               pa.field(c("wrong_reason"), pa.bool_())]
    return fields


def audit_schema(methods: Sequence[str], metrics: Sequence[str] = ()) -> pa.Schema:
    """The schema every part file of an audit with these methods and metrics has (one, so DuckDB reads them as
    one table)."""
    unknown = sorted(set(metrics) - set(METRIC_COLUMNS))
    if unknown:
        raise CamError(f"unknown audit metric(s) {unknown}; choose from {sorted(METRIC_COLUMNS)}")
    return pa.schema([*BASE_FIELDS, *(f for m in methods for f in method_fields(m, metrics))])


def column(method: str, name: str) -> str:
    """A per-method column's name: ``column("gradcam", "map")`` → ``"gradcam__map"``."""
    return f"{method}{SEP}{name}"


def base_row(index: int, path: str, label: str | None, label_idx: int | None,
             box: Sequence[float] | None, width: int | None = None, height: int | None = None,
             error: str | None = None) -> dict[str, Any]:
    """The columns every row has before the model runs (an error row is only these)."""
    return {"index": int(index), "path": path, "label": label, "label_idx": label_idx,
            "box": None if box is None else [float(v) for v in box], "width": width, "height": height,
            "error": error}


def prediction_columns(probs: Sequence[float], top_idx: Sequence[int], categories: Sequence[str],
                       label_idx: int | None) -> dict[str, Any]:
    """Top-k prediction and correctness (null without a known label) from one image's top-k softmax."""
    pred = int(top_idx[0])
    return {"pred_idx": pred, "pred_label": categories[pred], "confidence": float(probs[0]),
            "top5_idx": [int(i) for i in top_idx], "top5_prob": [float(p) for p in probs],
            "correct_top1": None if label_idx is None else pred == label_idx,
            "correct_top5": None if label_idx is None else label_idx in {int(i) for i in top_idx}}


def map_columns(method: str, raw: np.ndarray, seconds: float) -> dict[str, Any]:
    """The raw map at its own grid (row-major) with the grid's size, and the seconds it took."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2:
        raise CamError(f"{method}: a map of shape {raw.shape}; an audit stores 2-D maps only")
    return {column(method, "map"): raw.ravel().tolist(), column(method, "map_h"): int(raw.shape[0]),
            column(method, "map_w"): int(raw.shape[1]), column(method, "seconds"): float(seconds)}


def metric_columns(method: str, results: Mapping[str, Any]) -> dict[str, Any]:
    """Deletion / insertion scores and verdicts from ``evaluate``'s results (verdict null without a baseline)."""
    out: dict[str, Any] = {}
    for metric, (score, verdict) in METRIC_COLUMNS.items():
        if metric in results:
            out[column(method, score)] = float(results[metric].score)
            out[column(method, verdict)] = results[metric].verdict or None
    return out


def box_columns(method: str, pointing: bool, energy: float, correct_top1: bool | None) -> dict[str, Any]:
    """Pointing hit, energy in the box, and right-for-the-wrong-reason: correct top-1 but the peak missed the box
    (null when correctness is unknown)."""
    return {column(method, "pointing"): bool(pointing), column(method, "energy"): float(energy),
            column(method, "wrong_reason"): None if correct_top1 is None else bool(correct_top1 and not pointing)}


def box_in_input(box: Sequence[float], width: int, height: int, x_shape: Sequence[int]) -> tuple[float, ...]:
    """A box in the file's pixels (``width``×``height``) in x's pixels: preprocessing resizes the whole image, no
    crop, so each axis scales by its own factor."""
    sx, sy = x_shape[-1] / width, x_shape[-2] / height
    x0, y0, x1, y1 = (float(v) for v in box)
    return x0 * sx, y0 * sy, x1 * sx, y1 * sy
