"""SmoothGrad (Smilkov et al. 2017): the mean of ∂y^c/∂x over noisy copies x + ε_i, ε_i ~ N(0, σ²).

σ = noise · (max x − min x). Sample i's noise comes from a generator seeded with ``seed + i`` (on the
CPU), so a map is reproducible on any device and in any chunking. ``squared`` averages (∂y^c/∂x)² instead.
"""
from __future__ import annotations

import torch

from ..capture import class_score, logits_of
from ..errors import CamError
from ..hygiene import grad_mode
from .base import MapResult, Target, chunk_size


def sample_noise(shape: torch.Size, sigma: float, seed: int, index: int) -> torch.Tensor:
    """Noise of sample ``index``: N(0, σ²) from a CPU generator seeded with ``seed + index``."""
    generator = torch.Generator().manual_seed(int(seed) + int(index))
    return torch.randn(shape, generator=generator) * sigma


def run_smoothgrad(target: Target, samples: int = 25, noise: float = 0.15, squared: bool = False,
                   seed: int = 0, chunk: int | None = None) -> MapResult:
    if samples < 1:
        raise CamError("SmoothGrad needs at least 1 sample")
    if noise < 0:
        raise CamError("SmoothGrad's noise level must be ≥ 0")
    x = target.x.detach()
    sigma = float(noise) * float(x.max() - x.min())
    step = chunk_size(x, chunk)
    total = torch.zeros_like(x[0])
    with grad_mode(False):
        logits = logits_of(target.model(x))
    target.classes_for(logits)
    for start in range(0, samples, step):
        stop = min(samples, start + step)
        eps = torch.cat([sample_noise(x.shape, sigma, seed, i) for i in range(start, stop)]).to(x.device)
        noisy = (x + eps).requires_grad_(True)
        with grad_mode(True):
            scores = logits_of(target.model(noisy))
        classes = torch.full((scores.shape[0],), target.class_idx, device=scores.device)
        (grads,) = torch.autograd.grad(class_score(scores, classes), noisy)
        total += (grads.pow(2) if squared else grads).sum(dim=0)
        target.report(stop, samples)
    gradient = total / samples
    saliency = gradient.abs().amax(dim=0)
    return MapResult(raw=saliency, positive=saliency, logits=logits, gradient=gradient,
                     extras={"sigma": sigma, "samples": samples})
