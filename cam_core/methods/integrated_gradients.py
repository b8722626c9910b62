"""Integrated Gradients (Sundararajan et al., ICML 2017): (x − x') ⊙ ∫₀¹ ∂y^c/∂x (x' + α(x − x')) dα.

Completeness says Σ attr = y^c(x) − y^c(x'); how far the finite sum falls short is reported (a plain sentence
in the notes, the number in ``extras``). Three rules for the integral over α, all with at most ``steps``
gradient evaluations:

- ``adaptive``: the trapezoid rule on a grid refined where it errs. Every gradient pass also gives the score
  y(α) at its point, so each interval's exact integral y(b) − y(a) is known and its error too; the worst
  intervals are halved, eight at a time, until the budget is spent. On ReLU networks the integrand is rough
  and most of the score changes at small α (Lite0: 10–44 % gap for 64 uniform steps, 5 % for 64
  Gauss–Legendre nodes on the sample photos; docs/benchmarks.md). It keeps each point's gradient until the end
  (``steps`` × the input's size in memory), since halving an interval changes its ends' weights.
- ``gauss_legendre``: ``numpy.polynomial.legendre.leggauss`` nodes and weights mapped to [0, 1] (captum's
  default; exact for a polynomial integrand of degree ≤ 2·steps − 1).
- ``trapezoid``: ``steps`` equally spaced α from 0 to 1, both ends included (captum's ``riemann_trapezoid``
  points, with weights summing to 1).

The baseline x' is a fill value in the model's normalized space (0 = the dataset mean; the app passes black or
any colour converted by the backbone) or a Gaussian blur of x.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..batching import batched_forward, batched_gradient
from ..errors import CamError
from ..filters import gaussian_blur
from ..targets import ClassTarget
from .base import MapResult, Target
from .occlusion import fill_tensor
from .pixel import channel_max

RULES = ("adaptive", "gauss_legendre", "trapezoid")
FIRST_GRID = 16  # the adaptive rule's first, uniform grid (points, both ends included)
PER_ROUND = 8  # intervals halved per round: one batch of gradients


@dataclass
class PathPoints:
    """Variants x' + α_i (x − x') for the given α (float64, any order)."""

    baseline: torch.Tensor
    image: torch.Tensor
    alphas: torch.Tensor

    @property
    def template(self) -> torch.Tensor:
        return self.image

    @property
    def count(self) -> int:
        return int(self.alphas.numel())

    def fill(self, start: int, out: torch.Tensor) -> None:
        delta = self.image - self.baseline
        for j in range(out.shape[0]):
            torch.add(self.baseline, delta, alpha=float(self.alphas[start + j]), out=out[j:j + 1])


def trapezoid_weights(alphas: torch.Tensor | int) -> torch.Tensor:
    """Trapezoid weights on sorted points of [0, 1] (an int: that many equally spaced); one point: weight 1."""
    alphas = torch.linspace(0, 1, alphas, dtype=torch.float64) if isinstance(alphas, int) else alphas.double()
    if alphas.numel() == 1:
        return torch.ones(1, dtype=torch.float64)
    widths = alphas[1:] - alphas[:-1]
    weights = torch.zeros_like(alphas)
    weights[:-1] += widths / 2
    weights[1:] += widths / 2
    return weights


def gauss_legendre(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss–Legendre nodes and weights on [0, 1] (weights sum to 1)."""
    nodes, weights = np.polynomial.legendre.leggauss(int(steps))
    return torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)


def fixed_rule(rule: str, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(α, weights) of a non-adaptive rule."""
    if rule == "gauss_legendre":
        return gauss_legendre(steps)
    alphas = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.ones(1, dtype=torch.float64)
    return alphas, trapezoid_weights(alphas)


def make_baseline(x: torch.Tensor, baseline: str, fill: float | Sequence[float]) -> torch.Tensor:
    if baseline == "blur":
        return gaussian_blur(x)
    if baseline == "fill":
        return fill_tensor(fill, x).expand_as(x[0])[None].clone()
    raise CamError(f"Integrated Gradients' baseline must be 'fill' or 'blur', got {baseline!r}")


def _weighted_sum(target: Target, points: PathPoints, weights: torch.Tensor, cls: ClassTarget,
                  chunk: int | None) -> torch.Tensor:
    """Σ_i w_i ∂y/∂x(α_i), accumulated chunk by chunk (nothing kept per point)."""
    total = torch.zeros_like(points.image[0], dtype=torch.float64)
    weights = weights.to(total.device)

    def accumulate(grads: torch.Tensor, first: int) -> None:
        w = weights[first:first + grads.shape[0]].view(-1, 1, 1, 1)
        total.add_((grads.double() * w).sum(dim=0))

    batched_gradient(target.model, points, cls.score, chunk, target.progress, reduce=accumulate)
    return total


def _adaptive_sum(target: Target, start: torch.Tensor, x: torch.Tensor, steps: int, cls: ClassTarget,
                  chunk: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_i w_i ∂y/∂x(α_i) of the trapezoid rule on a grid refined where its known error is largest; the grid."""
    delta = (x - start)[0].double()
    alphas = torch.linspace(0, 1, min(steps, FIRST_GRID), dtype=torch.float64)
    grads: list[torch.Tensor] = []
    slopes: list[torch.Tensor] = []  # g(α) = Σ (x − x') ⊙ ∂y/∂x: the integrand of completeness
    scores: list[torch.Tensor] = []  # y(α)
    new = alphas

    while True:
        done = sum(g.shape[0] for g in grads)
        progress = None if target.progress is None else (lambda d, _n, done=done: target.report(done + d, steps))
        g, logits = batched_gradient(target.model, PathPoints(start, x, new), cls.score, chunk, progress)
        grads.append(g)
        slopes.append((g.double() * delta).sum(dim=(1, 2, 3)).cpu())
        scores.append(cls.score(logits).double().cpu())
        if alphas.numel() >= steps:
            break
        order = torch.argsort(alphas)
        a, slope, score = alphas[order], torch.cat(slopes)[order], torch.cat(scores)[order]
        width = a[1:] - a[:-1]
        error = width / 2 * (slope[1:] + slope[:-1]) - (score[1:] - score[:-1])
        worst = torch.argsort(error.abs(), descending=True)[:min(PER_ROUND, steps - alphas.numel())]
        new = (a[worst] + a[worst + 1]) / 2
        alphas = torch.cat([alphas, new])

    order = torch.argsort(alphas)
    weights = torch.empty_like(alphas)
    weights[order] = trapezoid_weights(alphas[order])
    weights = weights.to(delta.device)
    total, first = torch.zeros_like(delta), 0
    for g in grads:  # in the order the points were added, as ``alphas``
        total.add_((g.double() * weights[first:first + g.shape[0]].view(-1, 1, 1, 1)).sum(dim=0))
        first += g.shape[0]
    return total, alphas[order]


def completeness_note(gap: float, difference: float) -> str:
    """The gap in plain words: how much of the score change the attributions account for."""
    share = 1 + gap / difference if difference else float("nan")
    sentence = (f"The attributions add up to {share:.0%} of the class score's change from the baseline to the "
                f"photo ({difference:+.3g}); in theory they add up to all of it.")
    if abs(gap) > 0.05 * abs(difference):
        sentence += " More steps on the path would close the gap."
    return sentence


def run_integrated_gradients(target: Target, steps: int, rule: str, baseline: str, fill: float | Sequence[float],
                             chunk: int | None) -> MapResult:
    if rule not in RULES:
        raise CamError(f"Integrated Gradients' rule must be one of {', '.join(RULES)}, got {rule!r}")
    x = target.x.detach()
    start = make_baseline(x, baseline, fill)
    clean_logits = batched_forward(target.model, torch.cat([x, start]))  # y(x) and y(x')
    cls = target.cls.resolved(clean_logits[:1])
    steps = int(steps)
    if rule == "adaptive":
        total, alphas = _adaptive_sum(target, start, x, steps, cls, chunk)
    else:
        alphas, weights = fixed_rule(rule, steps)
        total = _weighted_sum(target, PathPoints(start, x, alphas), weights, cls, chunk)
    attribution = ((x[0] - start[0]).double() * total).to(x.dtype)
    difference = float(clean_logits[0, cls.index] - clean_logits[1, cls.index])
    gap = float(attribution.double().sum()) - difference
    notes = []
    if abs(gap) > 0.01 * max(abs(difference), 1e-6):
        notes.append(completeness_note(gap, difference))
    saliency = channel_max(attribution)
    return MapResult(raw=saliency, positive=saliency, logits=clean_logits[:1], gradient=attribution,
                     notes=notes, class_idx=cls.index,
                     extras={"completeness_gap": gap, "score_difference": difference, "steps": int(alphas.numel()),
                             "rule": rule, "alphas": alphas.tolist()})
