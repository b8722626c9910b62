"""Another class's explanation from one already computed, without a forward pass, where the result allows it.

Occlusion keeps every window's probabilities for all classes (``extras["grid"]``, an ``OcclusionGrid``), so
the map of any class is ``occlusion_map(grid, c)``: the app changes the class of an occlusion view for free.
The result is built exactly as ``explain`` builds it (positive part, max-normalised, at the input's size).
"""
from __future__ import annotations

import dataclasses
import time

from .explain import normalize
from .explanation import Explanation
from .methods.occlusion import OcclusionGrid, occlusion_map


def switchable(exp: Explanation) -> bool:
    """True when ``exp`` carries what ``for_class`` needs (every class's windows, all computed)."""
    grid = exp.extras.get("grid")
    return isinstance(grid, OcclusionGrid) and grid.complete


def for_class(exp: Explanation, class_idx: int | None) -> Explanation:
    """``exp`` re-targeted to ``class_idx`` (``None``: the clean top class), as ``explain`` would return it.

    Raises ``ValueError`` when ``exp`` is not ``switchable``; ``CamError`` for a class the model lacks.
    """
    if not switchable(exp):
        raise ValueError(f"a {exp.method} explanation cannot change class without recomputing")
    started = time.perf_counter()
    grid: OcclusionGrid = exp.extras["grid"]
    cls = grid.top_class if class_idx is None else int(class_idx)
    raw = occlusion_map(grid, cls)
    heat, blank = normalize(raw.clamp(min=0), signed=raw)
    notes = [n for n in exp.notes if not n.startswith("no positive evidence")]
    if blank:
        notes.append(f"no positive evidence for class {cls}: the map is blank")
    extras = dict(exp.extras, prob_grid=grid.prob_grid(cls).cpu().numpy(), base_prob=float(grid.base[cls]))
    logits = grid.logits[0]
    return dataclasses.replace(
        exp, heatmap=heat.cpu().numpy().astype("float32", copy=False), raw=raw.detach().cpu().numpy(),
        class_idx=cls, score=float(logits[cls]), prob=float(logits.softmax(dim=0)[cls]),
        elapsed_ms=(time.perf_counter() - started) * 1000.0, extras=extras, notes=notes)
