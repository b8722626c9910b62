"""One audit row per image: the Arrow schema of the part files (the contract in docs/audit.md) and the columns
each chosen method adds (``M__map`` … ``M__wrong_reason``)."""
from __future__ import annotations

from collections.abc import Sequence

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
