"""Pixel-space gradient methods: saliency, guided backprop, deconvnet — for a class or a feature map.

With a class target the signal is ∂y^c/∂x. With a feature-map target (layer + channel), as Zeiler &
Fergus project one unit (their fig. 2), the signal starts at that channel's strongest activation with
every other activation of the layer zeroed, and the forward stops at that layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..backprop_rules import DECONV, GUIDED, backprop_rule
from ..errors import CamError
from ..hygiene import grad_mode
from ..recorder import record
from ..targets import ClassTarget, logits_of
from .base import MapResult, Target

_RELU_NAMES = ("relu", "relu_", "relu6", "hardtanh", "hardtanh_")


def _feature_seed(target: Target, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Forward to the target layer (no further); return (activation, grad_output seed, extras)."""
    rec = record(target.model, x, [target.layer_name], stop_after_layers=True, input_grad=True)
    activation = rec.calls[target.layer_name][0]
    if activation.dim() != 4:
        raise CamError(f"layer {target.layer_name!r} has no spatial feature maps to project")
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


@dataclass(frozen=True)
class PixelGradient:
    """∂(signal)/∂x under a backward rule (``None``: plain gradients; GUIDED; DECONV)."""

    rule: str | None = None
    needs_layer: ClassVar[bool] = False

    def _forward(self, target: Target, x: torch.Tensor, feature: bool) -> tuple[torch.Tensor, object, dict]:
        leaf = x.detach().clone().requires_grad_(True)
        with grad_mode(True), backprop_rule(self.rule) as counts:
            out = _feature_seed(target, leaf) if feature else logits_of(target.model(leaf))
        if self.rule is not None and not any(name in _RELU_NAMES for name in counts):  # e.g. GELU, SiLU only
            ran = f" (it uses {', '.join(sorted(counts))})" if counts else ""
            raise CamError(f"{'guided backprop' if self.rule == GUIDED else 'deconvnet'} is defined at ReLUs, "
                           f"and this model's forward ran none{ran}; use saliency or SmoothGrad")
        return leaf, out, dict(counts)

    def attribute_batch(self, target: Target, xs: torch.Tensor, cls: ClassTarget | None = None,
                        counts: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, ClassTarget]:
        """Signed input gradients (N×3×H×W), logits and the resolved class for a batch of inputs.

        ``counts``, when given, receives how often each activation ran under the rule (for the notes).
        """
        leaf, logits, ran = self._forward(target, xs, feature=False)
        if counts is not None:
            counts.update(ran)
        cls = cls if cls is not None else target.cls.resolved(logits[:1].detach())
        with grad_mode(True):
            total = cls.score(logits).sum()
        (gradient,) = torch.autograd.grad(total, leaf)
        return gradient.detach(), logits.detach(), cls

    def result(self, attribution: torch.Tensor, logits: torch.Tensor, cls: ClassTarget) -> MapResult:
        """A (mean) signed input gradient 1×3×H×W or 3×H×W as a result: |·| max over colour channels."""
        gradient = attribution.reshape(attribution.shape[-3:])
        saliency = channel_max(gradient)
        return MapResult(raw=saliency, positive=saliency, logits=logits, gradient=gradient, class_idx=cls.index)

    def run(self, target: Target) -> MapResult:
        """One image, for a class or (with ``target.channel``) one feature map of ``target.layer``."""
        extras: dict = {}
        counts: dict = {}
        class_idx = logits = None
        if target.channel is None:
            gradient, logits, cls = self.attribute_batch(target, target.x, counts=counts)
            class_idx = cls.index
        else:
            leaf, (output, seed, extras), counts = self._forward(target, target.x, feature=True)
            (gradient,) = torch.autograd.grad(output, leaf, grad_outputs=seed)
        gradient = gradient[0].detach()
        saliency = channel_max(gradient)
        notes = _rule_notes(self.rule, counts)
        if target.channel is not None and extras.get("unit_activation", 0.0) <= 0:
            notes.append(f"channel {target.channel} of {target.layer_name!r} does not activate on this image")
        target.report(1, 1)
        return MapResult(raw=saliency, positive=saliency, logits=logits, gradient=gradient, extras=extras,
                         notes=notes, class_idx=class_idx)


def channel_max(gradient: torch.Tensor) -> torch.Tensor:
    """A 3×H×W signed attribution as a displayable map: the largest |value| over colour channels."""
    return gradient.abs().amax(dim=-3)


def _rule_notes(rule: str | None, counts: dict) -> list[str]:
    if rule is None:
        return []
    smooth = sorted(name for name in counts if name not in _RELU_NAMES)
    if rule == GUIDED and smooth:
        return [f"non-ReLU activations ({', '.join(smooth)}) pass the positive part of their gradient"]
    return []


SALIENCY = PixelGradient(None)
GUIDED_BACKPROP = PixelGradient(GUIDED)
DECONVNET = PixelGradient(DECONV)
