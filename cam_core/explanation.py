"""The result of one explanation: the map, what it explains, and how long it took."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Explanation:
    """One image's explanation.

    ``heatmap`` is float32 H×W in [0, 1] at the resolution of the model input ``x``;
    ``raw`` is the un-normalized map at its native resolution (signed where the method is signed);
    ``gradient`` is the 3×H×W signed pixel-space image for pixel-space methods (else ``None``).
    """

    heatmap: np.ndarray
    raw: np.ndarray
    method: str
    class_idx: int | None
    score: float | None
    prob: float | None
    layer: str | None
    elapsed_ms: float
    gradient: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    channel: int | None = None

    @property
    def is_blank(self) -> bool:
        """True when the map holds no positive evidence (all zeros)."""
        return not bool(np.any(self.heatmap > 0))
