"""What every method receives (a resolved request) and returns (maps as tensors, before normalization)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ..targets import ClassTarget

Progress = Callable[[int, int], None]


@dataclass
class Target:
    """One image and what to explain about it, validated by ``explain`` before the method runs.

    ``cls`` is the class target (its index ``None`` = the clean image's top class, fixed by the method's own
    forward pass and returned in ``MapResult.class_idx``); ``channel`` a feature-map target at ``layer``.
    """

    model: nn.Module
    x: torch.Tensor  # 1×3×H×W on the model's device
    class_idx: int | None
    layer_name: str | None
    layer: nn.Module | None
    channel: int | None = None
    progress: Progress | None = None

    @property
    def cls(self) -> ClassTarget:
        return ClassTarget(self.class_idx)

    def report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)


@dataclass
class MapResult:
    """A method's output. ``positive`` is the map to display (≥ 0, any resolution, not yet normalized)."""

    raw: torch.Tensor
    positive: torch.Tensor
    logits: torch.Tensor | None = None
    gradient: torch.Tensor | None = None  # 3×H×W signed, pixel-space methods
    extras: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    class_idx: int | None = None  # the class explained (set by the method; None for a feature-map target)



class Method(Protocol):
    """What the registry holds: ``run(target, **params) -> MapResult``; ``needs_layer`` when it reads
    ``target.layer`` (absent: False)."""

    def run(self, target: Target, **params: Any) -> MapResult: ...


def needs_layer(method: Any) -> bool:
    """Whether ``method`` works on a chosen layer: its own ``needs_layer`` (wrappers ask their parts)."""
    return bool(getattr(method, "needs_layer", False))


@dataclass(frozen=True)
class Function:
    """A method written as one function ``fn(target, **params)`` (perturbations, CAM, attention)."""

    fn: Callable[..., MapResult]
    needs_layer: bool = False

    def run(self, target: Target, **params: Any) -> MapResult:
        return self.fn(target, **params)
