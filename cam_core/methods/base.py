"""What every method receives (a resolved target) and returns (maps as tensors, before normalization)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import CamError

Progress = Callable[[int, int], None]


@dataclass
class Target:
    """One image and what to explain about it, already validated by ``explain``."""

    model: nn.Module
    x: torch.Tensor  # 1×3×H×W on the model's device
    class_idx: int | None  # None: the top class, set by the method from its forward pass
    layer_name: str | None
    layer: nn.Module | None
    channel: int | None = None
    progress: Progress | None = None

    def classes_for(self, logits: torch.Tensor) -> torch.Tensor:
        """The target class as a 1-element tensor: the top class of ``logits`` when none was asked for."""
        if self.class_idx is None:
            self.class_idx = int(logits[0].argmax())
        elif not 0 <= self.class_idx < logits.shape[1]:
            raise CamError(f"class {self.class_idx} does not exist: the model has {logits.shape[1]} classes "
                           f"(0–{logits.shape[1] - 1})")
        return torch.tensor([self.class_idx], device=logits.device)

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


def chunk_size(x: torch.Tensor, requested: int | None = None, per_sample_factor: int = 96) -> int:
    """How many perturbed copies of ``x`` to run at once: the request, or what fits the device's memory.

    The estimate assumes a network's activations take about ``per_sample_factor`` times the input's size.
    """
    if requested:
        return max(1, int(requested))
    per_sample = x[0].numel() * x.element_size() * per_sample_factor
    if x.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(x.device)
        budget = free // 4
    else:
        budget = 1 << 30  # 1 GiB on CPU/MPS: a full batch costs no more than its chunks here
    return int(max(1, min(64, budget // max(per_sample, 1))))
