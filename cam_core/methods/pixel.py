"""Pixel-space gradient methods: saliency, guided backprop, deconvnet — for a class or a feature map.

With a class target the signal is ∂y^c/∂x. With a feature-map target (layer + channel), as Zeiler &
Fergus project one unit (their fig. 2), the signal starts at that channel's strongest activation with
every other activation of the layer zeroed, and the forward stops at that layer.
"""
from __future__ import annotations

import torch

from ..backprop_rules import DECONV, GUIDED, backprop_rule
from ..capture import class_score, logits_of
from ..errors import CamError
from ..hygiene import grad_mode, thread_hooks
from .base import MapResult, Target


_RELU_NAMES = ("relu", "relu_", "relu6", "hardtanh", "hardtanh_")


class _StopForward(Exception):
    """Raised by a hook once the target layer has run: nothing after it is needed."""


def _feature_seed(target: Target, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Forward to the target layer; return (activation, grad_output seed, extras)."""
    kept: list[torch.Tensor] = []

    def keep(_m: object, _i: object, output: object) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise CamError(f"layer {target.layer_name!r} has no spatial feature maps to project")
        kept.append(output)
        raise _StopForward

    with thread_hooks() as add:
        add(target.layer, keep)
        try:
            target.model(x)
        except _StopForward:
            pass
    if not kept:
        raise CamError(f"layer {target.layer_name!r} is not run by the model's forward pass")
    activation = kept[0]
    channels = activation.shape[1]
    if not 0 <= target.channel < channels:
        raise CamError(f"channel {target.channel} does not exist: layer {target.layer_name!r} has {channels}")
    fmap = activation[0, target.channel].detach()
    flat = int(fmap.argmax())
    seed = torch.zeros_like(activation)
    row, col = divmod(flat, fmap.shape[1])
    seed[0, target.channel, row, col] = fmap[row, col]
    extras = {"unit": (row, col), "unit_activation": float(fmap[row, col])}
    return activation, seed, extras


def input_gradient(target: Target, rule: str | None) -> MapResult:
    """∂(signal)/∂x under the given backward rule (None: plain gradients)."""
    x = target.x.detach().clone().requires_grad_(True)
    extras: dict = {}
    logits = None
    with grad_mode(True), backprop_rule(rule) as counts:
        if target.channel is None:
            logits = logits_of(target.model(x))
            output, seed = class_score(logits, target.classes_for(logits)), None
        else:
            output, seed, extras = _feature_seed(target, x)
    if rule is not None and not any(name in _RELU_NAMES for name in counts):  # e.g. GELU-only transformers
        ran = f" (it uses {', '.join(sorted(counts))})" if counts else ""
        raise CamError(f"{'guided backprop' if rule == GUIDED else 'deconvnet'} is defined at ReLUs, and this "
                       f"model's forward ran none{ran}; use saliency or SmoothGrad")
    (gradient,) = torch.autograd.grad(output, x, grad_outputs=seed)
    gradient = gradient[0].detach()
    saliency = gradient.abs().amax(dim=0)
    notes = _rule_notes(rule, counts)
    if target.channel is not None and extras.get("unit_activation", 0.0) <= 0:
        notes.append(f"channel {target.channel} of {target.layer_name!r} does not activate on this image")
    target.report(1, 1)
    return MapResult(raw=saliency, positive=saliency, logits=None if logits is None else logits.detach(),
                     gradient=gradient, extras=extras, notes=notes)


def _rule_notes(rule: str | None, counts: dict) -> list[str]:
    if rule is None:
        return []
    smooth = sorted(name for name in counts if name not in _RELU_NAMES)
    if rule == GUIDED and smooth:
        return [f"non-ReLU activations ({', '.join(smooth)}) pass the positive part of their gradient"]
    return []


def run_saliency(target: Target) -> MapResult:
    return input_gradient(target, None)


def run_guided_backprop(target: Target) -> MapResult:
    return input_gradient(target, GUIDED)


def run_deconvnet(target: Target) -> MapResult:
    return input_gradient(target, DECONV)
