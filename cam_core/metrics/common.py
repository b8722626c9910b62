"""What every metric family shares: the checked inputs, the plan a family hands back, chained variants."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..batching import Variants
from ..errors import CamError
from .result import MetricResult


def one_image(x: Any) -> torch.Tensor:
    """``x`` as 1×C×H×W (a C×H×W image gets its batch axis); a batch of several images is refused."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        raise CamError("x must be one preprocessed image tensor of shape 3×H×W or 1×3×H×W")
    x = x[None] if x.dim() == 3 else x
    if x.shape[0] != 1:
        raise CamError(f"evaluate scores one image at a time; x holds {x.shape[0]} (pass x[i:i+1])")
    if not x.is_floating_point():
        raise CamError("x must be a float tensor (the preprocessed image)")
    if not torch.isfinite(x).all():
        raise CamError("x contains NaN or Inf: preprocess the image again")
    return x.detach()


def heatmap_array(heatmap: Any, x: torch.Tensor) -> np.ndarray:
    """The map as float64 H×W at x's resolution; another shape, NaN or Inf is a ``CamError``."""
    if isinstance(heatmap, torch.Tensor):
        heatmap = heatmap.detach().cpu().numpy()
    try:
        heat = np.asarray(heatmap, dtype=np.float64)
    except (TypeError, ValueError):
        raise CamError("the heat map must be an H×W array of numbers") from None
    size = tuple(x.shape[-2:])
    if heat.shape != size:
        raise CamError(f"the heat map is {'×'.join(map(str, heat.shape)) or 'a scalar'}; it must be "
                       f"{size[0]}×{size[1]}, x's height×width (Explanation.heatmap is)")
    if not np.isfinite(heat).all():
        raise CamError("the heat map contains NaN or Inf; recompute it")
    return heat


@dataclass
class Context:
    """One evaluation's checked inputs: the image (on the model's device), the map, every setting."""

    x: torch.Tensor
    heat: np.ndarray
    settings: dict[str, Any]


@dataclass
class Measured:
    """What the one batched forward gave a family: the clean probability and its own variants' ones."""

    class_idx: int | None
    clean: float | None
    probs: np.ndarray


@dataclass
class Plan:
    """A family's work: the perturbed inputs it needs, and how to turn their probabilities into results."""

    variants: list[Variants]
    finish: Callable[[Measured], dict[str, MetricResult]]

    @property
    def count(self) -> int:
        return sum(v.count for v in self.variants)


class Chain:
    """Several ``Variants`` of one image read as one: item ``i`` of the chain is item ``i − offset`` of a part.

    ``evaluate`` runs every metric's inputs through one ``batched_forward``: one progress bar, full chunks.
    """

    def __init__(self, parts: Sequence[Variants]) -> None:
        self.parts = [p for p in parts if p.count > 0]
        if not self.parts:
            raise CamError("nothing to run: no variants of the image were asked for")
        self.template = self.parts[0].template
        self.count = sum(p.count for p in self.parts)

    def fill(self, start: int, out: torch.Tensor) -> None:
        end, offset, written = start + out.shape[0], 0, 0
        for part in self.parts:
            lo, hi = max(start, offset), min(end, offset + part.count)
            if lo < hi:
                part.fill(lo - offset, out[written:written + hi - lo])
                written += hi - lo
            offset += part.count


def stable_rank(heat: np.ndarray) -> np.ndarray:
    """Flat pixel indices, highest map value first; equal values in flat (row-major) order."""
    return np.argsort(-heat.ravel(), kind="stable")
