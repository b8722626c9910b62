"""Does the map fall on the object? Pointing game and energy-in-box, for a box a person gives.

No model run: both read the map and the box ``(x0, y0, x1, y1)`` in x's pixel coordinates, pixel edges (the
pixel in column ``c`` spans ``[c, c + 1)``; a box ``(0, 0, W, H)`` covers the whole image, like a slice).

- Pointing game (Zhang et al., Top-down Neural Attention by Excitation Backprop, ECCV 2016): the map's
  maximum (the first in row-major order when several pixels share it) is a hit when its pixel centre lies
  within ``tolerance`` pixels (default 15, the paper's) of the box. Score 1 for a hit, 0 for a miss.
- Energy-in-box (the energy-based pointing game of Wang et al., Score-CAM, CVPR-W 2020): the share of the
  map's mass, negative values counted as 0, on the pixels whose centres are inside the box.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import CamError
from .common import Context, Measured, Plan
from .result import MetricResult


def check_box(box: Any, height: int, width: int) -> tuple[float, float, float, float]:
    """``box`` as four finite floats with x0 < x1, y0 < y1, overlapping the image; else a ``CamError``."""
    if box is None:
        raise CamError("the pointing game and energy-in-box need the object's box: box=(x0, y0, x1, y1) in x's pixels")
    try:
        values = [float(v) for v in box] if isinstance(box, Sequence) and not isinstance(box, str) else None
    except (TypeError, ValueError):
        values = None
    if values is None or len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise CamError(f"box must be four numbers (x0, y0, x1, y1) in x's pixels, got {box!r}")
    x0, y0, x1, y1 = values
    if not (x0 < x1 and y0 < y1):
        raise CamError(f"box (x0, y0, x1, y1) needs x0 < x1 and y0 < y1, got {box!r}")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise CamError(f"box {box!r} lies outside the {width}×{height} image (x's pixel coordinates)")
    return x0, y0, x1, y1


def inside_box(height: int, width: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """H×W bool: pixels whose centres lie inside the box."""
    x0, y0, x1, y1 = box
    cols = np.arange(width) + 0.5
    rows = np.arange(height) + 0.5
    return ((rows >= y0) & (rows <= y1))[:, None] & ((cols >= x0) & (cols <= x1))[None, :]


def distance_to_box(col: int, row: int, box: tuple[float, float, float, float]) -> float:
    """Distance in pixels from the centre of pixel (row, col) to the box (0 inside)."""
    x0, y0, x1, y1 = box
    cx, cy = col + 0.5, row + 0.5
    return math.hypot(max(x0 - cx, 0.0, cx - x1), max(y0 - cy, 0.0, cy - y1))


def plan(ctx: Context, wanted: set[str]) -> Plan:
    heat = ctx.heat
    height, width = heat.shape
    box = check_box(ctx.settings["box"], height, width)
    tolerance = float(ctx.settings["tolerance"])

    def finish(_m: Measured) -> dict[str, MetricResult]:
        out = {}
        if "pointing_game" in wanted:
            flat = int(np.argmax(heat))
            row, col = divmod(flat, width)
            peak = heat.flat[flat]
            notes, distance = [], distance_to_box(col, row, box)
            ties = int(np.count_nonzero(heat == peak))
            if heat.max() == heat.min():
                notes.append("the map is constant: it points nowhere, counted as a miss")
                hit = False
            else:
                hit = distance <= tolerance
                if ties > 1:
                    notes.append(f"{ties} pixels share the maximum; the first in row-major order was used")
            out["pointing_game"] = MetricResult(
                "pointing_game", float(hit), None, EXPLANATIONS["pointing_game"], True, None,
                details={"point": (col, row), "distance": distance, "tolerance": tolerance, "box": box,
                         "ties_at_max": ties}, notes=notes)
        if "energy_in_box" in wanted:
            mass = np.clip(heat, 0.0, None)
            total = float(mass.sum())
            notes = []
            if total > 0:
                share = float(mass[inside_box(height, width, box)].sum()) / total
            else:
                share = 0.0
                notes.append("the map is blank: no energy anywhere, scored 0")
            if (heat < 0).any():
                notes.append("negative map values count as no energy")
            out["energy_in_box"] = MetricResult(
                "energy_in_box", share, None, EXPLANATIONS["energy_in_box"], True, None,
                details={"box": box, "box_pixels": int(inside_box(height, width, box).sum())}, notes=notes)
        return out

    return Plan([], finish)


EXPLANATIONS = {
    "pointing_game": "1 if the map's strongest pixel is on the given box (within the tolerance), else 0: "
                     "higher is better.",
    "energy_in_box": "Share of the map's total mass inside the given box (0–1): higher is better — the larger the "
                     "box's share of the image, the higher a blind map scores too.",
}
