"""Wrappers that make a method out of methods (captum's NoiseTunnel is the idea).

``Smooth(inner)``: SmoothGrad's noise over any batched gradient method — SmoothGrad = Smooth(saliency),
SmoothGrad-CAM++ = Smooth(Grad-CAM++). ``Product(pixel, cam)``: a pixel attribution weighted by a layer CAM
upsampled to the input — Guided Grad-CAM = Product(guided backprop, Grad-CAM).

An inner method offers ``attribute_batch(target, xs, cls) -> (attributions, logits, cls)`` and
``result(mean_attribution, logits, cls) -> MapResult``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ..batching import batched_forward, run_chunks
from ..errors import CamError
from ..targets import ClassTarget
from .base import MapResult, Target


class BatchedMethod(Protocol):
    def attribute_batch(self, target: Target, xs: torch.Tensor, cls: ClassTarget | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, ClassTarget]: ...

    def result(self, attribution: torch.Tensor, logits: torch.Tensor, cls: ClassTarget) -> MapResult: ...


def sample_noise(shape: torch.Size, sigma: float, seed: int, index: int) -> torch.Tensor:
    """Noise of sample ``index``: N(0, σ²) from a CPU generator seeded with ``seed + index``, so a map is
    reproducible on any device and in any chunking."""
    generator = torch.Generator().manual_seed(int(seed) + int(index))
    return torch.randn(shape, generator=generator) * sigma


@dataclass
class NoisyCopies:
    """Variants x + ε_i, ε_i ~ N(0, σ²), sample i seeded with ``seed + i``."""

    template: torch.Tensor
    count: int
    sigma: float
    seed: int

    def fill(self, start: int, out: torch.Tensor) -> None:
        for j in range(out.shape[0]):
            noise = sample_noise(self.template.shape, self.sigma, self.seed, start + j)
            out[j:j + 1] = self.template + noise.to(out.device, out.dtype)


@dataclass(frozen=True)
class Smooth:
    """The mean of ``inner``'s attribution over noisy copies (Smilkov et al. 2017): σ = noise · (max x − min x)."""

    inner: BatchedMethod

    def run(self, target: Target, samples: int, noise: float, squared: bool, seed: int,
            chunk: int | None) -> MapResult:
        if samples < 1:
            raise CamError("SmoothGrad needs at least 1 sample")
        if noise < 0:
            raise CamError("SmoothGrad's noise level must be ≥ 0")
        x = target.x.detach()
        sigma = float(noise) * float(x.max() - x.min())
        logits = batched_forward(target.model, x)  # the clean image: its class, score and probability
        cls = target.cls.resolved(logits)
        total: list[torch.Tensor] = []

        def step(batch: torch.Tensor, _start: int) -> None:
            attribution, _, _ = self.inner.attribute_batch(target, batch, cls)
            part = (attribution.pow(2) if squared else attribution).sum(dim=0)
            if total:
                total[0] += part
            else:
                total.append(part)

        run_chunks(target.model, NoisyCopies(x, samples, sigma, seed), step, chunk, target.progress, grad=True)
        out = self.inner.result(total[0] / samples, logits, cls)
        out.extras.update({"sigma": sigma, "samples": samples})
        return out


@dataclass(frozen=True)
class Product:
    """``pixel``'s attribution ⊙ ``cam``'s map, upsampled bilinearly to the input and scaled to [0, 1]."""

    pixel: Any
    cam: Any

    def run(self, target: Target) -> MapResult:
        cam = self.cam.run(target)
        pixel = self.pixel.run(replace(target, class_idx=cam.class_idx, progress=None))
        heat = F.interpolate(cam.positive[None, None], size=target.x.shape[-2:], mode="bilinear",
                             align_corners=False)[0, 0]
        peak = float(heat.max())
        heat = heat / peak if peak > 0 else torch.zeros_like(heat)
        gradient = pixel.gradient * heat
        saliency = gradient.abs().amax(dim=0)
        return MapResult(raw=saliency, positive=saliency, logits=cam.logits, gradient=gradient,
                         notes=cam.notes + pixel.notes, class_idx=cam.class_idx)
