"""Find target layers: by dotted name or module, listed with output shapes, or picked automatically."""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from .adapters import adapter_for
from .errors import CamError
from .hygiene import eval_mode
from .methods.attention import is_attention
from .recorder import record, resolve_layer  # resolve_layer: re-exported, part of the layers API

# Modules that keep the spatial grid but are poor CAM targets (they only pool, drop or pass through).
_NOT_TARGETS = (nn.Dropout, nn.Dropout2d, nn.Identity, nn.Flatten, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
                nn.AvgPool2d, nn.MaxPool2d)
_auto_cache: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], str]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class LayerInfo:
    """A module whose output is a map in one forward pass: N×C×H×W, or tokens / channels-last seen through
    its adapter (``cam_core.adapters``). ``shape`` is always C×h×w (``grid`` = (h, w)); ``layout`` says how
    the module itself lays it out ("nchw", "nhwc", "tokens(cls+h*w)", …)."""

    name: str
    kind: str
    shape: tuple[int, int, int]
    layout: str = "nchw"

    @property
    def grid(self) -> tuple[int, int]:
        return self.shape[1], self.shape[2]

    def label(self) -> str:
        where = "" if self.layout == "nchw" else f", {self.layout}"
        return f"{self.name}  ({self.kind}, {self.shape[0]}×{self.shape[1]}×{self.shape[2]}{where})"


@dataclass(frozen=True)
class _Seen:
    name: str
    module: nn.Module
    shape: tuple[int, int, int]  # C×h×w
    layout: str
    before_attention: int  # how many attention modules had started when this module finished


def _spatial_outputs(model: nn.Module, x: torch.Tensor) -> list[_Seen]:
    """One dry forward (no autograd) recording, in completion order, modules whose output is a map
    (N×C×H×W, or tokens / channels-last through their adapter)."""
    names = {module: name for name, module in model.named_modules() if module is not model}
    attention = [m for m in names if is_attention(m)]
    with eval_mode(model):
        rec = record(model, x[:1], keep_io=list(names), starts_of=attention)
    seen: list[_Seen] = []
    started = 0
    for kind, module in rec.events:
        if kind == "start":
            started += 1
            continue
        output = rec.io[module][1]
        if not isinstance(output, torch.Tensor) or output.dim() not in (3, 4):
            continue
        try:
            adapter = adapter_for(model, names[module], output, x)
        except CamError:
            continue  # tokens that form no grid: not a map
        if adapter is None:
            shape, layout = tuple(output.shape[1:]), "nchw"
        else:
            shape, layout = (output.shape[-1], *adapter.grid), adapter.layout
        seen.append(_Seen(names[module], module, shape, layout, started))
    return seen


def layers(model: nn.Module, x: torch.Tensor) -> list[LayerInfo]:
    """Candidate target layers (spatial output), in the model's module order, with C×H×W shapes."""
    found: dict[str, LayerInfo] = {}
    for seen in _spatial_outputs(model, x):
        found.setdefault(seen.name, LayerInfo(seen.name, type(seen.module).__name__, seen.shape, seen.layout))
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    return sorted(found.values(), key=lambda info: order[info.name])


def auto_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The last module to finish with a spatial output larger than 1×1 that is not a pooling/pass-through layer.

    For a token transformer (ViT, DeiT) that would be the final LayerNorm, whose patch tokens never reach
    the head (only the class token does): there the choice is the last token map finished *before the
    last attention layer starts* — the LayerNorm in front of the last block's attention, the usual target.
    Found with one dry forward at ``x``'s size, then cached per model and input shape.
    """
    per_model = _auto_cache.setdefault(model, {})
    key = tuple(x.shape[1:])
    if key not in per_model:
        seen = _spatial_outputs(model, x)
        candidates = [s for s in seen if s.shape[1] * s.shape[2] > 1 and not isinstance(s.module, _NOT_TARGETS)]
        if not candidates:
            raise CamError("this model has no layer with a spatial output: CAM methods need a convolutional layer")
        pick = candidates[-1]
        if pick.layout.startswith("tokens") and pick.before_attention > 0:
            last = pick.before_attention - 1  # finished before the last attention layer started
            before = [s for s in candidates if s.layout.startswith("tokens") and s.before_attention == last]
            pick = before[-1] if before else pick
        per_model[key] = pick.name
    return per_model[key]
