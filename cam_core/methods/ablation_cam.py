"""Ablation-CAM (Desai & Ramaswamy, WACV 2020): w_k = (y^c − y^c with A_k = 0) / y^c, pre-softmax scores.

Only the part of the network after the target layer is re-run: the recorder replaces the layer's output
(computed once, batch 1) by a batch of copies, each with one channel zeroed. Where the network mixes that
batch with earlier tensors in a way that cannot broadcast (a concatenation, as in DenseNet), whole copies of
the image run instead — slower, same numbers. L = ReLU(Σ_k w_k A_k).

A channel that is zero everywhere (common after ReLU) is not run: zeroing it changes nothing, so its weight
is exactly 0 — and it adds nothing to the map whatever its weight.
"""
from __future__ import annotations

import time

import torch

from ..batching import TIMINGS, memory_cap, timing_key
from ..errors import CamError
from ..recorder import record
from .base import Function, MapResult, Target
from .layer_cam import layer_map, spatial_activation


def _ablate(fmap: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """Item j of the result is ``fmap`` (the first image's map when fmap has batch 1) with channel j zeroed."""
    out = fmap.expand(channels.numel(), *fmap.shape[1:]).clone()
    out[torch.arange(channels.numel(), device=out.device), channels] = 0
    return out


def _timing_key(model: torch.nn.Module, x: torch.Tensor, layer: str) -> tuple:
    return (*timing_key(model, x[:1]), layer)


def live_channels(a: torch.Tensor) -> torch.Tensor:
    """Indices of the channels of a C×u×v map that are not zero everywhere (the only ones worth ablating)."""
    return a.reshape(a.shape[0], -1).ne(0).any(dim=1).nonzero().flatten()


def estimate_ablationcam(model: torch.nn.Module, x: torch.Tensor, params: dict, layer: str | None) -> float | None:
    """The live channels times the time per channel this process measured at this layer (``None`` until then)."""
    seconds = None if layer is None else TIMINGS.get("ablation", _timing_key(model, x, layer))
    return None if seconds is None else seconds * live_channels(layer_map(model, x, layer)).numel()


def run_ablationcam(target: Target, chunk: int | None) -> MapResult:
    name = target.layer_name
    started = time.perf_counter()
    a, logits, cls = spatial_activation(target, "Ablation-CAM")
    clean = float(logits[0, cls.index])
    if clean == 0:
        raise CamError("Ablation-CAM divides by the class score, which is exactly 0 here; use Score-CAM")
    live = live_channels(a)
    count = int(live.numel())
    step = int(chunk) if chunk else max(1, min(max(count, 1), memory_cap(a[None], per_item_factor=8)))
    scores, notes, tail_only = [], [], True
    for start in range(0, count, step):
        chosen = live[start:start + step]
        if tail_only:
            try:
                out = record(target.model, target.x, [name], edit={name: lambda f, c=chosen: _ablate(f, c)})
            except RuntimeError:
                tail_only = False
                notes.append("this network mixes the target layer with earlier tensors that cannot be batched; "
                             "whole copies of the image were run (same result, slower)")
        if not tail_only:
            copies = target.x.expand(chosen.numel(), *target.x.shape[1:])
            out = record(target.model, copies, [name], edit={name: lambda f, c=chosen: _ablate(f[:1], c)})
        scores.append(cls.score(out.logits))
        target.report(start + chosen.numel(), count)
    ablated = torch.full((a.shape[0],), clean, dtype=logits.dtype, device=logits.device)
    if scores:
        ablated[live] = torch.cat(scores).to(ablated.dtype)
        # seconds per ablated channel, per (model, input shape, layer): for the next estimate
        TIMINGS.put("ablation", _timing_key(target.model, target.x, name), (time.perf_counter() - started) / count)
    weights = (clean - ablated) / clean
    if clean < 0:
        notes.append("the class score is negative, so Ablation-CAM's relative drop flips sign; read with care")
    raw = torch.einsum("k,kuv->uv", weights.to(a.dtype), a)
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=logits, notes=notes,
                     class_idx=cls.index, extras={"channel_weights": weights.cpu().numpy()})


ABLATIONCAM = Function(run_ablationcam, needs_layer=True)
