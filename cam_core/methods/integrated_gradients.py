"""Path integrals for Integrated Gradients (Sundararajan et al., ICML 2017): (x − x') ⊙ ∫₀¹ ∂y^c/∂x (x' + α(x − x')) dα.

The method is ``wrappers.Path(saliency)``; this module holds the baselines and the rules for the integral.

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

from ..errors import CamError
from ..filters import gaussian_blur
from .occlusion import fill_tensor

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


def refine(alphas: torch.Tensor, slopes: torch.Tensor, scores: torch.Tensor, count: int) -> torch.Tensor:
    """Midpoints of the ``count`` intervals whose trapezoid error is largest: on each, the rule's
    (b − a)(g(a) + g(b)) / 2 against the exact y(b) − y(a) (``slopes`` g, ``scores`` y at ``alphas``, any order)."""
    order = torch.argsort(alphas)
    a, slope, score = alphas[order], slopes[order], scores[order]
    error = (a[1:] - a[:-1]) / 2 * (slope[1:] + slope[:-1]) - (score[1:] - score[:-1])
    worst = torch.argsort(error.abs(), descending=True)[:count]
    return (a[worst] + a[worst + 1]) / 2


def grid_weights(alphas: torch.Tensor) -> torch.Tensor:
    """The trapezoid weights of points given in any order (in that order)."""
    order = torch.argsort(alphas)
    weights = torch.empty_like(alphas, dtype=torch.float64)
    weights[order] = trapezoid_weights(alphas[order])
    return weights


def completeness_note(gap: float, difference: float) -> str:
    """The gap in plain words: how much of the score change the attributions account for."""
    share = 1 + gap / difference if difference else float("nan")
    sentence = (f"The attributions add up to {share:.0%} of the class score's change from the baseline to the "
                f"photo ({difference:+.3g}); in theory they add up to all of it.")
    if abs(gap) > 0.05 * abs(difference):
        sentence += " More steps on the path would close the gap."
    return sentence
