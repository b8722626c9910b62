"""Zeiler & Fergus's layer views: a layer's feature maps, channel-mean maps per stage, first-layer filters."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .errors import CamError
from .hygiene import eval_mode
from .recorder import record


@dataclass
class FeatureMaps:
    """A layer's activations for one image: ``maps`` K×u×v, ``mean`` per channel, ``order`` by mean, descending."""

    layer: str
    maps: np.ndarray
    mean: np.ndarray
    order: np.ndarray

    def top(self, n: int) -> list[int]:
        return [int(k) for k in self.order[:n]]


def _capture(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """One no-grad forward keeping the (first) output of each named layer for the first image."""
    with eval_mode(model):
        rec = record(model, x[:1] if x.dim() == 4 else x[None], names, stop_after_layers=True)
    return {name: outs[0][0].detach().clone() for name, outs in rec.calls.items()}


def activations(model: nn.Module, x: torch.Tensor, layer: str) -> FeatureMaps:
    """Feature maps of ``layer`` for the image ``x``, with channels ranked by mean activation."""
    out = _capture(model, x, [layer])[layer]
    if out.dim() != 3:
        raise CamError(f"layer {layer!r} outputs shape {tuple(out.shape)}; feature maps need C×H×W")
    maps = out.float().cpu().numpy()
    mean = maps.mean(axis=(1, 2))
    return FeatureMaps(layer=layer, maps=maps, mean=mean, order=np.argsort(-mean, kind="stable"))


def stage_maps(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """The channel-mean map (u×v) of each named layer, from one forward pass."""
    kept = _capture(model, x, layers)
    return {name: kept[name].float().mean(dim=0).cpu().numpy() for name in layers if kept[name].dim() == 3}


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first 2-D convolution (in module order) that reads 3-channel input."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return name, module
    raise CamError("this model has no convolution on RGB input, so it has no first-layer filters to show")


def first_layer_filters(model: nn.Module) -> np.ndarray:
    """First-layer filters as RGB tiles, K×kh×kw×3 in [0, 1], each tile min–max normalized on its own."""
    _, conv = first_conv(model)
    return rgb_tiles(conv.weight.detach().float().cpu())


def rgb_tiles(weight: torch.Tensor) -> np.ndarray:
    """K×3×kh×kw kernels as K×kh×kw×3 RGB tiles in [0, 1], each min–max normalized on its own."""
    weight = weight.detach().cpu()
    flat = weight.reshape(weight.shape[0], -1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    span = (flat.max(dim=1).values.view(-1, 1, 1, 1) - low).clamp(min=1e-12)
    tiles = ((weight - low) / span).permute(0, 2, 3, 1)
    return tiles.numpy()
