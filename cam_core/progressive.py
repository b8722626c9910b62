"""Progressive occlusion: a coarse map first (stride ≈ patch), then refined in place to the requested stride.

For small patches the coarse grid itself is large; a preview of about 25 of its windows comes first then.

The coarse windows are a subset of the fine grid (every ``patch // stride``-th start along each axis, plus
the last), so no window runs twice: the refinement only runs the fine windows not yet done. Every
intermediate map is defined everywhere (the coarse windows cover every pixel) and the last one is the
direct run's map. The grid is filled in place: an ``OcclusionStep`` shares it with the steps before it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .batching import Progress
from .class_switch import occlusion_explanation
from .device import model_device
from .explanation import Explanation
from .hygiene import eval_mode
from .methods.occlusion import (OcclusionGrid, _check, _empty_grid, coarse_indices, fill_tensor, occlusion_map,
                                run_windows)
from .registry import get_method


@dataclass
class OcclusionStep:
    """One update of a progressive run: the grid so far (shared, filled in place) and how far it got."""

    grid: OcclusionGrid
    done: int  # windows computed so far
    total: int  # windows in the fine grid
    stage: str  # "preview" (sparse windows, gaps filled by the nearest), "coarse" (stride ≈ patch) or "refine"

    @property
    def final(self) -> bool:
        return self.done == self.total

    def map(self, class_idx: int | None = None) -> torch.Tensor:
        """The H×W map of ``class_idx`` from the windows done so far."""
        return occlusion_map(self.grid, class_idx)

    def coarse(self) -> OcclusionGrid:
        """The coarse windows alone (stride ≈ patch) as a grid of their own: complete from the "coarse" step on."""
        g = self.grid
        rows = coarse_indices(len(g.rows), g.patch, g.stride)
        cols = coarse_indices(len(g.cols), g.patch, g.stride)
        index = torch.as_tensor([r * len(g.cols) + c for r in rows for c in cols], device=g.probs.device)
        return OcclusionGrid(g.probs[index], g.base, g.logits, [g.rows[r] for r in rows], [g.cols[c] for c in cols],
                             g.patch, g.patch, g.size, g.done[index])


def _spread(n: int, count: int) -> list[int]:
    """About ``count`` indices out of ``n``, evenly spread, first and last included."""
    if count >= n:
        return list(range(n))
    return sorted({round(i * (n - 1) / max(1, count - 1)) for i in range(count)})


def window_order(rows: int, cols: int, patch: int, stride: int, preview: int = 0
                 ) -> tuple[list[int], list[int], list[int]]:
    """Row-major window indices of the preview (≤ ``preview`` windows, only when the coarse grid is larger),
    of the rest of the coarse grid, and of the rest of the fine grid (in refinement order)."""
    coarse_r, coarse_c = coarse_indices(rows, patch, stride), coarse_indices(cols, patch, stride)
    coarse = [r * cols + c for r in coarse_r for c in coarse_c]
    first: list[int] = []
    if preview and len(coarse) > preview:
        side = max(2, int(preview ** 0.5))
        first = [coarse_r[i] * cols + coarse_c[j] for i in _spread(len(coarse_r), side)
                 for j in _spread(len(coarse_c), side)]
        picked = set(first)
        coarse = [i for i in coarse if i not in picked]
    taken = set(coarse) | set(first)
    rest = [i for i in range(rows * cols) if i not in taken]
    return first, coarse, rest


def progressive_occlusion(model: nn.Module, x: torch.Tensor, patch: int, stride: int,
                          fill: float | Sequence[float] = 0.0, chunk: int | None = None,
                          progress: Progress | None = None, updates: int = 8,
                          engine: str = "auto", preview: int = 25) -> Iterator[OcclusionStep]:
    """Yield the coarse map's step, then about ``updates`` refinements; the last step is the full grid.

    When the coarse grid has more than ``preview`` windows (small patches), a ``"preview"`` step comes
    first: about ``preview`` coarse windows spread over the image, pixels between them taking the nearest
    window's value — a first map in a fraction of the time; ``preview=0`` turns it off. Every window runs
    once. ``progress(done, total)`` counts windows of the fine grid. Stop iterating to stop the work.
    """
    x = x.detach()
    patch, stride = _check(x, patch, stride)
    value = fill_tensor(fill, x)
    with eval_mode(model):
        grid = _empty_grid(model, x, patch, stride)
    positions = grid.positions
    first, coarse, rest = window_order(len(grid.rows), len(grid.cols), patch, stride, preview)
    total = len(positions)
    finished = 0

    def run(indices: list[int]) -> None:
        nonlocal finished
        offset = finished

        def report(done: int, _n: int) -> None:
            if progress is not None:
                progress(offset + done, total)

        with eval_mode(model):
            probs = run_windows(model, x, [positions[i] for i in indices], patch, value, chunk, report, engine)
        index = torch.as_tensor(indices, device=grid.probs.device)
        grid.probs[index] = probs.to(grid.probs.dtype)
        grid.done[index] = True
        finished += len(indices)

    if first:
        run(first)
        yield OcclusionStep(grid, finished, total, "preview")
    run(coarse)
    yield OcclusionStep(grid, finished, total, "coarse")
    if not rest:
        return
    size = max(1, -(-len(rest) // max(1, int(updates))))
    for start in range(0, len(rest), size):
        run(rest[start:start + size])
        yield OcclusionStep(grid, finished, total, "refine")


def progressive_maps(model: nn.Module, x: torch.Tensor, patch: int, stride: int, class_idx: int | None = None,
                     on_map: Callable[[torch.Tensor, OcclusionStep], None] | None = None,
                     **kwargs: object) -> OcclusionGrid:
    """Callback form: ``on_map(map, step)`` after each step; returns the finished grid."""
    step = None
    for step in progressive_occlusion(model, x, patch, stride, **kwargs):  # type: ignore[arg-type]
        if on_map is not None:
            on_map(step.map(class_idx), step)
    assert step is not None
    return step.grid


def explain_progressive(model: nn.Module, x: torch.Tensor, class_idx: int | None = None, *,
                        on_step: Callable[[OcclusionStep], None] | None = None, progress: Progress | None = None,
                        **params: Any) -> Explanation:
    """``explain(model, x, "occlusion", None, class_idx, **params)`` run coarse to fine: ``on_step(step)`` after
    each step of ``progressive_occlusion`` (no preview), the same ``Explanation`` at the end (every window once)."""
    started = time.perf_counter()
    resolved = get_method("occlusion").resolve_params(params)
    x = x.to(model_device(model))
    step = None
    for step in progressive_occlusion(model, x, resolved["patch"], resolved["stride"], resolved["fill"],
                                      resolved["chunk"], progress, engine=resolved["engine"], preview=0):
        if on_step is not None:
            on_step(step)
    assert step is not None and step.final
    return occlusion_explanation(step.grid, class_idx, resolved, started=started)
