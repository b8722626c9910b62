"""What an audit costs, in model runs (images through the model), from the estimators that already exist: the
metrics' ``model_runs`` (deletion/insertion and their random maps) and each method's ``MethodSpec`` estimate.
The pass's progress counts the same units, so "time left" follows the work, not the batches."""
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..batching import estimate_seconds
from ..metrics import model_runs
from ..metrics.baseline import Baseline
from ..registry import get_method

if TYPE_CHECKING:
    from .scan import ScanSettings

#: Random maps each deletion/insertion score is judged against by default in an audit (docs/audit.md: what 8
#: against 16 changes and costs, measured).
AUDIT_BASELINE = 8


@dataclass(frozen=True)
class ImageCost:
    """Model runs one image costs: the recorded pass (1; every shared layer CAM is in it), each other method,
    each method's own deletion/insertion curves, and the random maps' curves (once per image: every method's map
    is judged against the same draw)."""

    methods: Mapping[str, float] = field(default_factory=dict)  # name -> runs (0 for a CAM on the shared pass)
    metrics: int = 0  # runs of one map's own curves (clean image included)
    baseline: int = 0  # runs of the random maps' curves
    pass_runs: int = 1

    @property
    def units(self) -> float:
        """All of it, per image."""
        return self.pass_runs + sum(self.methods.values()) + self.metrics * len(self.methods) + self.baseline


def method_runs(model: nn.Module, x: torch.Tensor, name: str, params: Mapping[str, object], layer: str) -> float:
    """Model runs of one method on one image outside the shared pass: its ``MethodSpec`` estimate divided by one
    image's measured forward time when both are known, else 1 (a gradient or a forward)."""
    spec = get_method(name)
    seconds = spec.expected_seconds(model, x, dict(params), layer)
    per_run = estimate_seconds(model, x, 1)
    if seconds is None or not per_run:
        return 1.0
    return max(1.0, seconds / per_run)


def image_cost(model: nn.Module, x: torch.Tensor, settings: ScanSettings, shared: Collection[str]) -> ImageCost:
    """What auditing one image like ``x`` (1×C×H×W, preprocessed) with ``settings`` costs, the methods in
    ``shared`` being layer CAMs on the pass's A and G (``Scanner.cost`` gives them); nothing is run."""
    methods = {name: 0.0 if name in shared else method_runs(model, x, name, params, settings.layer)
               for name, params in settings.methods.items()}
    own = base = 0
    if settings.metrics:
        # a fresh Baseline: nothing kept yet, so the random maps' runs are counted (as for a new image)
        ref = Baseline(settings.baseline) if settings.baseline else None
        own, base = model_runs(model, x, list(settings.metrics), None, baseline=ref)
    return ImageCost(methods, own, base)


def expected_seconds(model: nn.Module, x: torch.Tensor, cost: ImageCost, images: int) -> float | None:
    """Seconds ``images`` such images should take, at the forward speed this process measured (None before)."""
    return estimate_seconds(model, x, max(1, round(cost.units * images)))


__all__ = ["AUDIT_BASELINE", "ImageCost", "expected_seconds", "image_cost", "method_runs"]
