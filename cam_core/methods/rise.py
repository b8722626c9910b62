"""RISE (Petsiuk et al., BMVC 2018) as a contrast: M = (1 / (N·p)) Σ_i (p^c(x ⊙ m_i) − p̄) · m_i, p̄ the masks' mean.

The paper's map Σ_i p_i m_i / (N·p) is a near-uniform wash: every pixel is kept by about half the masks, so
every pixel gets about p̄ (energy inside the object 14 % on the localization set, a flat map 13 %). Subtracting
the mean score leaves what a pixel adds: where keeping it raises the score above average the map is positive,
elsewhere ≤ 0 (the display keeps the positive part, so the background is dark). Accumulated in one pass as
Σ p_i m_i − p̄ Σ m_i, with Σ p_i m_i, Σ m_i and Σ p_i summed chunk by chunk.

Mask i: a ``cells``×``cells`` grid of Bernoulli(p) ones, upsampled bilinearly to (cells + 1) × the cell size,
then cropped at a random shift — all drawn from a CPU generator seeded with ``seed + i``, so a map is the same
on any device and in any chunking. x is in the model's normalized space: masked-out pixels become the
dataset mean. Masks are made chunk by chunk and never all held at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..batching import run_chunks, batched_forward
from ..errors import CamError
from ..targets import logits_of
from .base import Function, MapResult, Target


def rise_mask(index: int, size: tuple[int, int], cells: int, p: float, seed: int) -> torch.Tensor:
    """Mask ``index`` (H×W in [0, 1]) of the seeded sequence."""
    height, width = size
    generator = torch.Generator().manual_seed(int(seed) + int(index))
    grid = (torch.rand(cells, cells, generator=generator) < p).float()
    cell_h, cell_w = math.ceil(height / cells), math.ceil(width / cells)
    up = F.interpolate(grid[None, None], size=((cells + 1) * cell_h, (cells + 1) * cell_w), mode="bilinear",
                       align_corners=False)[0, 0]
    dy = int(torch.randint(0, cell_h, (1,), generator=generator))
    dx = int(torch.randint(0, cell_w, (1,), generator=generator))
    return up[dy:dy + height, dx:dx + width]


@dataclass
class RiseMasked:
    """Variants x ⊙ m_i; keeps the last chunk's masks for the weighted sum."""

    template: torch.Tensor
    count: int
    cells: int
    p: float
    seed: int
    last: torch.Tensor | None = field(default=None, repr=False)

    def fill(self, start: int, out: torch.Tensor) -> None:
        size = tuple(out.shape[-2:])
        masks = torch.stack([rise_mask(start + j, size, self.cells, self.p, self.seed)
                             for j in range(out.shape[0])]).to(out.device, out.dtype)
        self.last = masks
        torch.mul(self.template, masks[:, None], out=out)


def run_rise(target: Target, masks: int, cells: int, p: float, seed: int, chunk: int | None) -> MapResult:
    if not 0 < p <= 1:
        raise CamError("RISE's mask probability p must be in (0, 1]")
    x = target.x.detach()
    clean = batched_forward(target.model, x)
    cls = target.cls.resolved(clean)
    variants = RiseMasked(x, int(masks), int(cells), float(p), int(seed))
    weighted = torch.zeros(x.shape[-2:], dtype=torch.float64, device=x.device)  # Σ p_i m_i
    coverage = torch.zeros_like(weighted)  # Σ m_i
    score_sum = torch.zeros((), dtype=torch.float64, device=x.device)  # Σ p_i

    def step(batch: torch.Tensor, _start: int) -> None:
        probs = cls.prob(logits_of(target.model(batch))).double()
        masks = variants.last.double()
        weighted.add_(torch.einsum("n,nhw->hw", probs, masks))
        coverage.add_(masks.sum(dim=0))
        score_sum.add_(probs.sum())

    with torch.inference_mode():
        run_chunks(target.model, variants, step, chunk, target.progress)
    mean_score = score_sum / variants.count
    raw = ((weighted - mean_score * coverage) / (variants.count * variants.p)).to(x.dtype)
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=clean, class_idx=cls.index,
                     extras={"masks": variants.count, "mean_score": float(mean_score)})


RISE = Function(run_rise)
