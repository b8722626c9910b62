"""Feature evolution (Zeiler & Fergus, fig. 4): one channel of one layer across two to five weight states of one
architecture (e.g. checkpoints of a training run) — its feature map on a photo and its feature visualization,
side by side.

Each column reuses the one home of its computation: ``features.activations`` for the map and
``visualize.visualize`` for what the channel looks for (the same seed for every column, so differences come from
the weights, not the random start). The models are built by the caller (``models.load_own_weights``); nothing here
loads a file. Maps are drawn on one shared scale so that a channel that grew stronger looks stronger.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from .errors import CamError
from .features import activations
from .render import colorize
from .visualize import DEFAULT_SEED, Visualization, visualize

Progress = Callable[[int, int], None]

MIN_STATES, MAX_STATES = 2, 5
DEFAULT_VISUALIZE_STEPS = 64  # the Layers page's tile settings (a few seconds a channel on Lite0), not visualize's 256
DEFAULT_VISUALIZE_SIZE = 96


@dataclass
class EvolutionColumn:
    """One weight state: ``fmap`` is the channel's u×v feature map on the photo, ``mean`` its mean, and
    ``visualization`` what the channel looks for (None when ``visualize_steps`` was 0)."""

    name: str
    fmap: np.ndarray
    mean: float
    visualization: Visualization | None


def _check_same_architecture(models: Sequence[nn.Module], names: Sequence[str]) -> None:
    """Refuse states whose parameter names or shapes differ from the first one's (one architecture only)."""
    first = {k: tuple(v.shape) for k, v in models[0].state_dict().items()}
    for model, name in zip(models[1:], names[1:]):
        other = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if other != first:
            diff = sorted(set(first) ^ set(other)) or [k for k in first if first[k] != other[k]]
            raise CamError(f"{name}: not the same architecture as {names[0]} (first difference: {diff[0]})")


def evolution(models: Sequence[nn.Module], names: Sequence[str], x: torch.Tensor, layer: str, channel: int, *,
              visualize_steps: int = DEFAULT_VISUALIZE_STEPS, size: int = DEFAULT_VISUALIZE_SIZE,
              seed: int = DEFAULT_SEED, progress: Progress | None = None,
              mean: Sequence[float] = (0.485, 0.456, 0.406),
              std: Sequence[float] = (0.229, 0.224, 0.225)) -> list[EvolutionColumn]:
    """Channel ``channel`` of ``layer`` in each of ``models`` (2–5 states of one architecture, named ``names``):
    its feature map on the model input ``x`` and, unless ``visualize_steps`` is 0, its feature visualization at
    ``size`` px with ``seed``. ``progress(done, total)`` counts visualization steps over all columns.
    ``mean``/``std``: the models' input normalisation, for the visualization."""
    if not MIN_STATES <= len(models) <= MAX_STATES:
        raise CamError(f"feature evolution takes {MIN_STATES} to {MAX_STATES} weight files, got {len(models)}")
    if len(names) != len(models):
        raise CamError(f"{len(names)} names for {len(models)} weight states")
    if visualize_steps < 0:
        raise CamError(f"visualize_steps must be 0 (no visualization) or more, got {visualize_steps}")
    _check_same_architecture(models, names)
    total = visualize_steps * len(models)
    columns: list[EvolutionColumn] = []
    for i, (model, name) in enumerate(zip(models, names)):
        maps = activations(model, x, layer).maps
        if not 0 <= channel < maps.shape[0]:
            raise CamError(f"layer {layer!r} has {maps.shape[0]} channels; channel {channel} is not one of them")
        vis = None
        if visualize_steps:
            done_before = i * visualize_steps
            step = None if progress is None else (lambda done, _n, b=done_before: progress(b + done, total))
            vis = visualize(model, layer, channel, steps=visualize_steps, size=size, seed=seed, progress=step,
                            mean=mean, std=std)
        fmap = maps[channel]
        columns.append(EvolutionColumn(name=name, fmap=fmap, mean=float(fmap.mean()), visualization=vis))
    return columns


def shared_scale(columns: Sequence[EvolutionColumn]) -> tuple[float, float]:
    """The lowest and highest value over every column's map: one scale, so strength is comparable across states."""
    return (min(float(c.fmap.min()) for c in columns), max(float(c.fmap.max()) for c in columns))


def strip(columns: Sequence[EvolutionColumn], cell: int = 128, gap: int = 4, cmap: str = "viridis") -> np.ndarray:
    """The columns as one image on white: the feature maps (shared scale, nearest-neighbour enlarged) on top and,
    where there is one, each visualization below it; H×W×3 uint8."""
    lo, hi = shared_scale(columns)
    span = hi - lo if hi > lo else 1.0
    rows = 2 if any(c.visualization is not None for c in columns) else 1
    sheet = np.full((rows * (cell + gap) + gap, len(columns) * (cell + gap) + gap, 3), 255, np.uint8)
    for j, c in enumerate(columns):
        left = gap + j * (cell + gap)
        tiles = [colorize((c.fmap - lo) / span, cmap)]
        if c.visualization is not None:
            tiles.append(c.visualization.image)
        for r, tile in enumerate(tiles):
            img = np.asarray(Image.fromarray(tile).resize((cell, cell), Image.Resampling.NEAREST))
            top = gap + r * (cell + gap)
            sheet[top:top + cell, left:left + cell] = img
    return sheet


__all__ = ["DEFAULT_VISUALIZE_SIZE", "DEFAULT_VISUALIZE_STEPS", "EvolutionColumn", "MAX_STATES", "MIN_STATES",
           "evolution", "shared_scale", "strip"]
