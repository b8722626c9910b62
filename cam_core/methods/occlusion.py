"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2): slide a grey square over the image and watch p^c.

Map value at a pixel = mean over the windows covering it of p^c(x) − p^c(x with the window filled).
Windows start every ``stride`` pixels, plus one flush with the far edge so every pixel is covered.
The fill is a value in the model's normalized input space: 0 is the dataset mean.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..targets import logits_of
from ..errors import CamError
from ..hygiene import grad_mode
from .base import MapResult, Target, chunk_size


def window_starts(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets of windows of ``patch`` along ``length``: every ``stride``, and one at the far edge."""
    if patch >= length:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def fill_tensor(fill: float | Sequence[float], x: torch.Tensor) -> torch.Tensor:
    """The occluder's value as a C×1×1 tensor (one number for all channels, or one per channel)."""
    values = torch.as_tensor(fill, dtype=x.dtype, device=x.device).flatten()
    if values.numel() == 1:
        values = values.expand(x.shape[1])
    if values.numel() != x.shape[1]:
        raise CamError(f"occlusion fill needs 1 or {x.shape[1]} values, got {values.numel()}")
    return values.view(-1, 1, 1)


def occlude(x: torch.Tensor, top: int, left: int, patch: int, fill: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` (1×C×H×W) with the square at (top, left) set to ``fill``."""
    out = x.clone()
    out[:, :, top:top + patch, left:left + patch] = fill
    return out


def run_occlusion(target: Target, patch: int = 32, stride: int = 16, fill: float | Sequence[float] = 0.0,
                  chunk: int | None = None) -> MapResult:
    x = target.x.detach()
    height, width = x.shape[-2:]
    patch, stride = int(patch), int(stride)
    if patch < 1 or stride < 1:
        raise CamError("occlusion patch size and stride must be at least 1 pixel")
    value = fill_tensor(fill, x)
    rows, cols = window_starts(height, patch, stride), window_starts(width, patch, stride)
    positions = [(r, c) for r in rows for c in cols]
    step = chunk_size(x, chunk)
    with grad_mode(False):
        logits = logits_of(target.model(x))
        base = logits.softmax(dim=1)[0, int(target.classes_for(logits))]
        probs, tops = [], []
        buffer = torch.empty((min(step, len(positions)), *x.shape[1:]), dtype=x.dtype, device=x.device)
        for start in range(0, len(positions), step):
            batch = buffer[:min(step, len(positions) - start)]  # reused: no fresh pages for every chunk
            batch.copy_(x.expand_as(batch))
            for j, (r, c) in enumerate(positions[start:start + step]):
                batch[j, :, r:r + patch, c:c + patch] = value
            p = logits_of(target.model(batch)).softmax(dim=1)
            probs.append(p[:, target.class_idx])
            tops.append(p.argmax(dim=1))
            target.report(min(start + step, len(positions)), len(positions))
    prob = torch.cat(probs)
    total = torch.zeros(height, width, dtype=x.dtype, device=x.device)
    count = torch.zeros_like(total)
    for (r, c), p in zip(positions, (base - prob).tolist()):
        total[r:r + patch, c:c + patch] += p
        count[r:r + patch, c:c + patch] += 1
    raw = total / count.clamp(min=1)
    grid = (len(rows), len(cols))
    extras = {
        "prob_grid": prob.view(grid).cpu().numpy(),
        "top_class_grid": torch.cat(tops).view(grid).cpu().numpy(),
        "rows": rows, "cols": cols, "patch": patch, "stride": stride, "base_prob": float(base),
    }
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=logits, extras=extras)
