"""Zeiler & Fergus's layer views: a layer's feature maps, channel-mean maps per stage, first-layer filters."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .adapters import adapter_for
from .capture import logits_of
from .errors import CamError
from .hygiene import eval_mode, grad_mode, thread_hooks
from .layers import resolve_layer


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
    modules = [resolve_layer(model, name) for name in names]
    kept: dict[str, torch.Tensor] = {}
    x = x[:1] if x.dim() == 4 else x[None]
    with eval_mode(model), grad_mode(False), thread_hooks() as add:
        for name, module in modules:
            def keep(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor) and name not in kept:
                    if out.dim() in (3, 4):  # tokens / channels-last seen as C×h×w maps (cam_core.adapters)
                        adapter = adapter_for(model, name, out, x)
                        out = out if adapter is None else adapter.to_map(out)
                    kept[name] = out[0].detach().clone()
            add(module, keep)
        logits_of(model(x))
    missing = [name for name, _ in modules if name not in kept]
    if missing:
        raise CamError(f"layer {missing[0]!r} is not run by the model's forward pass or outputs no tensor")
    return kept


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
    weight = conv.weight.detach().float().cpu()  # K×3×kh×kw
    flat = weight.reshape(weight.shape[0], -1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    span = (flat.max(dim=1).values.view(-1, 1, 1, 1) - low).clamp(min=1e-12)
    tiles = ((weight - low) / span).permute(0, 2, 3, 1)
    return tiles.numpy()
