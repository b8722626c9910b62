"""One forward pass that keeps a target layer's activation and the model's class scores.

Autograd stays off until the target layer runs and is switched on inside its forward hook (grad mode
is thread-local), so the only graph built is the one from that layer to the scores: Grad-CAM costs
about one plain forward pass, and no parameter ``.grad`` is ever written (gradients come from
``torch.autograd.grad``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .adapters import LayerAdapter, adapter_for, check_input
from .errors import CamError
from .hygiene import grad_mode, thread_hooks


@dataclass
class Capture:
    """Scores of one forward pass and the target layer's activation (a leaf that requires grad)."""

    logits: torch.Tensor
    activation: torch.Tensor  # always N×C×h×w: a token / channels-last layer is kept in its map layout
    adapter: LayerAdapter | None = None  # how the layer's own output was mapped (None: it was N×C×H×W)


def logits_of(output: object) -> torch.Tensor:
    """The class-score tensor of a model's output (a tensor, a tuple's first item, or ``.logits``)."""
    if isinstance(output, torch.Tensor):
        scores = output
    elif hasattr(output, "logits"):
        scores = output.logits
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        scores = output[0]
    else:
        raise CamError("the model's output is not a tensor of class scores")
    if scores.dim() != 2:
        raise CamError(f"the model's output has shape {tuple(scores.shape)}; expected N×classes scores")
    if not torch.isfinite(scores).all():
        raise CamError("the model's output contains NaN or Inf: its weights or input are broken, nothing to explain")
    return scores


def forward_from_layer(model: nn.Module, x: torch.Tensor, layer: nn.Module, layer_name: str) -> Capture:
    """Run ``model(x)`` with autograd only from ``layer``'s output on; keep that output as a leaf.

    If the layer runs several times in one forward (a reused module), the last call is kept. A layer whose
    output is not N×C×H×W (ViT tokens, Swin's N×h×w×C) goes through its adapter: the leaf is the N×C×h×w
    map and the model continues with ``adapter.from_map(leaf, output)``.
    """
    kept: list[tuple[torch.Tensor, LayerAdapter | None]] = []
    check_input(model, x)

    def keep(_module: nn.Module, _inputs: object, output: object) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise CamError(f"layer {layer_name!r} does not output a single tensor; pick another layer")
        adapter = adapter_for(model, layer_name, output, x)
        leaf = (output if adapter is None else adapter.to_map(output)).detach().requires_grad_(True)
        kept.append((leaf, adapter))
        torch.set_grad_enabled(True)  # from here on this thread records the graph
        if adapter is not None:
            return adapter.from_map(leaf, output)
        return leaf.clone()  # downstream in-place ops (ReLU(inplace=True)) must not touch our leaf

    with grad_mode(False), thread_hooks() as add:
        add(layer, keep)
        logits = logits_of(model(x))
    if not kept:
        raise CamError(f"layer {layer_name!r} is not run by the model's forward pass; pick another layer")
    return Capture(logits=logits, activation=kept[-1][0], adapter=kept[-1][1])


def class_score(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of each image's pre-softmax score for its target class (recorded for autograd
    even when the caller is in ``no_grad``)."""
    with torch.enable_grad():
        return logits.gather(1, classes.view(-1, 1)).sum()
