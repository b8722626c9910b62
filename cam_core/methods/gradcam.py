"""The Grad-CAM family: a map is ReLU(Σ_k w_k A_k); each variant only chooses the channel weights w.

Weight functions are pure functions of (activations A, gradients G), both N×K×u×v, returning N×K.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..capture import class_score, forward_from_layer
from ..errors import CamError
from .base import MapResult, Target

WeightFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gradcam_weights(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): α_k = (1/Z) Σ_ij ∂y^c/∂A_kij, the spatial mean of the gradient."""
    return gradients.mean(dim=(2, 3))


def gradcampp_weights(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential trick).

    a_kij = G² / (2G² + Σ_ab A_kab · G³) (0 where the denominator is 0); w_k = Σ_ij a_kij · ReLU(G_kij).
    """
    g2 = gradients.pow(2)
    g3 = gradients.pow(3)
    denominator = 2 * g2 + activations.sum(dim=(2, 3), keepdim=True) * g3
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(denominator != 0, g2 / safe, torch.zeros_like(g2))
    return (alpha * gradients.clamp(min=0)).sum(dim=(2, 3))


def weighted_sum(activations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_k w_k A_k, before the ReLU: N×u×v."""
    return torch.einsum("nk,nkuv->nuv", weights, activations)


def run_weighted(target: Target, weights: WeightFn) -> MapResult:
    """Capture A and G = ∂y^c/∂A at the target layer in one forward (+ a backward to that layer only)."""
    captured = forward_from_layer(target.model, target.x, target.layer, target.layer_name)
    activations = captured.activation
    if activations.dim() != 4:
        raise CamError(f"layer {target.layer_name!r} outputs shape {tuple(activations.shape)}; "
                       "CAM methods need a spatial N×C×H×W layer")
    score = class_score(captured.logits, target.classes_for(captured.logits))
    (gradients,) = torch.autograd.grad(score, activations)
    activations = activations.detach()
    raw = weighted_sum(activations, weights(activations, gradients))[0]
    target.report(1, 1)
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=captured.logits.detach())


def run_gradcam(target: Target) -> MapResult:
    return run_weighted(target, gradcam_weights)


def run_gradcampp(target: Target) -> MapResult:
    return run_weighted(target, gradcampp_weights)
