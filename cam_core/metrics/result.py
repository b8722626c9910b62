"""What a metric returns: a score, the curve it came from, and one line saying how to read it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .baseline import BaselineScores, standing


@dataclass(frozen=True)
class Curve:
    """One measured curve: ``y`` (e.g. the class probability) against ``x`` (e.g. the fraction of pixels changed)."""

    x: np.ndarray
    y: np.ndarray
    x_label: str
    y_label: str


@dataclass
class MetricResult:
    """One metric on one (image, map, class).

    ``score``: the number the metric is known by (an AUC, a mean, a share, 1/0 for a hit);
    ``curve``: the curve it summarises, or ``None`` for a single measurement (average drop, pointing game);
    ``curves``: every curve behind the score by name (ROAD: ``"MoRF"`` and ``"LeRF"``);
    ``explanation``: one plain line — what the score means and which direction is better;
    ``higher_is_better``: the same direction, for tables and sorting;
    ``class_idx``: the class whose probability was measured (``None`` for the model-free localization metrics);
    ``details``: the values a person may want to check (clean probability, pixels per step, the box …);
    ``notes``: warnings about this result (a blank map, a tie at the maximum);
    ``baseline``: the same metric on seeded random smooth maps (``evaluate(..., baseline=N)``), else ``None``;
    ``verdict``: one plain sentence comparing ``score`` with them ("better than all 16 random maps …"), else "".
    """

    name: str
    score: float
    curve: Curve | None
    explanation: str
    higher_is_better: bool
    class_idx: int | None = None
    curves: dict[str, Curve] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    baseline: BaselineScores | None = None
    verdict: str = ""

    def sentence(self) -> str:
        """The verdict first, the number second, e.g. "Deletion: the map is better than all 8 random maps
        (random: 0.318 ± 0.036); AUC 0.210, lower is better." (without a baseline: the number and its direction)."""
        head = self.name.replace("_", " ").capitalize()
        number = f"{'AUC' if self.curve is not None else 'score'} {self.score:.3f}, " \
                 f"{'higher' if self.higher_is_better else 'lower'} is better"
        if not self.verdict:
            return f"{head}: {number} (not compared with random maps)."
        return f"{head}: the map is {self.verdict}; {number}."

    @property
    def standing(self) -> str | None:
        """``"better"``, ``"unclear"`` or ``"no better"`` than the random maps; ``None`` without a baseline."""
        return None if self.baseline is None else standing(self.score, self.baseline, self.higher_is_better)


def trapezoid_auc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under ``y(x)`` by the trapezoid rule (``x`` increasing; unequal spacing allowed)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
