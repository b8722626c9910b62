"""Another class's explanation from one already computed, without a forward pass, where the result allows it.

Occlusion keeps every window's probabilities for all classes (``extras["grid"]``, an ``OcclusionGrid``), so
the map of any class is ``occlusion_map(grid, c)``: the app changes the class of an occlusion view for free.
The result is built exactly as ``explain`` builds it (positive part, max-normalised, at the input's size).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .explain import normalize
from .explanation import Explanation
from .methods.occlusion import OcclusionGrid, occlusion_map


def switchable(exp: Explanation) -> bool:
    """True when ``exp`` carries what ``for_class`` needs (every class's windows, all computed)."""
    grid = exp.extras.get("grid")
    return isinstance(grid, OcclusionGrid) and grid.complete


def occlusion_explanation(grid: OcclusionGrid, class_idx: int | None, params: dict[str, Any],
                          notes: Sequence[str] = (), started: float | None = None) -> Explanation:
    """The occlusion ``Explanation`` of ``class_idx`` (``None``: the clean top class) from a complete grid,
    built exactly as ``explain`` builds it (positive part, max-normalised, at the input's size)."""
    started = time.perf_counter() if started is None else started
    cls = grid.top_class if class_idx is None else int(class_idx)
    raw = occlusion_map(grid, cls)
    heat, blank = normalize(raw.clamp(min=0), signed=raw)
    notes = [n for n in notes if not n.startswith("no positive evidence")]
    if blank:
        notes.append(f"no positive evidence for class {cls}: the map is blank")
    extras = {"prob_grid": grid.prob_grid(cls).cpu().numpy(), "top_class_grid": grid.top_class_grid().cpu().numpy(),
              "rows": grid.rows, "cols": grid.cols, "patch": grid.patch, "stride": grid.stride,
              "base_prob": float(grid.base[cls]), "grid": grid}
    logits = grid.logits[0]
    return Explanation(
        heatmap=heat.cpu().numpy().astype("float32", copy=False), raw=raw.detach().cpu().numpy(),
        method="occlusion", class_idx=cls, score=float(logits[cls]), prob=float(logits.softmax(dim=0)[cls]),
        layer=None, elapsed_ms=(time.perf_counter() - started) * 1000.0, gradient=None, params=dict(params),
        extras=extras, notes=notes)


def for_class(exp: Explanation, class_idx: int | None) -> Explanation:
    """``exp`` re-targeted to ``class_idx`` (``None``: the clean top class), as ``explain`` would return it.

    Raises ``ValueError`` when ``exp`` is not ``switchable``; ``CamError`` for a class the model lacks.
    """
    if not switchable(exp):
        raise ValueError(f"a {exp.method} explanation cannot change class without recomputing")
    return occlusion_explanation(exp.extras["grid"], class_idx, exp.params, exp.notes)
