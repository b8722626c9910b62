"""Deletion and insertion (Petsiuk et al., RISE, BMVC 2018): does the probability follow the map's ranking?

Pixels are ranked by the map, highest first (equal values in flat index order: a stable sort, so a ReLU'd
map's zero plateau is reproducible). ``steps`` equal steps of ``ceil(H·W/steps)`` pixels give ``steps + 1``
points, the unchanged image included, and the area under the probability curve over the fraction of pixels
changed in [0, 1] (trapezoid rule) is the score.

- deletion: pixels are replaced by ``deletion_fill`` (normalized space; 0 = the dataset mean) — a quick drop,
  a low area, is better;
- insertion: pixels of the original are put back into a Gaussian blur of it (kernel 11, σ = 5, the RISE
  code's) — a quick rise, a high area, is better.

Choices beyond the paper, said here once: the blur pads by repeating the edge pixels (the RISE code pads with
zeros, which greys the border and needs an image larger than the kernel); the kernel is a sampled Gaussian
normalized to sum 1. The two end points that are the clean image itself (deletion's first, insertion's last)
are the clean forward's probability, not run again.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CamError
from .common import Context, Measured, Plan, stable_rank
from .result import Curve, MetricResult, trapezoid_auc
from .settings import per_channel

X_LABEL = "fraction of pixels changed"
Y_LABEL = "probability of the class"


def step_counts(pixels: int, steps: int) -> np.ndarray:
    """Pixels changed at each of the ``steps + 1`` points: 0, n, 2n, … up to ``pixels``; n = ceil(pixels / steps)."""
    per_step = math.ceil(pixels / steps)
    return np.minimum(np.arange(steps + 1) * per_step, pixels)


def gaussian_blur(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Each channel of ``x`` (1×C×H×W) blurred by a ``size``×``size`` Gaussian of ``sigma``, edges repeated."""
    if size % 2 != 1:
        raise CamError(f"blur_size must be odd (a kernel centred on its pixel), got {size}")
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).to(dtype=x.dtype, device=x.device)
    channels, half = x.shape[1], size // 2
    with torch.no_grad():
        out = F.pad(x, (half, half, half, half), mode="replicate")
        out = F.conv2d(out, kernel.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
        out = F.conv2d(out, kernel.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)
    return out


class Reveal:
    """Item ``j``: ``start`` with its first ``counts[j]`` ranked pixels taken from ``final`` (a ``Variants``).

    Deletion reveals the fill over the image, insertion the image over its blur; each item is written into
    the batch buffer when its chunk comes (one ``where`` on the pixels' ranks), so no stack of copies is held.
    ``final`` is 1×C×H×W or broadcasts to it (1×C×1×1 for a fill).
    """

    def __init__(self, start: torch.Tensor, final: torch.Tensor, order: np.ndarray, counts: np.ndarray) -> None:
        self.template = start
        self.count = len(counts)
        height, width = start.shape[-2:]
        rank = torch.empty(height * width, dtype=torch.long, device=start.device)
        rank[torch.as_tensor(order, dtype=torch.long, device=start.device)] = torch.arange(
            height * width, device=start.device)
        self._rank = rank.view(1, height, width)
        self._final = final[0]
        self._counts = [int(c) for c in counts]

    def fill(self, start: int, out: torch.Tensor) -> None:
        for j in range(out.shape[0]):
            torch.where(self._rank < self._counts[start + j], self._final, self.template[0], out=out[j])


def plan(ctx: Context, wanted: set[str]) -> Plan:
    x, s = ctx.x, ctx.settings
    channels, height, width = x.shape[1:]
    pixels = height * width
    steps = int(s["steps"])
    counts = step_counts(pixels, steps)
    order = stable_rank(ctx.heat)
    fractions = counts / pixels
    variants, parts = [], []
    if "deletion" in wanted:
        fill = torch.tensor(per_channel("deletion_fill", s["deletion_fill"], channels), dtype=x.dtype,
                            device=x.device).view(1, channels, 1, 1)
        variants.append(Reveal(x, fill, order, counts[1:]))  # counts[0]: the clean image
        parts.append("deletion")
    if "insertion" in wanted:
        blurred = gaussian_blur(x, int(s["blur_size"]), float(s["blur_sigma"]))
        variants.append(Reveal(blurred, x, order, counts[:-1]))  # counts[-1]: every pixel back, the clean image
        parts.append("insertion")

    def finish(m: Measured) -> dict[str, MetricResult]:
        out, offset = {}, 0
        details = {"clean_prob": m.clean, "steps": steps, "pixels_per_step": int(counts[1]) if steps else 0,
                   "pixels": pixels}
        for name in parts:
            probs = m.probs[offset:offset + steps]
            offset += steps
            y = np.concatenate([[m.clean], probs]) if name == "deletion" else np.concatenate([probs, [m.clean]])
            curve = Curve(fractions.copy(), y, X_LABEL, Y_LABEL)
            out[name] = MetricResult(
                name=name, score=trapezoid_auc(curve.x, curve.y), curve=curve,
                explanation=EXPLANATIONS[name], higher_is_better=name == "insertion", class_idx=m.class_idx,
                curves={name: curve}, details=dict(details))
        return out

    return Plan(variants, finish)


EXPLANATIONS = {
    "deletion": "Area under the class probability as the map's most important pixels are removed first "
                "(0–1): lower is better — the probability falls fast when the map found what the model uses.",
    "insertion": "Area under the class probability as the map's most important pixels are put back first into "
                 "a blurred image (0–1): higher is better — the probability rises fast when the map is right.",
}
