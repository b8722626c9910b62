"""Exact incremental occlusion (Krypton-style, Nakandala et al., SIGMOD 2019, without its approximations).

An occluded image differs from the clean one only inside the window, so each layer's output differs only
inside the window's (growing) footprint. ``incremental_windows`` runs the clean image once, keeps every
activation, and for each chunk of windows recomputes only those footprints — convolutions, pooling,
element-wise ops, residual additions, BN in eval and pointwise activations — up to the first operation it
does not treat locally (global pooling, a linear layer, squeeze-excitation, attention); from there the
changed tensors are made whole and the rest of the network runs as a normal batch. The probabilities
equal plain forwards' up to float rounding. A network it cannot read (no fx trace, hooks attached, in-place
tricks) returns ``None`` and the caller runs plain forwards: never wrong, only not faster.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence

import torch
from torch import nn

from ..batching import TIMINGS, Progress, calibration, relate, scaled
from ..errors import CamError
from ..hygiene import submodules
from ..targets import logits_of
from .engine import Prepared, geometry, run_chunk
from .plan import build_plan, has_hooks

__all__ = ["incremental_windows", "summary", "window_cost"]

_lock = threading.Lock()
_prepared: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, Prepared | None]] = weakref.WeakKeyDictionary()


def _stamp(model: nn.Module, x: torch.Tensor) -> tuple | None:
    """What the clean pass depends on: the image's storage and version, the weights' versions, the modes."""
    try:
        weights = tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))
        image = (x.data_ptr(), x._version, tuple(x.shape), x.dtype, str(x.device))
    except RuntimeError:  # inference tensors have no version counter: do not cache
        return None
    return image, weights, tuple((id(m), m.training) for m in submodules(model))


def prepare(model: nn.Module, x: torch.Tensor) -> Prepared | None:
    """The clean pass of ``x`` through ``model``'s plan (cached for the last image per model), or ``None``."""
    if has_hooks(model):  # hooks expect whole tensors (and may be another thread's): plain forwards
        return None
    stamp = _stamp(model, x)
    with _lock:
        hit = _prepared.get(model)
    if stamp is not None and hit is not None and hit[0] == stamp:
        return hit[1]
    since, began = time.monotonic(), time.perf_counter()
    plan = build_plan(model)
    prepared = None
    if plan is not None:
        try:
            with torch.inference_mode():
                prepared = Prepared(plan, x)
                direct = logits_of(model(x))
                traced = logits_of(prepared.output)
            scale = float(direct.abs().max().clamp(min=1e-30))
            if traced.shape != direct.shape or float((traced - direct).abs().max()) > 1e-5 * scale:
                prepared = None  # the traced graph is not the model (it changed under tracing): no plan
        except Exception:
            prepared = None
    if stamp is not None:
        with _lock:
            _prepared[model] = (stamp, prepared)
    relate(("setup", *_shape_key(model, x)), time.perf_counter() - began, model, x, since)
    return prepared


def _shape_key(model: nn.Module, x: torch.Tensor) -> tuple:
    return (type(model).__qualname__, tuple(x.shape), x.dtype, str(x.device))


def _is_prepared(model: nn.Module, x: torch.Tensor) -> bool:
    stamp = _stamp(model, x)
    with _lock:
        hit = _prepared.get(model)
    return stamp is not None and hit is not None and hit[0] == stamp


#: Windows a cost estimate times when nothing was measured (``window_cost``), in chunks of ``CALIBRATION_CHUNK``.
CALIBRATION_WINDOWS, CALIBRATION_CHUNK = 8, 4


def window_cost(model: nn.Module, x: torch.Tensor, positions: Sequence[tuple[int, int]], patch: int,
                value: torch.Tensor) -> tuple[float, float] | None:
    """(set-up seconds a run on ``x`` still has to pay, seconds per window) of ``incremental_windows`` now, or
    ``None`` when it does not apply to this network (plain forwards then): ratios runs measured against the
    calibrated forward (``batching.relate``) × that forward now. Never measured: the set-up is done now (a run
    on this ``x`` then finds it ready) and ``CALIBRATION_WINDOWS`` windows spread over ``positions`` are timed."""
    key = ("window", *_shape_key(model, x), patch)
    if TIMINGS.get("ratios", key) is None:
        calibration(model, x)  # recent: what the windows are timed against
        if prepare(model, x) is None:
            return None
        step = max(1, len(positions) // CALIBRATION_WINDOWS)
        sample = list(positions)[::step][:CALIBRATION_WINDOWS]
        if incremental_windows(model, x, sample, patch, value, chunk=CALIBRATION_CHUNK) is None:
            return None
    per_window = scaled(key, model, x)
    if per_window is None:  # prepared before, but the engine gave nothing to gain here
        return None
    setup = 0.0 if _is_prepared(model, x) else scaled(("setup", *_shape_key(model, x)), model, x, 0.0)
    assert setup is not None
    return setup, per_window


def summary(model: nn.Module, x: torch.Tensor, patch: int, stride: int | None = None) -> dict[str, int]:
    """How many operations run locally (``sparse``), locally then whole (``whole``), or as a batch (``dense``)."""
    prep = prepare(model, x)
    if prep is None:
        return {"sparse": 0, "whole": 0, "dense": 0, "plan": 0}
    zero = torch.zeros(1, dtype=torch.long)
    decisions = geometry(prep, zero, zero, patch)
    counts = {"sparse": 0, "whole": 0, "dense": 0, "meta": 0, "plan": 1}
    for d in decisions.values():
        counts[d.mode] += 1
    return counts


def _ladder(device: torch.device, count: int) -> list[int]:
    sizes = [4, 8, 16, 32] if device.type == "cpu" else [32, 64, 128, 256]
    return [s for s in sizes if s <= count] or [max(1, count)]


def incremental_windows(model: nn.Module, x: torch.Tensor, positions: Sequence[tuple[int, int]], patch: int,
                        value: torch.Tensor, chunk: int | None = None, progress: Progress | None = None,
                        required: bool = False) -> torch.Tensor | None:
    """Softmax probabilities (len(positions)×K, x's dtype) of ``x`` with each window set to ``value`` (C×1×1).

    ``None`` when the network gives no incremental plan (the caller then runs plain forwards); with
    ``required`` a ``CamError`` instead.
    """
    count = len(positions)
    prep = prepare(model, x) if count else None
    if prep is None:
        if required:
            raise CamError("this network cannot be occluded incrementally (engine='incremental'); use 'auto'")
        return None
    rows = torch.as_tensor([p[0] for p in positions], dtype=torch.long)
    cols = torch.as_tensor([p[1] for p in positions], dtype=torch.long)
    decisions = geometry(prep, rows, cols, patch)
    if not required and not any(d.mode in ("sparse", "whole") and n.op != "placeholder"
                                for n, d in decisions.items()):
        return None  # the first operation is already global: nothing to gain
    key = (type(model).__qualname__, tuple(x.shape), x.dtype, str(x.device), patch)
    learned = TIMINGS.get("incremental", key)
    plan = [int(chunk)] if chunk else ([learned] if learned else _ladder(x.device, count))
    fill_patch = value.to(x.dtype)[None]
    out: list[torch.Tensor] = []
    timings: list[tuple[float, int]] = []
    done, rung = 0, 0
    since, started = time.monotonic(), time.perf_counter()
    try:
        with torch.inference_mode():
            while done < count:
                size = min(plan[min(rung, len(plan) - 1)], count - done)
                began = time.perf_counter()
                logits = logits_of(run_chunk(prep, decisions, slice(done, done + size), fill_patch))
                out.append(logits.softmax(dim=1))
                if x.device.type == "cuda":
                    torch.cuda.synchronize(x.device)
                if len(plan) > 1 and rung < len(plan) and size == plan[rung]:
                    per_item = (time.perf_counter() - began) / size
                    timings.append((per_item, size))
                    worse = len(timings) >= 2 and per_item > 1.1 * min(timings)[0]
                    rung = len(plan) if worse else rung + 1
                    if rung >= len(plan):
                        plan, rung = [min(timings)[1]], 0
                        TIMINGS.put("incremental", key, plan[0])
                done += size
                if progress is not None:
                    progress(done, count)
    except CamError:
        raise
    except Exception as exc:  # anything unexpected: plain forwards are always right
        if required:
            raise CamError(f"incremental occlusion failed on this network ({exc}); use engine='auto'") from None
        return None
    if timings and not chunk:
        TIMINGS.put_default("incremental", key, min(timings)[1])
    # seconds per window, set-up excluded, against the calibrated forward (``window_cost``): the next estimate
    relate(("window", *key), (time.perf_counter() - started) / count, model, x, since)
    return torch.cat(out)
