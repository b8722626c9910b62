"""The last step: logits → probabilities by a softmax at temperature ``T`` (``softmax(logits / T)``), and the top-k."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import CamError

TEMPERATURES = (0.05, 20.0)  # the range a person may pick; 1 is the model's own softmax


@dataclass(frozen=True)
class Softmax:
    """``probs`` (one per class) at ``temperature``; ``top``: (class index, probability), most likely first."""

    temperature: float
    probs: np.ndarray
    top: tuple[tuple[int, float], ...]


def softmax(logits: torch.Tensor, temperature: float = 1.0, k: int = 5) -> Softmax:
    """Probabilities of ``logits`` (one image's class scores) at ``temperature``, with the ``k`` most likely.

    Below 1 the largest logit takes more of the mass, above 1 the classes even out; the order never changes.
    Computed in float64 with the maximum subtracted first, so no temperature in range overflows.
    """
    if not TEMPERATURES[0] <= temperature <= TEMPERATURES[1]:
        raise CamError(f"temperature must be between {TEMPERATURES[0]} and {TEMPERATURES[1]}, got {temperature}")
    z = logits.detach().double().flatten().cpu() / temperature
    probs = torch.softmax(z - z.max(), dim=0).numpy()
    order = np.argsort(-probs, kind="stable")[:k]
    return Softmax(float(temperature), probs, tuple((int(i), float(probs[i])) for i in order))
