"""One batched forward for every perturbation method and metric: chunking, progress, device, timing.

Occlusion, Score-CAM, Ablation-CAM, RISE, SmoothGrad, Integrated Gradients and the faithfulness metrics all
run one model on many variants of one image. They describe the variants (``Variants``: how many, and how
to write items ``start…`` into a buffer) and call ``batched_forward`` (scores only) or ``batched_gradient``
(scores and ∂score/∂input); chunking, the progress callback, inference mode and the time estimate live
here and nowhere else.

Chunk size: an explicit ``chunk`` wins. Otherwise the first chunks of the first call for a (model, input
shape, device, gradient?) run at growing sizes, each timed per item on the real work (nothing is wasted),
and the fastest size is remembered for the process. On a small CPU the fastest chunks are small (activations
that fit in cache: 4–8 windows beat 64 by up to 2.2× on Lite0); on a GPU they are large.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from .errors import CamError
from .hygiene import grad_mode
from .targets import logits_of

Progress = Callable[[int, int], None]
ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # logits N×K -> one score per item (N,)


class Variants(Protocol):
    """Items made on demand: ``count`` of them, each shaped like ``template`` (1×C×H×W)."""

    template: torch.Tensor
    count: int

    def fill(self, start: int, out: torch.Tensor) -> None:
        """Write items ``start … start + len(out) - 1`` into ``out``."""


@dataclass
class Stack:
    """Variants that already exist as one N×C×H×W tensor."""

    items: torch.Tensor

    @property
    def template(self) -> torch.Tensor:
        return self.items[:1]

    @property
    def count(self) -> int:
        return int(self.items.shape[0])

    def fill(self, start: int, out: torch.Tensor) -> None:
        out.copy_(self.items[start:start + out.shape[0]])


@dataclass
class _Timing:
    chunk: int
    seconds_per_item: float


_lock = threading.Lock()
_learned: dict[tuple, _Timing] = {}


def _key(model: nn.Module, template: torch.Tensor, grad: bool) -> tuple:
    params = sum(p.numel() for p in model.parameters())
    return (type(model).__qualname__, params, tuple(template.shape[1:]), template.dtype, str(template.device), grad)


def memory_cap(template: torch.Tensor, per_item_factor: int = 96) -> int:
    """The most items that fit at once: about ``per_item_factor`` × the input's bytes of activations each."""
    per_item = template[0].numel() * template.element_size() * per_item_factor
    if template.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(template.device)
        budget = free // 4
        ceiling = 512
    else:
        budget = 1 << 30
        ceiling = 64
    return int(max(1, min(ceiling, budget // max(per_item, 1))))


def _ladder(template: torch.Tensor, count: int) -> list[int]:
    """Chunk sizes tried on a first call, smallest first, within memory and the work available."""
    cap = min(memory_cap(template), count)
    start = 2 if template.device.type == "cpu" else 8
    sizes, size = [], start
    while size <= cap:
        sizes.append(size)
        size *= 2
    return sizes or [max(1, cap)]


def estimate_seconds(model: nn.Module, template: torch.Tensor, count: int, grad: bool = False) -> float | None:
    """Seconds ``count`` items will take, from what this process measured before; ``None`` if nothing yet."""
    with _lock:
        timing = _learned.get(_key(model, template, grad))
    return None if timing is None else timing.seconds_per_item * count


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run(model: nn.Module, variants: Variants, chunk: int | None, progress: Progress | None,
         step: Callable[[torch.Tensor, int], None], grad: bool) -> None:
    """Fill buffers chunk by chunk and call ``step(batch, start)``; learn the fastest chunk on a first call."""
    count, template = variants.count, variants.template
    if count < 1:
        return
    key = _key(model, template, grad)
    with _lock:
        learned = _learned.get(key)
    if chunk:
        plan, learning = [max(1, int(chunk))], False
    elif learned is not None:
        plan, learning = [learned.chunk], False
    else:
        plan, learning = _ladder(template, count), True
    buffer = torch.empty((max(plan), *template.shape[1:]), dtype=template.dtype, device=template.device)
    measured: list[tuple[float, int]] = []  # (seconds per item, chunk)
    done, rung = 0, 0
    while done < count:
        size = min(plan[min(rung, len(plan) - 1)], count - done)
        batch = buffer[:size]  # one buffer reused: no fresh pages for every chunk
        variants.fill(done, batch)
        began = time.perf_counter()
        step(batch, done)
        _sync(template.device)
        per_item = (time.perf_counter() - began) / size
        if learning and rung < len(plan) and size == plan[rung]:
            measured.append((per_item, size))
            if len(measured) >= 2 and per_item > 1.1 * min(measured)[0]:
                rung = len(plan)  # bigger stopped paying: stop climbing
            else:
                rung += 1
            if rung >= len(plan):
                best = min(measured)
                plan = [best[1]]
                rung = 0
                with _lock:
                    _learned[key] = _Timing(best[1], best[0])
        elif not learning:
            with _lock:  # keep the estimate current (a model now warm, a busier machine)
                timing = _learned.get(key)
                if timing is not None and size == timing.chunk:
                    timing.seconds_per_item = 0.5 * (timing.seconds_per_item + per_item)
                elif timing is None and not chunk:
                    _learned[key] = _Timing(size, per_item)
        done += size
        if progress is not None:
            progress(done, count)
    if learning and measured and rung < len(plan):  # the work ran out before the ladder's top
        best = min(measured)
        with _lock:
            _learned.setdefault(key, _Timing(best[1], best[0]))


def batched_forward(model: nn.Module, variants: Variants | torch.Tensor, chunk: int | None = None,
                    progress: Progress | None = None) -> torch.Tensor:
    """The model's class scores (logits, N×K, on the model's device) for every variant, in chunks.

    Runs under ``torch.inference_mode``: no graph, no ``.grad``; the model is only called.
    """
    variants = Stack(variants) if isinstance(variants, torch.Tensor) else variants
    out: list[torch.Tensor] = []

    def step(batch: torch.Tensor, _start: int) -> None:
        out.append(logits_of(model(batch)))

    with torch.inference_mode():
        _run(model, variants, chunk, progress, step, grad=False)
    if not out:
        raise CamError("nothing to run: no variants of the image were asked for")
    return torch.cat(out)


def batched_gradient(model: nn.Module, variants: Variants | torch.Tensor, score: ScoreFn,
                     chunk: int | None = None, progress: Progress | None = None,
                     reduce: Callable[[torch.Tensor, int], None] | None = None,
                     ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """∂score/∂input for every variant (N×C×H×W, or ``None`` when ``reduce`` consumes each chunk) and logits.

    ``score(logits)`` gives one scalar per item (e.g. ``ClassTarget.score``); gradients come from
    ``torch.autograd.grad`` so no parameter ``.grad`` is written. ``reduce(grads, start)``, when given,
    receives each chunk's gradients instead of keeping them all (SmoothGrad's running mean).
    """
    variants = Stack(variants) if isinstance(variants, torch.Tensor) else variants
    grads: list[torch.Tensor] = []
    logits_out: list[torch.Tensor] = []

    def step(batch: torch.Tensor, start: int) -> None:
        leaf = batch.detach().clone().requires_grad_(True)
        with grad_mode(True):
            logits = logits_of(model(leaf))
            total = score(logits).sum()
        (grad,) = torch.autograd.grad(total, leaf)
        logits_out.append(logits.detach())
        if reduce is not None:
            reduce(grad, start)
        else:
            grads.append(grad)

    _run(model, variants, chunk, progress, step, grad=True)
    if not logits_out:
        raise CamError("nothing to run: no variants of the image were asked for")
    return (None if reduce is not None else torch.cat(grads)), torch.cat(logits_out)


def run_chunks(model: nn.Module, variants: Variants | torch.Tensor, step: Callable[[torch.Tensor, int], None],
               chunk: int | None = None, progress: Progress | None = None, grad: bool = False) -> None:
    """Call ``step(batch, start)`` on the variants chunk by chunk (for methods whose step is more than a
    forward: a wrapped gradient method, a layer CAM). Same chunking, progress and timing as the others."""
    variants = Stack(variants) if isinstance(variants, torch.Tensor) else variants
    _run(model, variants, chunk, progress, step, grad=grad)
