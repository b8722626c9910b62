"""Top-k classification of preprocessed images: class index, label and softmax probability."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cam_core.errors import CamError
from cam_core.hygiene import eval_mode


@dataclass(frozen=True)
class Prediction:
    """One of the top classes for an image: its index in the model's output, its name, its probability."""

    class_idx: int
    label: str
    prob: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict ``{"class_idx", "label", "prob"}``."""
        return asdict(self)


def predict(
    model: nn.Module, x: torch.Tensor, categories: Sequence[str] | None = None, top: int = 5
) -> list[Prediction]:
    """Classify one preprocessed image ``x`` (1×3×H×W) and return its ``top`` classes, most likely first."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise CamError(f"predict takes one image shaped 1×3×H×W, got {tuple(x.shape)} (use predict_batch for N>1)")
    return predict_batch(model, x, categories, top)[0]


def predict_batch(
    model: nn.Module, x: torch.Tensor, categories: Sequence[str] | None = None, top: int = 5
) -> list[list[Prediction]]:
    """Classify a batch ``x`` (N×3×H×W): one top-``top`` list per image.

    The model runs in eval mode (borrowed and restored) with gradients off; an output holding NaN or
    Inf raises ``CamError`` instead of returning meaningless probabilities.
    """
    if x.dim() != 4:
        raise CamError(f"predict takes images shaped N×3×H×W, got {tuple(x.shape)}")
    if top < 1:
        raise CamError(f"top must be at least 1, got {top}")
    with torch.no_grad(), eval_mode(model):
        logits = model(x)
    if isinstance(logits, (tuple, list)):  # some models return (logits, aux)
        logits = logits[0]
    if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise CamError(f"the model's output has shape {tuple(logits.shape)}; expected N×classes")
    if not bool(torch.isfinite(logits).all()):
        raise CamError("the model's output contains NaN or Inf (broken weights, or an input out of range)")
    num_classes = logits.shape[1]
    if categories is not None and len(categories) != num_classes:
        raise CamError(f"{len(categories)} labels for a model with {num_classes} classes")
    probs = torch.softmax(logits.float(), dim=1)
    values, indices = probs.topk(min(top, num_classes), dim=1)
    results: list[list[Prediction]] = []
    for row_values, row_indices in zip(values.cpu().tolist(), indices.cpu().tolist()):
        results.append(
            [
                Prediction(int(i), categories[i] if categories is not None else f"class {i}", float(p))
                for p, i in zip(row_values, row_indices)
            ]
        )
    return results
