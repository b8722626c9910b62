"""Integrated Gradients (Sundararajan et al., ICML 2017): (x − x') ⊙ ∫₀¹ ∂y^c/∂x (x' + α(x − x')) dα.

The integral is the trapezoid rule on ``steps`` equally spaced α from 0 to 1 (both ends included), the same
points as captum's ``riemann_trapezoid``. The baseline x' is a fill value in the model's normalized space
(0 = the dataset mean; the app passes black or any colour converted by the backbone) or a Gaussian blur of
x. Completeness says Σ attr = y^c(x) − y^c(x'); the gap left by the finite sum is reported.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..batching import batched_forward, batched_gradient
from ..errors import CamError
from ..filters import gaussian_blur
from .base import MapResult, Target
from .occlusion import fill_tensor
from .pixel import channel_max


@dataclass
class PathPoints:
    """Variants x' + α_i (x − x') for α_i = i / (steps − 1)."""

    baseline: torch.Tensor
    image: torch.Tensor
    count: int

    @property
    def template(self) -> torch.Tensor:
        return self.image

    def alpha(self, i: int) -> float:
        return i / (self.count - 1) if self.count > 1 else 1.0

    def fill(self, start: int, out: torch.Tensor) -> None:
        delta = self.image - self.baseline
        for j in range(out.shape[0]):
            torch.add(self.baseline, delta, alpha=self.alpha(start + j), out=out[j:j + 1])


def trapezoid_weights(steps: int) -> torch.Tensor:
    """Weights of the trapezoid rule on ``steps`` equally spaced points of [0, 1] (a single point: 1)."""
    if steps == 1:
        return torch.ones(1, dtype=torch.float64)
    weights = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
    weights[0] = weights[-1] = 0.5 / (steps - 1)
    return weights


def make_baseline(x: torch.Tensor, baseline: str, fill: float | Sequence[float]) -> torch.Tensor:
    if baseline == "blur":
        return gaussian_blur(x)
    if baseline == "fill":
        return fill_tensor(fill, x).expand_as(x[0])[None].clone()
    raise CamError(f"Integrated Gradients' baseline must be 'fill' or 'blur', got {baseline!r}")


def run_integrated_gradients(target: Target, steps: int, baseline: str, fill: float | Sequence[float],
                             chunk: int | None) -> MapResult:
    x = target.x.detach()
    start = make_baseline(x, baseline, fill)
    clean_logits = batched_forward(target.model, torch.cat([x, start]))  # y(x) and y(x')
    cls = target.cls.resolved(clean_logits[:1])
    points = PathPoints(start, x, int(steps))
    weights = trapezoid_weights(points.count).to(x.device)
    total = torch.zeros_like(x[0], dtype=torch.float64)

    def accumulate(grads: torch.Tensor, first: int) -> None:
        w = weights[first:first + grads.shape[0]].view(-1, 1, 1, 1)
        total.add_((grads.double() * w).sum(dim=0))

    batched_gradient(target.model, points, cls.score, chunk, target.progress, reduce=accumulate)
    attribution = ((x[0] - start[0]).double() * total).to(x.dtype)
    difference = float(clean_logits[0, cls.index] - clean_logits[1, cls.index])
    gap = float(attribution.double().sum()) - difference
    notes = []
    if abs(gap) > 0.01 * max(abs(difference), 1e-6):
        notes.append(f"completeness gap {gap:+.3g} ({abs(gap) / max(abs(difference), 1e-12):.1%} of "
                     f"y(x) − y(baseline) = {difference:.3g}): raise the number of steps")
    saliency = channel_max(attribution)
    return MapResult(raw=saliency, positive=saliency, logits=clean_logits[:1], gradient=attribution,
                     notes=notes, class_idx=cls.index,
                     extras={"completeness_gap": gap, "score_difference": difference, "steps": points.count})
