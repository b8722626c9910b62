"""Feature evolution (Zeiler & Fergus, fig. 4): one channel of one layer across two to five weight states of one
architecture (e.g. checkpoints of a training run) — its feature map on a photo and its feature visualization,
side by side, and, given an image set, its top-activating patches there (Z&F fig. 2 per state).

Each column reuses the one home of its computation: ``features.activations`` for the map and
``visualize.visualize`` for what the channel looks for (the same seed for every column, so differences come from
the weights, not the random start), ``top_patches.collect`` for the set's top patches (one pass per state, each
patch's receptive-field crop beside its deconvnet projection). The models are built by the caller (``models.load_own_weights``); nothing here
loads a file. Maps are drawn on one shared scale so that a channel that grew stronger looks stronger.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from .audit.inputs import InputItem
from .audit.scan import Preprocess, prepare
from .errors import CamError
from .features import activations
from .render import colorize
from .top_patches import DEFAULT_K, Patch, collect, crop, projection
from .visualize import DEFAULT_SEED, Visualization, visualize

Progress = Callable[[int, int], None]

MIN_STATES, MAX_STATES = 2, 5
DEFAULT_VISUALIZE_STEPS = 64  # the Layers page's tile settings (a few seconds a channel on Lite0), not visualize's 256
DEFAULT_VISUALIZE_SIZE = 96


@dataclass(frozen=True)
class ShownPatch:
    """One of a state's top patches: the kept activation (``patch``: value, image index, position, box), the
    image's ``name``, its receptive-field ``crop`` and the deconvnet ``projection`` of that unit (uint8 RGB)."""

    patch: Patch
    name: str
    crop: np.ndarray
    projection: np.ndarray


@dataclass
class EvolutionColumn:
    """One weight state: ``fmap`` is the channel's u×v feature map on the photo, ``mean`` its mean,
    ``visualization`` what the channel looks for (None when ``visualize_steps`` was 0), and ``patches`` the
    channel's top patches over the image set, strongest first (None without one; ``errors``: the set's images
    that could not be read)."""

    name: str
    fmap: np.ndarray
    mean: float
    visualization: Visualization | None
    patches: list[ShownPatch] | None = None
    errors: tuple[str, ...] = ()

    @property
    def finite(self) -> bool:
        """False when the map holds NaN or infinity: broken weights (a NaN parameter, an overflow), not a quiet
        channel, so it must not be drawn as zero."""
        return bool(np.isfinite(self.fmap).all())


def check_states(models: Sequence[nn.Module], names: Sequence[str]) -> None:
    """Refuse fewer than 2 or more than 5 states, or states whose parameter names or shapes differ from the
    first one's (one architecture only), each with a one-line ``CamError``."""
    if not MIN_STATES <= len(models) <= MAX_STATES:
        raise CamError(f"feature evolution takes {MIN_STATES} to {MAX_STATES} weight files, got {len(models)}")
    if len(names) != len(models):
        raise CamError(f"{len(names)} names for {len(models)} weight states")
    first = {k: tuple(v.shape) for k, v in models[0].state_dict().items()}
    for model, name in zip(models[1:], names[1:]):
        other = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if other != first:
            diff = sorted(set(first) ^ set(other)) or [k for k in first if first[k] != other[k]]
            raise CamError(f"{name}: not the same architecture as {names[0]} (first difference: {diff[0]})")


def channel_patches(model: nn.Module, layer: str, channel: int, items: Sequence[InputItem], preprocess: Preprocess,
                    categories: Sequence[str], k: int = DEFAULT_K, *, mean: Sequence[float] = (0.485, 0.456, 0.406),
                    std: Sequence[float] = (0.229, 0.224, 0.225), progress: Progress | None = None,
                    ) -> tuple[list[ShownPatch], list[str]]:
    """The ``k`` images of ``items`` that excite ``channel`` of ``layer`` most (``top_patches.collect``, one pass),
    strongest first, each as its crop and deconvnet projection; and the one-line errors of unreadable images."""
    top, errors = collect(model, items, categories, preprocess, layer, k=k, channels=[channel], progress=progress)
    device = next(model.parameters()).device
    shown = []
    for p in top.patches():
        prepared = prepare(p.index, items[p.index], preprocess)
        if prepared.x is None:  # read once by the pass: only a file changed since then fails here
            raise CamError(prepared.error or f"{items[p.index].name}: cannot be read again")
        x = prepared.x.to(device)
        shown.append(ShownPatch(p, items[p.index].name, crop(x, p, mean, std), projection(model, x, layer, p)))
    return shown, errors


def evolution(models: Sequence[nn.Module], names: Sequence[str], x: torch.Tensor, layer: str, channel: int, *,
              visualize_steps: int = DEFAULT_VISUALIZE_STEPS, size: int = DEFAULT_VISUALIZE_SIZE,
              seed: int = DEFAULT_SEED, progress: Progress | None = None,
              mean: Sequence[float] = (0.485, 0.456, 0.406),
              std: Sequence[float] = (0.229, 0.224, 0.225),
              items: Sequence[InputItem] | None = None, preprocess: Preprocess | None = None,
              categories: Sequence[str] | None = None, k: int = DEFAULT_K) -> list[EvolutionColumn]:
    """Channel ``channel`` of ``layer`` in each of ``models`` (2–5 states of one architecture, named ``names``):
    its feature map on the model input ``x``; unless ``visualize_steps`` is 0, its feature visualization at
    ``size`` px with ``seed``; and with ``items`` (an image set, made model inputs by ``preprocess``; the heads'
    ``categories``) its top ``k`` patches there. ``progress(done, total)`` counts visualization steps and images
    over all columns. ``mean``/``std``: the models' input normalisation."""
    check_states(models, names)
    if visualize_steps < 0:
        raise CamError(f"visualize_steps must be 0 (no visualization) or more, got {visualize_steps}")
    if items is not None and (preprocess is None or categories is None):
        raise CamError("top patches over an image set need its preprocess and the models' categories")
    per_state = visualize_steps + (len(items) if items is not None else 0)
    total = per_state * len(models)
    columns: list[EvolutionColumn] = []
    for i, (model, name) in enumerate(zip(models, names)):
        maps = activations(model, x, layer).maps
        if not 0 <= channel < maps.shape[0]:
            raise CamError(f"layer {layer!r} has {maps.shape[0]} channels; channel {channel} is not one of them")

        def step(offset: int) -> Progress | None:
            return None if progress is None else (lambda done, _n, b=i * per_state + offset: progress(b + done, total))

        vis = None
        if visualize_steps:
            vis = visualize(model, layer, channel, steps=visualize_steps, size=size, seed=seed, progress=step(0),
                            mean=mean, std=std)
        patches, errors = None, []
        if items is not None:
            assert preprocess is not None and categories is not None
            patches, errors = channel_patches(model, layer, channel, items, preprocess, categories, k, mean=mean,
                                              std=std, progress=step(visualize_steps))
        fmap = maps[channel]
        columns.append(EvolutionColumn(name=name, fmap=fmap, mean=float(fmap.mean()), visualization=vis,
                                       patches=patches, errors=tuple(errors)))
    return columns


def shared_scale(columns: Sequence[EvolutionColumn]) -> tuple[float, float]:
    """The lowest and highest value over every column's map: one scale, so strength is comparable across states.
    Broken columns (``finite`` False) are left out; (0, 0) when none is left."""
    kept = [c.fmap for c in columns if c.finite]
    if not kept:
        return 0.0, 0.0
    return min(float(f.min()) for f in kept), max(float(f.max()) for f in kept)


def shared_map(column: EvolutionColumn, scale: tuple[float, float], cmap: str = "viridis") -> np.ndarray:
    """A column's map colorized on the shared ``scale`` (``shared_scale``), u×v×3 uint8: equal colours are equal
    activations in every column."""
    lo, hi = scale
    return colorize((column.fmap - lo) / (hi - lo if hi > lo else 1.0), cmap)


def _paste(sheet: np.ndarray, tile: np.ndarray, top: int, left: int, side: int) -> None:
    sheet[top:top + side, left:left + side] = np.asarray(Image.fromarray(tile).resize((side, side),
                                                                                      Image.Resampling.NEAREST))


def strip(columns: Sequence[EvolutionColumn], cell: int = 128, gap: int = 4, cmap: str = "viridis") -> np.ndarray:
    """The columns as one image on white: the feature maps (shared scale, nearest-neighbour enlarged) on top,
    where there is one each visualization below it, then each top patch as its crop beside its projection
    (half a cell each, strongest first); H×W×3 uint8."""
    scale = shared_scale(columns)
    rows = 2 if any(c.visualization is not None for c in columns) else 1
    half = cell // 2
    patch_rows = max((len(c.patches or []) for c in columns), default=0)
    height = rows * (cell + gap) + gap + patch_rows * (half + gap)
    sheet = np.full((height, len(columns) * (cell + gap) + gap, 3), 255, np.uint8)
    for j, c in enumerate(columns):
        left = gap + j * (cell + gap)
        tiles = [shared_map(c, scale, cmap)]
        if c.visualization is not None:
            tiles.append(c.visualization.image)
        for r, tile in enumerate(tiles):
            _paste(sheet, tile, gap + r * (cell + gap), left, cell)
        for r, p in enumerate(c.patches or []):
            top = rows * (cell + gap) + gap + r * (half + gap)
            _paste(sheet, p.crop, top, left, half)
            _paste(sheet, p.projection, top, left + cell - half, half)
    return sheet


__all__ = ["DEFAULT_VISUALIZE_SIZE", "DEFAULT_VISUALIZE_STEPS", "EvolutionColumn", "MAX_STATES", "MIN_STATES",
           "ShownPatch", "channel_patches", "check_states", "evolution", "shared_map", "shared_scale", "strip"]
