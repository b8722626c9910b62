"""Ablation-CAM (Desai & Ramaswamy, WACV 2020): w_k = (y^c − y^c with A_k = 0) / y^c, pre-softmax scores.

Only the part of the network after the target layer is re-run: the recorder replaces the layer's output
(computed once, batch 1) by a batch of copies, each with one channel zeroed. Where the network mixes that
batch with earlier tensors in a way that cannot broadcast (a concatenation, as in DenseNet), whole copies of
the image run instead — slower, same numbers. L = ReLU(Σ_k w_k A_k).

A channel that is zero everywhere (common after ReLU) is not run: zeroing it changes nothing, so its weight
is exactly 0 — and it adds nothing to the map whatever its weight.
"""
from __future__ import annotations

import math
import time

import torch

from .. import batching
from ..batching import TIMINGS, memory_cap, timing_key
from ..errors import CamError
from ..hygiene import eval_mode
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


def chunk_size(a: torch.Tensor, count: int, chunk: int | None) -> int:
    """Channels ablated per pass of the tail: ``chunk`` if given, else as many as fit in memory."""
    return int(chunk) if chunk else max(1, min(max(count, 1), memory_cap(a[None], per_item_factor=8)))


def _score_chunk(model: torch.nn.Module, x: torch.Tensor, name: str, chosen: torch.Tensor,
                 tail_only: bool) -> tuple[torch.Tensor, bool]:
    """The logits with each channel of ``chosen`` zeroed (one item per channel), and whether the tail alone
    could run (else whole copies of the image did)."""
    if tail_only:
        try:
            return record(model, x, [name], edit={name: lambda f, c=chosen: _ablate(f, c)}).logits, True
        except RuntimeError:
            pass
    copies = x.expand(chosen.numel(), *x.shape[1:])
    return record(model, copies, [name], edit={name: lambda f, c=chosen: _ablate(f[:1], c)}).logits, False


def estimate_ablationcam(model: torch.nn.Module, x: torch.Tensor, params: dict, layer: str | None) -> float | None:
    """The clean forward, then one pass per chunk of live channels (counted on a forward that stops at the
    layer), each as a chunk measured against the calibrated forward (``batching.relate``) × that forward now —
    the first chunk timed now if never measured."""
    if layer is None:
        return None
    a = layer_map(model, x, layer)
    live = live_channels(a)
    count = int(live.numel())
    if not count:
        return batching.single_seconds(model, x)
    step = chunk_size(a, count, params.get("chunk"))
    key = ("ablation", *_timing_key(model, x, layer), step)
    if TIMINGS.get("ratios", key) is None:  # time the first chunk now, against a calibration made now
        batching.calibration(model, x)
        with eval_mode(model), torch.no_grad():
            since, began = time.monotonic(), time.perf_counter()
            _score_chunk(model, x[:1], layer, live[:step], True)
            batching.relate(key, time.perf_counter() - began, model, x, since)
    per_chunk = batching.scaled(key, model, x)
    assert per_chunk is not None  # related just above
    return batching.single_seconds(model, x) + math.ceil(count / step) * per_chunk


def run_ablationcam(target: Target, chunk: int | None) -> MapResult:
    name = target.layer_name
    a, logits, cls = spatial_activation(target, "Ablation-CAM")
    clean = float(logits[0, cls.index])
    if clean == 0:
        raise CamError("Ablation-CAM divides by the class score, which is exactly 0 here; use Score-CAM")
    live = live_channels(a)
    count = int(live.numel())
    step = chunk_size(a, count, chunk)
    scores, notes, tail_only, full = [], [], True, []
    since = time.monotonic()
    for start in range(0, count, step):
        chosen = live[start:start + step]
        began = time.perf_counter()
        out, tail_only = _score_chunk(target.model, target.x, name, chosen, tail_only)
        if chosen.numel() == step:
            full.append(time.perf_counter() - began)
        scores.append(cls.score(out))
        target.report(start + chosen.numel(), count)
    if not tail_only:
        notes.append("this network mixes the target layer with earlier tensors that cannot be batched; "
                     "whole copies of the image were run (same result, slower)")
    ablated = torch.full((a.shape[0],), clean, dtype=logits.dtype, device=logits.device)
    if scores:
        ablated[live] = torch.cat(scores).to(ablated.dtype)
    if full:  # seconds of one chunk of ``step`` channels, per (model, input shape, layer): the next estimate
        batching.relate(("ablation", *_timing_key(target.model, target.x, name), step), sum(full) / len(full),
                        target.model, target.x, since)
    weights = (clean - ablated) / clean
    if clean < 0:
        notes.append("the class score is negative, so Ablation-CAM's relative drop flips sign; read with care")
    raw = torch.einsum("k,kuv->uv", weights.to(a.dtype), a)
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=logits, notes=notes,
                     class_idx=cls.index, extras={"channel_weights": weights.cpu().numpy()})


ABLATIONCAM = Function(run_ablationcam, needs_layer=True)
