"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2): slide a grey square over the image and watch p^c.

Map value at a pixel = mean over the windows covering it of p^c(x) − p^c(x with the window filled).
Windows start every ``stride`` pixels, plus one flush with the far edge so every pixel is covered.
The fill is a value in the model's normalized input space: 0 is the dataset mean.

One pass keeps every window's whole probability vector (``occlusion_windows`` → ``OcclusionGrid``), so the
map of any class is a small matrix product (``occlusion_map``) and changing the class costs no forward
pass. The windows run through the exact incremental engine (``cam_core.incremental``: only the region a
window changes is recomputed, layer by layer) where the network allows it, and through plain batched
forwards (``cam_core.batching``) otherwise; both give the same probabilities.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..batching import Progress, batched_forward, per_item_seconds, single_seconds
from ..targets import logits_of
from ..errors import CamError
from ..hygiene import eval_mode
from .base import Function, MapResult, Target

ENGINES = ("auto", "incremental", "full")


def window_starts(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets of windows of ``patch`` along ``length``: every ``stride``, and one at the far edge."""
    if patch >= length:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def fill_tensor(fill: float | Sequence[float], x: torch.Tensor) -> torch.Tensor:
    """The occluder's value as a C×1×1 tensor (one number for all channels, or one per channel)."""
    values = torch.as_tensor(fill, dtype=x.dtype, device=x.device).flatten()
    if values.numel() == 1:
        values = values.expand(x.shape[1])
    if values.numel() != x.shape[1]:
        raise CamError(f"occlusion fill needs 1 or {x.shape[1]} values, got {values.numel()}")
    return values.view(-1, 1, 1)


def occlude(x: torch.Tensor, top: int, left: int, patch: int, fill: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` (1×C×H×W) with the square at (top, left) set to ``fill``."""
    out = x.clone()
    out[:, :, top:top + patch, left:left + patch] = fill
    return out


@dataclass
class OcclusionGrid:
    """Every window's softmax probabilities (all K classes), in row-major window order.

    ``done`` marks the windows computed so far (a progressive run fills the grid in place); maps and top
    classes use only those. ``probs`` rows of windows not yet done hold NaN.
    """

    probs: torch.Tensor  # (R·C)×K
    base: torch.Tensor  # K: the clean image's probabilities
    logits: torch.Tensor  # 1×K clean logits
    rows: list[int]
    cols: list[int]
    patch: int
    stride: int
    size: tuple[int, int]  # H, W of the input
    done: torch.Tensor = field(default=None)  # type: ignore[assignment]  # bool (R·C)

    def __post_init__(self) -> None:
        if self.done is None:
            self.done = torch.ones(self.probs.shape[0], dtype=torch.bool, device=self.probs.device)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.cols)

    @property
    def positions(self) -> list[tuple[int, int]]:
        return [(r, c) for r in self.rows for c in self.cols]

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    @property
    def top_class(self) -> int:
        """The clean image's top class."""
        return int(self.logits[0].argmax())

    def prob_grid(self, class_idx: int) -> torch.Tensor:
        """p^c with each window filled, as an R×C grid (NaN where not done yet)."""
        return self.probs[:, _check_class(self, class_idx)].view(self.shape)

    def top_class_grid(self) -> torch.Tensor:
        """The winning class with each window filled, R×C (−1 where not done yet)."""
        tops = self.probs.nan_to_num(-1.0).argmax(dim=1)
        return torch.where(self.done, tops, torch.full_like(tops, -1)).view(self.shape)


def _check_class(grid: OcclusionGrid, class_idx: int) -> int:
    classes = grid.probs.shape[1]
    if not 0 <= int(class_idx) < classes:
        raise CamError(f"class {class_idx} does not exist: the model has {classes} classes (0–{classes - 1})")
    return int(class_idx)


def _cover(length: int, starts: list[int], patch: int, like: torch.Tensor) -> torch.Tensor:
    """length×len(starts) 0/1 matrix: which windows (by start) cover each pixel along one axis."""
    pos = torch.arange(length, device=like.device)[:, None]
    start = torch.as_tensor(starts, device=like.device)[None, :]
    return ((pos >= start) & (pos < start + patch)).to(like.dtype)


def occlusion_map(grid: OcclusionGrid, class_idx: int | None = None) -> torch.Tensor:
    """The H×W occlusion map of ``class_idx`` (the clean top class when ``None``) from a computed grid.

    Each pixel is the mean, over the done windows covering it, of p^c(x) − p^c(x with the window filled):
    ``A · D · Bᵀ / A · done · Bᵀ`` with A, B the row/column cover matrices — no forward pass.
    """
    c = grid.top_class if class_idx is None else _check_class(grid, class_idx)
    height, width = grid.size
    probs = grid.probs[:, c]
    done = grid.done.to(probs.dtype)
    drop = torch.where(grid.done, grid.base[c] - probs, torch.zeros_like(probs)).view(grid.shape)
    rows = _cover(height, grid.rows, grid.patch, probs)
    cols = _cover(width, grid.cols, grid.patch, probs)
    total = rows @ drop @ cols.T
    count = rows @ done.view(grid.shape) @ cols.T
    out = total / count.clamp(min=1)
    gaps = count == 0
    if bool(gaps.any()) and bool(grid.done.any()):
        out[gaps] = _nearest_window(grid, drop, gaps)
    return out


def _nearest_window(grid: OcclusionGrid, drop: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
    """For pixels no done window covers (a preview's sparse windows): the drop of the nearest done window."""
    half = (grid.patch - 1) / 2
    r = torch.as_tensor(grid.rows, dtype=torch.float64, device=drop.device) + half
    c = torch.as_tensor(grid.cols, dtype=torch.float64, device=drop.device) + half
    centres = torch.stack(torch.meshgrid(r, c, indexing="ij"), dim=-1).view(-1, 2)[grid.done]
    values = drop.flatten()[grid.done]
    pixels = gaps.nonzero().to(torch.float64)
    nearest = torch.cdist(pixels, centres).argmin(dim=1)
    return values[nearest]


class WindowVariants:
    """The occluded images of a list of windows, written on demand into ``batching``'s buffer."""

    def __init__(self, x: torch.Tensor, positions: Sequence[tuple[int, int]], patch: int, fill: torch.Tensor):
        self.template, self.count = x, len(positions)
        self.positions, self.patch, self.value = list(positions), patch, fill

    def fill(self, start: int, out: torch.Tensor) -> None:
        out.copy_(self.template.expand_as(out))
        p = self.patch
        for j, (r, c) in enumerate(self.positions[start:start + out.shape[0]]):
            out[j, :, r:r + p, c:c + p] = self.value


def _check(x: torch.Tensor, patch: int, stride: int) -> tuple[int, int]:
    patch, stride = int(patch), int(stride)
    if patch < 1 or stride < 1:
        raise CamError("occlusion patch size and stride must be at least 1 pixel")
    if x.dim() != 4 or x.shape[0] != 1:
        raise CamError("occlusion explains one image at a time: x must be 1×C×H×W")
    return patch, stride


def window_count(x: torch.Tensor, patch: int, stride: int, coarse_only: bool = False) -> int:
    """How many windows a run (or its coarse first map) has."""
    rows, cols = window_starts(x.shape[-2], patch, stride), window_starts(x.shape[-1], patch, stride)
    if coarse_only:
        return len(coarse_indices(len(rows), patch, stride)) * len(coarse_indices(len(cols), patch, stride))
    return len(rows) * len(cols)


def estimate_occlusion_seconds(model: nn.Module, x: torch.Tensor, patch: int, stride: int,
                               engine: str = "auto", fill: float | Sequence[float] = 0.0,
                               coarse_only: bool = False) -> float:
    """Seconds a run of ``occlusion_windows`` (or, ``coarse_only``, its first map) will take, up front: the
    clean forward, then the windows at the incremental engine's time per window plus any set-up it still has
    to do (``incremental.window_cost``) where it applies, else at a plain batched forward's time per item —
    each a measured ratio to the calibrated forward × that forward now (``batching.calibration``)."""
    patch, stride = _check(x, patch, stride)
    count = window_count(x, patch, stride, coarse_only)
    single = single_seconds(model, x)
    if engine != "full":
        from ..incremental import window_cost  # imported late: torch.fx is only needed here

        rows, cols = window_starts(x.shape[-2], patch, stride), window_starts(x.shape[-1], patch, stride)
        with eval_mode(model):
            cost = window_cost(model, x, [(r, c) for r in rows for c in cols], patch, fill_tensor(fill, x))
        if cost is not None:
            setup, per_window = cost
            return single + setup + count * per_window
    return single + count * per_item_seconds(model, x)


def run_windows(model: nn.Module, x: torch.Tensor, positions: Sequence[tuple[int, int]], patch: int,
                value: torch.Tensor, chunk: int | None = None, progress: Progress | None = None,
                engine: str = "auto") -> torch.Tensor:
    """Softmax probabilities (len(positions)×K, x's dtype) of ``x`` with each window filled by ``value``."""
    if engine not in ENGINES:
        raise CamError(f"occlusion engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    probs = None
    if engine != "full":
        from ..incremental import incremental_windows  # imported late: torch.fx is only needed here

        probs = incremental_windows(model, x, positions, patch, value, chunk=chunk, progress=progress,
                                    required=engine == "incremental")
    if probs is None:
        probs = batched_forward(model, WindowVariants(x, positions, patch, value), chunk=chunk,
                                progress=progress, head=lambda logits: logits.softmax(dim=1))
    return probs


def coarse_indices(n: int, patch: int, stride: int) -> list[int]:
    """Indices of a fine grid's windows (along one axis) that make a grid of stride ≈ ``patch``."""
    step = max(1, patch // stride)
    picked = list(range(0, n, step))
    if picked[-1] != n - 1:
        picked.append(n - 1)
    return picked


def _empty_grid(model: nn.Module, x: torch.Tensor, patch: int, stride: int) -> OcclusionGrid:
    with torch.inference_mode():
        logits = logits_of(model(x))
    base = logits.softmax(dim=1)[0]
    rows, cols = window_starts(x.shape[-2], patch, stride), window_starts(x.shape[-1], patch, stride)
    probs = torch.full((len(rows) * len(cols), logits.shape[1]), float("nan"), dtype=base.dtype,
                       device=base.device)
    done = torch.zeros(probs.shape[0], dtype=torch.bool, device=base.device)
    return OcclusionGrid(probs, base, logits, rows, cols, patch, stride, (x.shape[-2], x.shape[-1]), done)


def occlusion_windows(model: nn.Module, x: torch.Tensor, patch: int, stride: int,
                      fill: float | Sequence[float] = 0.0, chunk: int | None = None,
                      progress: Progress | None = None, engine: str = "auto") -> OcclusionGrid:
    """Run every window once and keep its full probability vector: maps for all classes at once.

    ``progress(done, total)`` is called as windows complete; ``engine``: ``"auto"`` (incremental where the
    network allows it, plain forwards otherwise), ``"incremental"`` (raise if it cannot apply) or ``"full"``.
    The model is borrowed (eval mode while running, nothing else touched).
    """
    x = x.detach()
    patch, stride = _check(x, patch, stride)
    value = fill_tensor(fill, x)
    with eval_mode(model):
        grid = _empty_grid(model, x, patch, stride)
        grid.probs = run_windows(model, x, grid.positions, patch, value, chunk, progress, engine)
    grid.done = torch.ones_like(grid.done)
    return grid


def run_occlusion(target: Target, patch: int, stride: int, fill: float | Sequence[float], chunk: int | None,
                  engine: str) -> MapResult:
    """The registered method: ``occlusion_windows`` then ``occlusion_map`` for the target class."""
    grid = occlusion_windows(target.model, target.x, patch, stride, fill, chunk, target.progress, engine)
    cls = target.cls.index_for(grid.logits)
    raw = occlusion_map(grid, cls)
    extras = {
        "prob_grid": grid.prob_grid(cls).cpu().numpy(),
        "top_class_grid": grid.top_class_grid().cpu().numpy(),
        "rows": grid.rows, "cols": grid.cols, "patch": grid.patch, "stride": grid.stride,
        "base_prob": float(grid.base[cls]),
        "grid": grid,  # every class's windows: another class's map is occlusion_map(grid, c), no forward pass
    }
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=grid.logits, extras=extras, class_idx=cls)


OCCLUSION = Function(run_occlusion)
