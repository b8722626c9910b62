"""A model's stages for the randomization check, found from the model itself, and how one is randomized.

A *stage* is a group of modules randomized together: a top-level child that holds parameters (the head,
a ResNet ``layer4``, …), with two refinements so that the stages mean something on common architectures:

* a top-level container whose children are themselves containers of blocks is split into them
  (timm EfficientNet's ``blocks`` → ``blocks.0`` … ``blocks.6``); when the model would otherwise have fewer
  than ``MIN_STAGES`` stages, every top-level container of several parameter holders is split too
  (VGG's ``features``/``classifier``, MobileNet's ``features``, ViT's ``blocks``);
* a normalization layer on its own joins the stage that runs just before it (``conv1+bn1``,
  ``conv_head+bn2``): randomizing a BatchNorm alone says little.

A model that wraps one child (``Sequential(normalize, net)``, ``Wrapper(model=net)``) is looked into.
Order comes from one dry forward pass (the order in which the stages first run), not from registration.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CamError
from ..hygiene import eval_mode, submodules
from ..recorder import record

MIN_STAGES = 6
_CONTAINERS = (nn.Sequential, nn.ModuleList)
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


@dataclass(frozen=True)
class Stage:
    """Modules randomized together. ``parts``: dotted names of modules (all their parameters and buffers)
    or of single parameters (a model's own ``cls_token``, ``pos_embed``)."""

    name: str
    parts: tuple[str, ...]


def _holds_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _param_children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, c) for n, c in module.named_children() if c is not None and _holds_params(c)]


def _root(model: nn.Module) -> tuple[str, nn.Module]:
    """Descend through wrappers: modules with no own parameters and a single child holding them all."""
    prefix, root = "", model
    while next(root.parameters(recurse=False), None) is None:
        holders = _param_children(root)
        if len(holders) != 1 or not _param_children(holders[0][1]):
            break
        prefix, root = f"{prefix}{holders[0][0]}.", holders[0][1]
    return prefix, root


def _first_calls(model: nn.Module, root: nn.Module, x: torch.Tensor) -> tuple[dict[nn.Module, int], int]:
    """One dry forward: the order in which the root's children and grandchildren first run; class count."""
    order: dict[nn.Module, int] = {}
    watched = [c for c in root.children() if c is not None]
    watched += [g for c in watched for g in c.children() if g is not None]

    with eval_mode(model):
        rec = record(model, x[:1] if x.dim() == 4 else x[None], starts_of=watched)
    for _kind, module in rec.events:
        order.setdefault(module, len(order))
    return order, rec.logits.shape[1]


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORMS)


def _split(name: str, module: nn.Module, order: dict[nn.Module, int]) -> list[tuple[int, tuple[str, ...], nn.Module]]:
    return [(order[c], (f"{name}.{n}",), c) for n, c in _param_children(module) if c in order]


def find_stages(model: nn.Module, x: torch.Tensor) -> tuple[list[Stage], int]:
    """The model's stages top-down (the last to run first) and its number of classes, from one dry forward.

    The model is borrowed (eval mode and hooks restored); ``x`` is one preprocessed image.
    """
    prefix, root = _root(model)
    order, classes = _first_calls(model, root, x)
    units: list[tuple[int, tuple[str, ...], nn.Module]] = []
    for name, child in _param_children(root):
        if child not in order:
            continue  # never run: randomizing it cannot change the map
        kids = _param_children(child)
        if isinstance(child, _CONTAINERS) and len(kids) >= 2 and all(isinstance(c, _CONTAINERS) for _, c in kids):
            units += _split(prefix + name, child, order)
        else:
            units.append((order[child], (prefix + name,), child))
    if len(units) < MIN_STAGES:
        finer = []
        for unit in units:
            module = unit[2]
            if isinstance(module, _CONTAINERS) and len(_param_children(module)) >= 2:
                finer += _split(unit[1][0], module, order)
            else:
                finer.append(unit)
        units = finer
    units.sort(key=lambda unit: unit[0])
    groups: list[list[str]] = []
    leading: list[str] = []  # norms that run before anything else join the first stage
    for _, parts, module in units:
        if _is_norm(module):
            (groups[-1] if groups else leading).extend(parts)  # a norm joins the stage that ran before it
        else:
            groups.append(leading + list(parts))
            leading = []
    if leading:
        groups.append(leading)
    own = [prefix + n for n, _ in root.named_parameters(recurse=False)]
    if own:  # a model's own tensors (ViT cls_token, pos_embed) meet the input first: the bottom stage
        groups.insert(0, own)
    if not groups:
        raise CamError("this model has no parameters to randomize")
    return [Stage("+".join(parts), tuple(parts)) for parts in reversed(groups)], classes


def named_stages(model: nn.Module, names: Iterable[str | Iterable[str]]) -> list[Stage]:
    """Stages given by hand, top-down: each a dotted module name (or several, randomized together)."""
    stages = []
    for entry in names:
        parts = (entry,) if isinstance(entry, str) else tuple(entry)
        for part in parts:
            _lookup(model, part)
        stages.append(Stage("+".join(parts), parts))
    if not stages:
        raise CamError("no stages to randomize")
    return stages


def _lookup(model: nn.Module, part: str) -> nn.Module | nn.Parameter:
    try:
        return model.get_submodule(part)
    except AttributeError:
        pass
    try:
        return model.get_parameter(part)
    except AttributeError:
        raise CamError(f"no module or parameter named {part!r} in this model to randomize") from None


def _fan_in(weight: torch.Tensor) -> int:
    return int(weight.shape[1] * math.prod(weight.shape[2:])) if weight.dim() >= 2 else int(weight.numel())


def _redraw(tensor: torch.Tensor, std: float, generator: torch.Generator, uniform: bool = False) -> None:
    """Overwrite ``tensor`` with fresh values drawn on the CPU (the same numbers on every device)."""
    fresh = torch.empty(tensor.shape, dtype=torch.float32)
    if uniform:
        fresh.uniform_(-std, std, generator=generator)
    else:
        fresh.normal_(0.0, std, generator=generator)
    tensor.copy_(fresh)


def _randomize_module(module: nn.Module, generator: torch.Generator) -> None:
    for sub in submodules(module):
        if _is_norm(sub):
            # Deterministic: weight 1, bias 0, and for BatchNorm running mean 0 / variance 1 — the layer of a
            # freshly built network, i.e. the identity in eval mode (the trained statistics go too).
            sub.reset_parameters()
            continue
        weight = sub._parameters.get("weight")
        for name, param in sub._parameters.items():
            if param is None:
                continue
            if name == "bias" and weight is not None and weight.dim() >= 2:
                _redraw(param, 1.0 / math.sqrt(max(_fan_in(weight), 1)), generator, uniform=True)
            elif param.dim() >= 2:
                _redraw(param, math.sqrt(2.0 / max(_fan_in(param), 1)), generator)  # He et al. 2015
            else:
                _redraw_like(param, generator)


def _redraw_like(param: torch.Tensor, generator: torch.Generator) -> None:
    """A tensor with no layer rule (a scale vector, a position embedding): normal with its own spread."""
    values = param.detach().float()
    spread = float(values.std()) if values.numel() > 1 else 0.0
    if not math.isfinite(spread) or spread == 0.0:
        spread = float(values.abs().mean()) or 0.02
    _redraw(param, spread, generator)


@torch.no_grad()
def randomize(model: nn.Module, stage: Stage, seed: int) -> None:
    """Re-initialise ``stage`` of ``model`` IN PLACE (call it on a copy) from a private seeded generator.

    Kernels (≥ 2-D weights): He-normal, σ = √(2/fan_in), which keeps the signal's scale through ReLU layers so
    the randomized network neither vanishes nor explodes; their biases: uniform ±1/√fan_in (PyTorch's default);
    normalization layers: ``reset_parameters()`` — weight 1, bias 0 and, for BatchNorm, running statistics reset
    to mean 0 / variance 1; any other tensor: normal with its own standard deviation. No global RNG is used,
    so other threads' random streams are untouched and the same seed gives the same weights on every device.
    """
    generator = torch.Generator().manual_seed(int(seed))
    for part in stage.parts:
        target = _lookup(model, part)
        if isinstance(target, nn.Module):
            _randomize_module(target, generator)
        else:
            _redraw_like(target, generator)


def stage_state(model: nn.Module, stage: Stage) -> dict[str, torch.Tensor]:
    """A copy of every tensor ``randomize`` may change in ``stage``, to put back with ``restore``."""
    saved: dict[str, torch.Tensor] = {}
    for part in stage.parts:
        target = _lookup(model, part)
        if isinstance(target, nn.Module):
            for name, tensor in [*target.named_parameters(), *target.named_buffers()]:
                saved[f"{part}.{name}"] = tensor.detach().clone()
        else:
            saved[part] = target.detach().clone()
    return saved


@torch.no_grad()
def restore(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Put back the tensors saved by ``stage_state``."""
    for name, value in saved.items():
        module_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(module_name) if module_name else model
        tensor = getattr(owner, leaf)
        tensor.copy_(value)
