"""The Occlusion page's computations: where each occluder window lies on the photo, the probe, the colours.

The engine (``methods/occlusion.py``) places windows every ``stride`` input pixels plus one flush with
the far edge, so every pixel is probed. Drawing one cell per window *centred* on it would leave a band
of ``patch / 2`` pixels at each edge empty; ``cell_edges`` instead tiles the whole side, from 0 to the
edge, with cell boundaries half-way between neighbouring centres. Coordinates go between the model
input (where windows live) and the uploaded photo (where the person clicks) by a pure rescale, as the
whole image is preprocessed without a crop.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .methods.occlusion import fill_tensor, occlude
from .predict import Prediction, predict
from .registry import get_method


def defaults() -> dict[str, Any]:
    """Occlusion's default ``patch``, ``stride`` and ``fill`` — read from the method registry, their one home."""
    return {name: spec.default for name, spec in get_method("occlusion").params.items()
            if spec.default is not None}


def centres(starts: Sequence[int], patch: int) -> np.ndarray:
    """Window centres (input pixels) for windows starting at ``starts``."""
    return np.asarray(starts, dtype=np.float64) + patch / 2.0


def cell_edges(starts: Sequence[int], patch: int, length: int) -> np.ndarray:
    """``len(starts) + 1`` cell boundaries (input pixels) that tile ``[0, length]``: the first cell starts at
    0, the last ends at ``length``, the others meet half-way between neighbouring window centres."""
    c = centres(starts, patch)
    inner = (c[:-1] + c[1:]) / 2.0
    return np.concatenate([[0.0], inner, [float(length)]])


def to_photo(values: Any, input_len: int, photo_len: int) -> np.ndarray:
    """Input-pixel coordinates along one axis → the photo's pixels (a pure rescale)."""
    return np.asarray(values, dtype=np.float64) * (photo_len / input_len)


def window_at(x: float, y: float, photo_size: tuple[int, int], input_hw: tuple[int, int],
              patch: int) -> tuple[int, int]:
    """(top, left) in input pixels of the ``patch`` window centred as near as it fits to photo point (x, y).

    ``photo_size`` is (width, height) like PIL's ``Image.size``; ``input_hw`` is the model input's (h, w).
    """
    w, h = photo_size
    in_h, in_w = input_hw
    top = round(y * in_h / h - patch / 2)
    left = round(x * in_w / w - patch / 2)
    return int(min(max(top, 0), max(in_h - patch, 0))), int(min(max(left, 0), max(in_w - patch, 0)))


def probe(model: nn.Module, x: torch.Tensor, top: int, left: int, patch: int, fill: Any,
          categories: Sequence[str] | None = None, k: int = 5) -> list[Prediction]:
    """The top-``k`` predictions with the ``patch`` square at (top, left) of ``x`` (input pixels) set to ``fill``."""
    return predict(model, occlude(x, top, left, patch, fill_tensor(fill, x)), categories, top=k)


def fill_rgb(fill: Any, black: Sequence[float], white: Sequence[float]) -> tuple[int, int, int]:
    """The occluder's colour on screen (0–255 per channel): ``fill`` in normalized space mapped back, given
    what black and white normalize to (``Backbone.fill_value((0, 0, 0))`` and ``((255, 255, 255))``)."""
    lo = np.asarray(black, dtype=np.float64)
    hi = np.asarray(white, dtype=np.float64)
    v = np.broadcast_to(np.asarray(fill, dtype=np.float64), lo.shape)
    rgb = np.clip(np.rint((v - lo) / (hi - lo) * 255.0), 0, 255).astype(int)
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def prob_top(extras: dict[str, Any]) -> float:
    """The top of the probability map's colour scale: the highest probability, occluded or not (≥ 1e-6)."""
    return max(float(np.nanmax(extras["prob_grid"])), float(extras["base_prob"]), 1e-6)


def winning_classes(top_class_grid: Any) -> tuple[list[int], list[list[int]]]:
    """Classes that win somewhere, most frequent first, and the grid as indices into that list."""
    grid = np.asarray(top_class_grid)
    classes, counts = np.unique(grid, return_counts=True)
    classes = classes[np.argsort(-counts, kind="stable")]
    index = {int(c): i for i, c in enumerate(classes)}
    return [int(c) for c in classes], [[index[int(c)] for c in row] for row in grid.tolist()]


@dataclass(frozen=True)
class Grid:
    """The occlusion grid of one run in the photo's pixels: cell edges (for drawing) and centres (for clicks)."""

    x_edges: np.ndarray
    y_edges: np.ndarray
    x_centres: np.ndarray
    y_centres: np.ndarray

    def points(self) -> tuple[list[float], list[float]]:
        """Every window centre as flat x and y lists, row by row (for click targets)."""
        return ([float(x) for _ in self.y_centres for x in self.x_centres],
                [float(y) for y in self.y_centres for _ in self.x_centres])


def photo_grid(extras: dict[str, Any], input_hw: tuple[int, int], photo_size: tuple[int, int]) -> Grid:
    """The grid of an occlusion ``Explanation.extras`` (``rows``, ``cols``, ``patch``) on the photo."""
    in_h, in_w = input_hw
    w, h = photo_size
    patch = int(extras["patch"])
    rows, cols = extras["rows"], extras["cols"]
    return Grid(x_edges=to_photo(cell_edges(cols, patch, in_w), in_w, w),
                y_edges=to_photo(cell_edges(rows, patch, in_h), in_h, h),
                x_centres=to_photo(centres(cols, patch), in_w, w),
                y_centres=to_photo(centres(rows, patch), in_h, h))
