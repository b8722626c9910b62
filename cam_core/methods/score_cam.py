"""Score-CAM (Wang et al., CVPR-W 2020): each channel weighted by the class probability of the image seen
through that channel's upsampled, min–max normalised activation.

w_k = p^c(x ⊙ M_k) with M_k = norm(upsample(A_k)) — the softmax probability, as the authors' code does
(pytorch-grad-cam instead softmaxes the masked logits over channels). A constant channel (max = min) gives
no mask and weight 0, as in the authors' code. x is in the model's normalized space, so masked-out pixels
become 0 = the dataset mean. L = ReLU(Σ_k w_k A_k).

Exact savings: constant channels need no forward, and channels whose maps are positive affine copies of each
other (common after ReLU: one active cell at the same place) have the same mask — upsampling is linear and the
min–max normalisation removes scale and offset — so they share one forward and one weight.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..batching import batched_forward, run_seconds
from .base import Function, MapResult, Target
from .layer_cam import layer_map, spatial_activation


def channel_masks(activations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """k×u×v activations → k×1×H×W masks: bilinear upsampling, then min–max to [0, 1] per channel."""
    up = F.interpolate(activations[:, None], size=size, mode="bilinear", align_corners=False)
    low = up.amin(dim=(2, 3), keepdim=True)
    span = up.amax(dim=(2, 3), keepdim=True) - low
    return torch.where(span > 0, (up - low) / torch.where(span > 0, span, torch.ones_like(span)),
                       torch.zeros_like(up))


@dataclass
class MaskedByChannels:
    """Variants x ⊙ M_k for the selected channels (masks made per chunk, never all at once)."""

    template: torch.Tensor
    activations: torch.Tensor  # k×u×v, the selected channels

    @property
    def count(self) -> int:
        return int(self.activations.shape[0])

    def fill(self, start: int, out: torch.Tensor) -> None:
        masks = channel_masks(self.activations[start:start + out.shape[0]], tuple(out.shape[-2:]))
        torch.mul(self.template, masks.to(out.dtype), out=out)


def _minmax_rows(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of a k×n tensor: its minimum and its span (max − min), both k×1."""
    low = flat.amin(dim=1, keepdim=True)
    return low, flat.amax(dim=1, keepdim=True) - low


def select_channels(activations: torch.Tensor, max_channels: int) -> tuple[torch.Tensor, bool]:
    """Indices of the non-constant channels, the ``max_channels`` of highest mean activation when capped."""
    flat = activations.reshape(activations.shape[0], -1)
    varying = (_minmax_rows(flat)[1][:, 0] > 0).nonzero().flatten()
    if max_channels and varying.numel() > max_channels:
        means = flat[varying].mean(dim=1)
        keep = torch.argsort(means, descending=True, stable=True)[:max_channels]
        return varying[keep.sort().values], True
    return varying, False


def distinct_masks(activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For k non-constant channels: indices of one channel per distinct min–max normalised map (the first, in
    channel order) and, for each channel, the position of its map among those (so ``weights = w[inverse]``)."""
    flat = activations.reshape(activations.shape[0], -1)
    low, span = _minmax_rows(flat)
    _, inverse = torch.unique((flat - low) / span, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), flat.shape[0], dtype=torch.long, device=flat.device)
    first.scatter_reduce_(0, inverse, torch.arange(flat.shape[0], device=flat.device), reduce="amin")
    order = torch.argsort(first)  # keep channel order: progress and chunks follow the layer
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return first[order], rank[inverse]


@dataclass
class ChannelPlan:
    """Which channels Score-CAM scores (``chosen``), which of them it runs (``run``, one per distinct mask) and,
    for each chosen channel, the position of its run (``inverse``); ``capped`` when ``max_channels`` cut."""

    chosen: torch.Tensor
    run: torch.Tensor
    inverse: torch.Tensor
    capped: bool


def plan_channels(activations: torch.Tensor, max_channels: int) -> ChannelPlan:
    """The channels of a C×u×v map that Score-CAM scores and the forwards that takes (see the module docstring)."""
    chosen, capped = select_channels(activations, int(max_channels))
    if not chosen.numel():
        return ChannelPlan(chosen, chosen, chosen, capped)
    run, inverse = distinct_masks(activations[chosen])
    return ChannelPlan(chosen, chosen[run], inverse, capped)


def estimate_scorecam(model: torch.nn.Module, x: torch.Tensor, params: dict, layer: str | None) -> float | None:
    """The clean forward, then one batched forward per distinct mask (counted on a forward that stops at the
    layer) at this model's time per item (``batching.run_seconds``); ``None`` without a layer."""
    if layer is None:
        return None
    plan = plan_channels(layer_map(model, x, layer), int(params["max_channels"]))
    return run_seconds(model, x, int(plan.run.numel()))


def run_scorecam(target: Target, max_channels: int, chunk: int | None) -> MapResult:
    a, logits, cls = spatial_activation(target, "Score-CAM")
    plan = plan_channels(a, max_channels)
    weights = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
    if plan.run.numel():
        variants = MaskedByChannels(target.x.detach(), a[plan.run])
        weights[plan.chosen] = cls.prob(batched_forward(target.model, variants, chunk, target.progress))[plan.inverse]
    raw = torch.einsum("k,kuv->uv", weights, a)
    notes = []
    if plan.capped:
        notes.append(f"approximation: only the {plan.chosen.numel()} channels of highest mean activation (of "
                     f"{a.shape[0]}) were scored; set max_channels to 0 for the exact Score-CAM")
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=logits, notes=notes,
                     class_idx=cls.index,
                     extras={"channel_weights": weights.cpu().numpy(), "masked_forwards": int(plan.run.numel())})


SCORECAM = Function(run_scorecam, needs_layer=True)
