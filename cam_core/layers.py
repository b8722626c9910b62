"""Find target layers: by dotted name or module, listed with output shapes, or picked automatically."""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from .errors import CamError
from .hygiene import eval_mode, grad_mode, thread_hooks

# Modules that keep the spatial grid but are poor CAM targets (they only pool, drop or pass through).
_NOT_TARGETS = (nn.Dropout, nn.Dropout2d, nn.Identity, nn.Flatten, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
                nn.AvgPool2d, nn.MaxPool2d)
_auto_cache: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], str]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class LayerInfo:
    """A module that produced a spatial (N×C×H×W) output in one forward pass."""

    name: str
    kind: str
    shape: tuple[int, int, int]

    def label(self) -> str:
        return f"{self.name}  ({self.kind}, {self.shape[0]}×{self.shape[1]}×{self.shape[2]})"


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(dotted name, module)`` for a name like ``"layer4"`` / ``"features.28"`` or a module."""
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name or "(model)", module
        raise CamError("the target layer is not a module of this model")
    try:  # walks only the dotted path: a full named_modules() scan costs ~1 ms on every explain
        return layer, model.get_submodule(layer)
    except AttributeError:
        pass
    modules = dict(model.named_modules())
    close = [n for n in modules if n and (n.endswith(str(layer)) or str(layer) in n)][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else "; list them with `python -m cam_core layers`"
    raise CamError(f"no layer named {layer!r} in this model{hint}")


def _spatial_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, torch.Size]]:
    """One dry forward (no autograd) recording, in completion order, modules with 4-D outputs."""
    names = {module: name for name, module in model.named_modules()}
    seen: list[tuple[str, nn.Module, torch.Size]] = []

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            seen.append((names[module], module, output.shape))

    with eval_mode(model), grad_mode(False), thread_hooks() as add:
        for module in names:
            if module is not model:
                add(module, record)
        model(x[:1])
    return seen


def layers(model: nn.Module, x: torch.Tensor) -> list[LayerInfo]:
    """Candidate target layers (spatial output), in the model's module order, with C×H×W shapes."""
    found: dict[str, LayerInfo] = {}
    for name, module, shape in _spatial_outputs(model, x):
        found.setdefault(name, LayerInfo(name, type(module).__name__, tuple(shape[1:])))
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    return sorted(found.values(), key=lambda info: order[info.name])


def auto_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The last module to finish with a spatial output larger than 1×1 that is not a pooling/pass-through layer.

    Found with one dry forward at ``x``'s size, then cached per model and input shape.
    """
    per_model = _auto_cache.setdefault(model, {})
    key = tuple(x.shape[1:])
    if key not in per_model:
        candidates = [name for name, module, shape in _spatial_outputs(model, x)
                      if shape[2] * shape[3] > 1 and not isinstance(module, _NOT_TARGETS)]
        if not candidates:
            raise CamError("this model has no layer with a spatial output: CAM methods need a convolutional layer")
        per_model[key] = candidates[-1]
    return per_model[key]
