"""Wrappers that make a method out of methods (captum's NoiseTunnel is the idea).

``Smooth(inner)``: SmoothGrad's noise over any batched method — SmoothGrad = Smooth(saliency),
SmoothGrad-CAM++ = Smooth(Grad-CAM++). ``Path(inner)``: the integral of any batched method's attribution along
the straight path from a baseline to the image — Integrated Gradients = Path(saliency). ``Product(pixel, cam)``:
a pixel attribution weighted by a layer CAM upsampled to the input — Guided Grad-CAM = Product(guided
backprop, Grad-CAM).

An inner method offers ``attribute_batch(target, xs, cls) -> (attributions, logits, cls)`` and
``result(mean_attribution, logits, cls) -> MapResult``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ..batching import batched_forward, run_chunks
from ..errors import CamError
from ..targets import ClassTarget
from .base import MapResult, Target, needs_layer
from .integrated_gradients import (FIRST_GRID, PER_ROUND, RULES, PathPoints, completeness_note, fixed_rule,
                                   grid_weights, make_baseline, refine)


class BatchedMethod(Protocol):
    def attribute_batch(self, target: Target, xs: torch.Tensor, cls: ClassTarget | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, ClassTarget]: ...

    def result(self, attribution: torch.Tensor, logits: torch.Tensor, cls: ClassTarget) -> MapResult: ...


def sample_noise(shape: torch.Size, sigma: float, seed: int, index: int) -> torch.Tensor:
    """Noise of sample ``index``: N(0, σ²) from a CPU generator seeded with ``seed + index``, so a map is
    reproducible on any device and in any chunking."""
    generator = torch.Generator().manual_seed(int(seed) + int(index))
    return torch.randn(shape, generator=generator) * sigma


def backward_to(inner: Any, target: Target) -> str:
    """What ``inner``'s backward stops at, for its timing (``batching.timing_key``): ``"layer:NAME"`` for a
    layer CAM (a shorter backward than to the input), ``""`` for an input gradient."""
    return f"layer:{target.layer_name}" if needs_layer(inner) else ""


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

    @property
    def needs_layer(self) -> bool:
        return needs_layer(self.inner)

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

        run_chunks(target.model, NoisyCopies(x, samples, sigma, seed), step, chunk, target.progress, grad=True,
                   what=backward_to(self.inner, target))
        out = self.inner.result(total[0] / samples, logits, cls)
        out.extras.update({"sigma": sigma, "samples": samples})
        return out


OnChunk = Callable[[torch.Tensor, torch.Tensor, int], None]  # (attributions, logits, first item)


def _each_chunk(inner: BatchedMethod, target: Target, variants: Any, cls: ClassTarget, chunk: int | None,
                progress: Any, on_chunk: OnChunk) -> None:
    """``inner``'s attributions of every variant, chunk by chunk, handed to ``on_chunk``."""
    def step(batch: torch.Tensor, first: int) -> None:
        attribution, logits, _ = inner.attribute_batch(target, batch, cls)
        on_chunk(attribution, logits, first)

    run_chunks(target.model, variants, step, chunk, progress, grad=True, what=backward_to(inner, target))


@dataclass(frozen=True)
class Path:
    """∫₀¹ ``inner``(x' + α(x − x')) dα; an attribution shaped like the input (an input gradient) is then
    multiplied by (x − x'), which makes Path(saliency) Integrated Gradients (integrated_gradients.py: baselines
    and rules). Completeness (Σ attr = y(x) − y(x')) is checked, and drives the ``adaptive`` rule, only then."""

    inner: BatchedMethod

    @property
    def needs_layer(self) -> bool:
        return needs_layer(self.inner)

    def run(self, target: Target, steps: int, rule: str, baseline: str, fill: Any, chunk: int | None) -> MapResult:
        if rule not in RULES:
            raise CamError(f"the path integral's rule must be one of {', '.join(RULES)}, got {rule!r}")
        x = target.x.detach()
        start = make_baseline(x, baseline, fill)
        clean = batched_forward(target.model, torch.cat([x, start]))  # y(x) and y(x')
        cls = target.cls.resolved(clean[:1])
        delta = (x - start)[0].double()
        if rule == "adaptive":
            total, alphas = self._adaptive(target, start, x, delta, int(steps), cls, chunk)
        else:
            alphas, weights = fixed_rule(rule, int(steps))
            total = self._weighted(target, PathPoints(start, x, alphas), weights, cls, chunk)
        gradient = total.shape == delta.shape
        attribution = (delta * total if gradient else total).to(x.dtype)
        out = self.inner.result(attribution, clean[:1], cls)
        out.extras.update({"steps": int(alphas.numel()), "rule": rule, "alphas": alphas.tolist()})
        if gradient:
            difference = float(clean[0, cls.index] - clean[1, cls.index])
            gap = float(attribution.double().sum()) - difference
            if abs(gap) > 0.01 * max(abs(difference), 1e-6):
                out.notes.append(completeness_note(gap, difference))
            out.extras.update({"completeness_gap": gap, "score_difference": difference})
        return out

    def _weighted(self, target: Target, points: PathPoints, weights: torch.Tensor, cls: ClassTarget,
                  chunk: int | None) -> torch.Tensor:
        """Σ_i w_i inner(α_i), accumulated chunk by chunk (nothing kept per point)."""
        total: list[torch.Tensor] = []

        def add(attribution: torch.Tensor, _logits: torch.Tensor, first: int) -> None:
            w = weights[first:first + attribution.shape[0]].to(attribution.device)
            part = (attribution.double() * w.view(-1, *[1] * (attribution.dim() - 1))).sum(dim=0)
            if total:
                total[0] += part
            else:
                total.append(part)

        _each_chunk(self.inner, target, points, cls, chunk, target.progress, add)
        return total[0]

    def _adaptive(self, target: Target, start: torch.Tensor, x: torch.Tensor, delta: torch.Tensor, steps: int,
                  cls: ClassTarget, chunk: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The trapezoid rule on a grid refined where its exactly known error is largest (input gradients)."""
        alphas = torch.linspace(0, 1, min(steps, FIRST_GRID), dtype=torch.float64)
        kept: list[torch.Tensor] = []  # every point's attribution, in the order of ``alphas``
        slopes: list[torch.Tensor] = []  # g(α) = Σ (x − x') ⊙ ∂y/∂x: completeness's integrand
        scores: list[torch.Tensor] = []  # y(α)

        def keep(attribution: torch.Tensor, logits: torch.Tensor, _first: int) -> None:
            if attribution.shape[1:] != delta.shape:
                raise CamError("the adaptive rule needs an input gradient; use rule='gauss_legendre'")
            kept.append(attribution)
            slopes.append((attribution.double() * delta).sum(dim=(1, 2, 3)).cpu())
            scores.append(cls.score(logits).double().cpu())

        new = alphas
        while True:
            done = len(torch.cat(slopes)) if slopes else 0
            progress = None if target.progress is None else (lambda d, _n, done=done: target.report(done + d, steps))
            _each_chunk(self.inner, target, PathPoints(start, x, new), cls, chunk, progress, keep)
            if alphas.numel() >= steps:
                break
            new = refine(alphas, torch.cat(slopes), torch.cat(scores), min(PER_ROUND, steps - alphas.numel()))
            alphas = torch.cat([alphas, new])
        weights = grid_weights(alphas).to(delta.device)
        total, first = torch.zeros_like(delta), 0
        for part in kept:
            total.add_((part.double() * weights[first:first + part.shape[0]].view(-1, 1, 1, 1)).sum(dim=0))
            first += part.shape[0]
        return total, alphas.sort().values


@dataclass(frozen=True)
class Product:
    """``pixel``'s attribution ⊙ ``cam``'s positive map upsampled bilinearly to the input (no scaling of its
    own: the shown map is normalised once, by ``explain``)."""

    pixel: Any
    cam: Any

    @property
    def needs_layer(self) -> bool:
        return needs_layer(self.pixel) or needs_layer(self.cam)

    def run(self, target: Target) -> MapResult:
        cam = self.cam.run(target)
        pixel = self.pixel.run(replace(target, class_idx=cam.class_idx, progress=None))
        heat = F.interpolate(cam.positive[None, None], size=target.x.shape[-2:], mode="bilinear",
                             align_corners=False)[0, 0]
        gradient = pixel.gradient * heat
        saliency = gradient.abs().amax(dim=0)
        return MapResult(raw=saliency, positive=saliency, logits=cam.logits, gradient=gradient,
                         notes=cam.notes + pixel.notes, class_idx=cam.class_idx)
