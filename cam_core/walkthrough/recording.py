"""One forward pass of a CNN that keeps every stage's input and output: what the walkthrough reads from.

A *stage* is one call of a module a student can follow by hand: a convolution, a batch norm, an activation,
a pooling, a linear layer. Each call's input is copied in a pre-hook and its output in a hook, before any
in-place operation downstream (``ReLU(inplace=True)``, ResNet's ``out += identity``) can rewrite them; an input
that is exactly the previous stage's output, unchanged (same tensor, same version counter), shares its copy.
A reused module (ResNet's ``relu``) gives one stage per call. Hooks are thread-scoped and removed on exit, the
model runs in eval mode without autograd, nothing about it changes.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..adapters import check_input
from ..errors import CamError
from ..hygiene import eval_mode, grad_mode, thread_hooks
from ..methods.attention import has_attention
from ..targets import logits_of
from .field import Box, Field, field_after

KINDS = ("conv", "norm", "activation", "pooling", "linear")
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NOT_ACTIVATIONS = (nn.MultiheadAttention, nn.Softmax, nn.Softmax2d, nn.LogSoftmax, nn.Softmin)
TRANSFORMER_NOTE = ("This model is a transformer: it has no sliding kernels whose sums could be written out. "
                    "Shown instead: the photo cut into the model's patch grid, and how much the clicked patch's "
                    "token attends to every patch in the chosen block (per head or averaged over heads).")


def stage_kind(module: nn.Module) -> str | None:
    """Which of ``KINDS`` a module is, or ``None`` for modules the walkthrough passes over."""
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "norm"
    if isinstance(module, _POOLS):
        return "pooling"
    if isinstance(module, nn.Linear):
        return "linear"
    where = type(module).__module__
    if not module._modules and not isinstance(module, _NOT_ACTIVATIONS) and (
            where == "torch.nn.modules.activation" or where.rsplit(".", 1)[-1].startswith("activations")):
        return "activation"
    return None


def is_transformer(model: nn.Module) -> bool:
    """True for a model with attention layers (ViT, DeiT, Swin): shown through ``tokens`` instead."""
    return has_attention(model)


@dataclass(eq=False)
class Stage:
    """One stage call. ``input``/``output``: batch item 0 as the model computed it (C×H×W maps or F vectors).

    ``source``: index of the stage whose output is exactly this input (``None``: the photo, or an operation that
    is not a module, e.g. a residual sum). ``field``: receptive field of each output position (``None`` for
    vectors). ``parent``: the stage this call ran inside (timm's BatchNormAct2d runs its activation inside).
    """

    index: int
    name: str
    kind: str
    module: nn.Module
    input: torch.Tensor
    output: torch.Tensor | None = None
    source: int | None = None
    field: Field | None = None
    parent: int | None = None
    input_field: Field | None = None

    @property
    def is_map(self) -> bool:
        return self.output is not None and self.output.dim() == 3

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.output.shape) if self.output is not None else ()

    def strongest_channel(self) -> int:
        """The map's channel with the largest mean activation (where a walkthrough opens)."""
        return int(self.output.float().mean(dim=(1, 2)).argmax())

    def plane(self, channel: int) -> np.ndarray:
        """One channel of the map as an h×w float array."""
        return self.output[channel].float().cpu().numpy()

    def peak(self, channel: int) -> tuple[int, int]:
        """(row, column) of the channel's largest activation (the first, on a tie)."""
        plane = self.output[channel]
        row, col = divmod(int(plane.argmax()), plane.shape[-1])
        return row, col

    def label(self) -> str:
        shape = "×".join(str(s) for s in self.shape)
        return f"{self.index + 1}. {self.kind} · {self.name} · {type(self.module).__name__} · {shape}"


@dataclass(eq=False)
class Walkthrough:
    """Every stage of one image's forward pass, its input ``x`` (1×3×H×W, normalised) and the ``logits``."""

    x: torch.Tensor
    stages: list[Stage]
    logits: torch.Tensor
    notes: list[str] = field(default_factory=list)

    def input_rgb(self, mean: tuple[float, ...], std: tuple[float, ...], box: Box | None = None) -> np.ndarray:
        """The model's input as the photo it saw (see ``input_rgb``), or the ``box`` of it."""
        return input_rgb(self.x, mean, std, box)

    def stage(self, index: int) -> Stage:
        if not 0 <= index < len(self.stages):
            raise CamError(f"stage {index + 1} does not exist; this model has {len(self.stages)} stages")
        return self.stages[index]

    def of_kind(self, *kinds: str) -> Iterator[Stage]:
        return (s for s in self.stages if s.kind in kinds)

    def consumer(self, index: int, kind: str) -> Stage | None:
        """The first stage of ``kind`` whose input is exactly stage ``index``'s output."""
        return next((s for s in self.stages if s.source == index and s.kind == kind), None)

    def chain(self, index: int, longest: int = 4) -> list[int]:
        """Stage ``index`` and the stages feeding it directly, back to the convolution that starts it (at most
        ``longest``): what one position's walkthrough shows, in order."""
        chain = [index]
        while self.stages[chain[0]].kind != "conv" and self.stages[chain[0]].source is not None \
                and len(chain) < longest:
            chain.insert(0, self.stages[chain[0]].source)
        return chain

    def receptive_field(self, index: int, row: int, col: int) -> Box:
        """Input pixels that position (``row``, ``col``) of stage ``index``'s map depends on (see ``field``)."""
        stage = self.stage(index)
        check_position(stage, 0, row, col)
        if stage.field is None:
            raise CamError(f"the receptive field of {stage.name} is not known (an operation that is not a module "
                           f"changed the map's size before it)")
        return stage.field.box(row, col)


def input_rgb(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], box: Box | None = None) -> np.ndarray:
    """A model input (1×3×H×W) as the photo it saw: H×W×3 uint8 with the normalisation undone (or its ``box``)."""
    rgb = x[0].detach().double().cpu() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    rgb = (rgb.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return rgb if box is None else rgb[box.top:box.bottom + 1, box.left:box.right + 1]


def check_position(stage: Stage, channel: int, row: int, col: int) -> None:
    """One-line ``CamError`` unless (channel, row, col) lies on ``stage``'s map."""
    if not stage.is_map:
        raise CamError(f"{stage.name} outputs a vector, not a map; pick a unit instead of a position")
    c, h, w = stage.shape
    if not (0 <= channel < c and 0 <= row < h and 0 <= col < w):
        raise CamError(f"position (channel {channel}, row {row}, column {col}) is outside {stage.name}'s "
                       f"{c}×{h}×{w} map")


def walk(model: nn.Module, x: torch.Tensor) -> Walkthrough:
    """Run ``model`` on the first image of ``x`` once, keeping every stage (see the module docstring)."""
    if is_transformer(model):
        raise CamError(TRANSFORMER_NOTE)
    x = (x[:1] if x.dim() == 4 else x[None]).detach()
    check_input(model, x)
    names = {module: name for name, module in model.named_modules()}
    kinds = {module: kind for module in names if (kind := stage_kind(module)) is not None}
    if not any(kind == "conv" for kind in kinds.values()):
        raise CamError("this model has no 2-D convolution; the walkthrough follows a CNN's kernels")
    stages: list[Stage] = []
    calls: dict[nn.Module, int] = {}
    open_stack: list[int] = []
    made: dict[int, tuple[torch.Tensor, int, int]] = {}  # id(tensor) -> (tensor, version, stage that produced it)
    fields: dict[int, tuple[torch.Tensor, Field | None]] = {id(x): (x, Field.identity(*x.shape[-2:]))}
    by_grid: dict[tuple[int, int], Field] = {tuple(x.shape[-2:]): fields[id(x)][1]}

    def field_of(t: torch.Tensor) -> Field | None:
        hit = fields.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        return by_grid.get(tuple(t.shape[-2:])) if t.dim() == 4 else None

    def before(module: nn.Module, args: tuple) -> None:
        inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if inp is None or inp.shape[0] < 1:
            return
        hit = made.get(id(inp))
        shared = hit is not None and hit[0] is inp and inp._version == hit[1]
        calls[module] = calls.get(module, 0) + 1
        name = names[module] or "(model)"
        stage = Stage(index=len(stages), name=name if calls[module] == 1 else f"{name}#{calls[module]}",
                      kind=kinds[module], module=module,
                      input=stages[hit[2]].output if shared else inp[0].detach().clone(),
                      source=hit[2] if shared else None, parent=open_stack[-1] if open_stack else None,
                      input_field=field_of(inp))
        stages.append(stage)
        open_stack.append(stage.index)

    def after(module: nn.Module, args: tuple, output: Any) -> None:
        if not open_stack or stages[open_stack[-1]].module is not module:
            return  # its pre-hook skipped the call (no tensor input)
        stage = stages[open_stack.pop()]
        if not isinstance(output, torch.Tensor):
            return
        stage.output = output[0].detach().clone()
        hit = made.get(id(output))
        if not (hit is not None and hit[0] is output and hit[1] == output._version):  # else a stage inside made it
            made[id(output)] = (output, output._version, stage.index)
        if output.dim() == 4 and stage.input.dim() == 3:
            stage.field = field_after(module, stage.input_field, tuple(stage.input.shape[-2:]), tuple(output.shape[-2:]))
            fields[id(output)] = (output, stage.field)
            if stage.field is not None:
                grid = tuple(output.shape[-2:])
                by_grid[grid] = stage.field.union(by_grid.get(grid))

    with eval_mode(model), grad_mode(False), thread_hooks() as add:
        for module in kinds:
            add(module, before, kind="forward_pre")
            add(module, after)
        logits = logits_of(model(x)).detach().clone()
    kept = [s for s in stages if s.output is not None]
    _attach_inner_activations(kept)
    return Walkthrough(x=x, stages=_renumber(kept), logits=logits[0])


def _attach_inner_activations(stages: list[Stage]) -> None:
    """A norm whose activation runs inside it (timm's BatchNormAct2d): the norm's output is the activation's input."""
    by_index = {s.index: s for s in stages}
    for stage in stages:
        parent = by_index.get(stage.parent) if stage.parent is not None else None
        if stage.kind == "activation" and parent is not None and parent.kind == "norm":
            parent.output = stage.input
            parent.field = stage.input_field
            stage.source = parent.index


def _renumber(stages: list[Stage]) -> list[Stage]:
    """Indices 0…n−1 in call order, ``source``/``parent`` following."""
    new = {s.index: i for i, s in enumerate(stages)}
    for s in stages:
        s.index = new[s.index]
        s.source = new.get(s.source) if s.source is not None else None
        s.parent = new.get(s.parent) if s.parent is not None else None
    return stages
