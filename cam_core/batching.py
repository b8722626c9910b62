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

Memory format: 4-D batches are handed to the model in ``channels_last`` when that measured faster for this
(model, input shape, device) — 1.3–1.4× on CPU for ResNet-18 and Lite0. Only the *input* is converted: a
convolution with a channels_last input runs channels_last whatever its weights' layout (measured: converting
the weights too gains nothing more), so the model itself is never copied or changed, and hooks a caller
set on it (Ablation-CAM's channel switch) keep firing. The choice is one more measured chunk on a first
call (the ladder runs channels_last; one chunk at the winning size runs contiguous); ``channels_last=``
True/False forces it. Forward-only batches only: gradient batches (Integrated Gradients, SmoothGrad,
SmoothGrad-CAM++) stay contiguous. Their scores agree across layouts to rounding (1e-15 in float64), but a
max-pool after a ReLU meets exact ties wherever the image is flat (a uniform background, text, a
checkerboard); rounding that differs between layouts breaks each tie differently and the gradient follows,
so a map measured 1.5 % apart from captum's and a plain loop's (ResNet-18, 120×500) and would have depended on
which layout a timing happened to pick. Contiguous gradients equal the plain loop's exactly.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from .errors import CamError
from .hygiene import eval_mode, grad_mode
from .targets import at_least_float32, logits_of

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
    channels_last: bool = False
    settled: bool = True  # False: timed on a small call (for estimates only); its chunk size is not a choice
    #: False until a chunk ran at this size a second time: the first call at a batch shape picks kernels and
    #: allocates (2–4× a warm call on a CPU), so the learning ladder's times overstate the steady time per item.
    warm: bool = False


class Timings:
    """Every time this process measured, in one store behind one lock: sections named by their writer —
    ``"batches"`` (chunk size and seconds per item of ``batched_*``, a ``_Timing``), ``"single"`` (one image's
    forward), ``"ablation"`` (Ablation-CAM's seconds per chunk of channels), ``"incremental"`` (the incremental
    engine's chunk, seconds per window and set-up).
    ``lock`` guards a read-modify-write across calls."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._sections: dict[str, dict[tuple, Any]] = {}

    def section(self, what: str) -> dict[tuple, Any]:
        """The live mapping of one writer's timings (hold ``lock`` while changing it)."""
        with self.lock:
            return self._sections.setdefault(what, {})

    def get(self, what: str, key: tuple, default: Any = None) -> Any:
        with self.lock:
            return self._sections.get(what, {}).get(key, default)

    def put(self, what: str, key: tuple, value: Any) -> None:
        with self.lock:
            self.section(what)[key] = value

    def put_default(self, what: str, key: tuple, value: Any) -> Any:
        """``value`` stored unless a timing is there already; the stored one."""
        with self.lock:
            return self.section(what).setdefault(key, value)

    def clear(self) -> None:
        """Forget everything measured (tests; a machine that changed)."""
        with self.lock:
            for values in self._sections.values():
                values.clear()


TIMINGS = Timings()
_lock = TIMINGS.lock
_batches: dict[tuple, _Timing] = TIMINGS.section("batches")
#: A first call learns the chunk size only with at least this many items (enough to climb 2, 4, 8): a
#: one-image clean forward timed as "chunk 1" would otherwise fix every later call to one image at a time.
LEARN_FROM = 16


def timing_key(model: nn.Module, template: torch.Tensor, grad: bool = False, what: str = "") -> tuple:
    """What a learned timing is remembered by: architecture, size, input shape, dtype, device, gradient, and
    ``what`` a gradient goes back to when not the input (``"layer:NAME"``: a layer CAM's shorter backward)."""
    params = sum(p.numel() for p in model.parameters())
    key = (type(model).__qualname__, params, tuple(template.shape[1:]), template.dtype, str(template.device), grad)
    return (*key, what) if what else key


_key = timing_key


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


#: Copies of the image in the calibration batch (``calibration``): the small chunks a CPU runs fastest.
CALIBRATION_ITEMS = 4
#: Seconds a calibration stands for "this machine now"; an estimate asked later times the model again.
CALIBRATION_TTL = 20.0
#: A forward+backward per item, in calibrated forwards, until a run measured it (at 128×160 on 2 CPU threads:
#: to the input Lite0 2.5, ResNet-18 2.4; to a layer CAM's last layer 1.3 gave SmoothGrad-CAM++'s first estimate
#: 2.0× its run on both, so 0.7 — docs/benchmarks.md, "Time estimates against measured times").
GRAD_FACTOR = {"input": 2.5, "layer": 0.7}


def calibration(model: nn.Module, template: torch.Tensor) -> tuple[float, float]:
    """(seconds of one image's forward, seconds per item of a batch of ``CALIBRATION_ITEMS`` copies) of
    ``model`` at ``template``'s shape, timed now (after a warm-up batch the first time) unless timed in the last
    ``CALIBRATION_TTL`` s. Every estimate scales from it, so an estimate follows the machine's load at the time
    it is asked. The model is borrowed in eval mode, under inference mode: nothing is written."""
    key = _key(model, template)
    known = TIMINGS.get("calibration", key)
    if known is not None and time.monotonic() - known[0] < CALIBRATION_TTL:
        return known[1], known[2]
    x = template[:1].detach()
    batch = x.expand(CALIBRATION_ITEMS, *x.shape[1:]).contiguous()
    with eval_mode(model), torch.inference_mode():
        if known is None:
            model(batch)  # warm-up: the first call at a shape allocates and picks kernels
            _sync(x.device)
        began = time.perf_counter()
        model(x)
        _sync(x.device)
        single = time.perf_counter() - began
        began = time.perf_counter()
        model(batch)
        _sync(x.device)
        per_item = (time.perf_counter() - began) / CALIBRATION_ITEMS
    TIMINGS.put("calibration", key, (time.monotonic(), single, per_item))
    return single, per_item


def relate(what: tuple, seconds: float, model: nn.Module, template: torch.Tensor, since: float,
           to_single: bool = False) -> None:
    """Keep a run's measured ``seconds`` for one unit of ``what`` (an item, a window, a chunk, a set-up) as a
    multiple of the calibration made at most ``CALIBRATION_TTL`` s before the run began (``since``,
    ``time.monotonic()``) — of its one-image time with ``to_single`` — a ratio the machine's load does not
    change (a running mean); without a calibration that recent nothing is kept."""
    known = TIMINGS.get("calibration", _key(model, template))
    if known is None or since - known[0] > CALIBRATION_TTL:
        return
    base = known[1] if to_single else known[2]
    if base <= 0:
        return
    with _lock:
        ratio = seconds / base
        old = TIMINGS.get("ratios", what)
        TIMINGS.put("ratios", what, ratio if old is None else 0.5 * (old + ratio))


def scaled(what: tuple, model: nn.Module, template: torch.Tensor, default: float | None = None,
           to_single: bool = False) -> float | None:
    """Seconds one unit of ``what`` should take now: its kept ratio (``relate``; else ``default``; else
    ``None``) × the calibration (``calibration``: timed now if not recent)."""
    ratio = TIMINGS.get("ratios", what, default)
    if ratio is None:
        return None
    single, per_item = calibration(model, template)
    return ratio * (single if to_single else per_item)


def single_seconds(model: nn.Module, template: torch.Tensor) -> float:
    """Seconds of one image's forward (the clean pass every method makes first), now."""
    seconds = scaled(("single", *_key(model, template)), model, template, 1.0, to_single=True)
    assert seconds is not None  # a default was given
    return seconds


def per_item_seconds(model: nn.Module, template: torch.Tensor, grad: bool = False, what: str = "") -> float:
    """Seconds per item of a batch now (a forward, or with ``grad`` a forward and backward to ``what``): the
    calibrated forward × the ratio runs measured (1 for a forward, ``GRAD_FACTOR`` for a gradient, until then)."""
    default = GRAD_FACTOR["layer" if what else "input"] if grad else 1.0
    seconds = scaled(("batch", *_key(model, template, grad, what)), model, template, default)
    assert seconds is not None  # a default was given
    return seconds


def estimate_seconds(model: nn.Module, template: torch.Tensor, count: int, grad: bool = False,
                     what: str = "") -> float | None:
    """Seconds ``count`` batched items took at the per-item time this process last measured on real work
    (no calibration); ``None`` if nothing yet. The methods' estimates use ``run_seconds``."""
    with _lock:
        timing = _batches.get(_key(model, template, grad, what))
    return None if timing is None else timing.seconds_per_item * count


def run_seconds(model: nn.Module, template: torch.Tensor, count: int, grad: bool = False, what: str = "") -> float:
    """What a method that makes one clean forward and then ``count`` batched items costs now: one image's
    forward plus ``count`` × the time per item."""
    return single_seconds(model, template) + count * per_item_seconds(model, template, grad, what)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _layout_ok(template: torch.Tensor) -> bool:
    """Whether a channels_last batch is possible at all: a 4-D input with more than one channel."""
    return template.dim() == 4 and template.shape[1] > 1


def preferred_layout(model: nn.Module, template: torch.Tensor, grad: bool = False) -> bool:
    """Whether batches for ``model`` at ``template``'s shape run channels_last (as measured; False if unknown)."""
    with _lock:
        timing = _batches.get(_key(model, template, grad))
    return bool(timing is not None and timing.channels_last)


def _run(model: nn.Module, variants: Variants, chunk: int | None, progress: Progress | None,
         step: Callable[[torch.Tensor, int], None], grad: bool, channels_last: bool | None = None,
         what: str = "") -> None:
    """Fill buffers chunk by chunk and call ``step(batch, start)``; learn the fastest chunk on a first call.

    Learning runs the ladder of sizes channels_last (where possible), each timed on its second chunk (the first
    call at a new shape picks kernels and allocates), then one chunk at the winning size in
    the default layout; the faster layout is remembered with the size. Gradient batches (``grad``) stay in the
    default layout unless ``channels_last=True`` is forced (see the module docstring).
    """
    count, template = variants.count, variants.template
    if count < 1:
        return
    key = _key(model, template, grad, what)
    if count == 1 and not chunk:  # one image (a clean forward): its own time, never a batch's per item
        _single(model, variants, step, key)
        if progress is not None:
            progress(1, 1)
        return
    with _lock:
        learned = _batches.get(key)
    layout_ok = _layout_ok(template) and (not grad or bool(channels_last))
    if chunk:
        plan, learning = [max(1, int(chunk))], False
        last = learned.channels_last if learned is not None else False
    elif learned is not None and learned.settled:
        plan, learning = [learned.chunk], False
        last = learned.channels_last
    elif count < LEARN_FROM:  # too little work to time chunk sizes on (a clean forward): learn nothing from it
        plan, learning = [max(1, min(count, memory_cap(template)))], False
        last = False
    else:
        plan, learning = _ladder(template, count), True
        last = True
    if channels_last is not None:
        last = bool(channels_last)
    last = last and layout_ok
    learn_layout = learning and layout_ok and channels_last is None
    shape = (max(plan), *template.shape[1:])
    buffer = torch.empty(shape, dtype=template.dtype, device=template.device)
    packed = torch.empty(shape, dtype=template.dtype, device=template.device,
                         memory_format=torch.channels_last) if layout_ok else None
    measured: list[tuple[float, int]] = []  # (seconds per item, chunk), channels_last when learn_layout
    layout_trial: float | None = None  # seconds per item of the contiguous trial chunk
    done, rung, spent, since = 0, 0, 0.0, time.monotonic()
    warmed = False  # the ladder's current size ran once: its first call at a new shape is not timed (``warm``)
    while done < count:
        size = min(plan[min(rung, len(plan) - 1)], count - done)
        batch = buffer[:size]  # one buffer reused: no fresh pages for every chunk
        variants.fill(done, batch)  # variants always write a contiguous buffer
        trial = learning and rung >= len(plan) and layout_trial is None and learn_layout
        use_last = last and not trial
        if use_last and packed is not None:
            batch = packed[:size]
            batch.copy_(buffer[:size])
        began = time.perf_counter()
        step(batch, done)
        _sync(template.device)
        per_item = (time.perf_counter() - began) / size
        spent += per_item * size
        if learning and rung < len(plan) and size == plan[rung] and not warmed:
            warmed = True
        elif learning and rung < len(plan) and size == plan[rung]:
            warmed = False
            measured.append((per_item, size))
            if len(measured) >= 2 and per_item > 1.1 * min(measured)[0]:
                rung = len(plan)  # bigger stopped paying: stop climbing
            else:
                rung += 1
            if rung >= len(plan):
                best = min(measured)
                plan = [best[1]]
                if not learn_layout:
                    learning = False
                    with _lock:
                        _batches[key] = _Timing(best[1], best[0], last, warm=True)
        elif trial and size == plan[0]:
            layout_trial = per_item
            best = min(measured)
            last = best[0] <= 1.05 * per_item  # channels_last unless contiguous is clearly faster
            learning = False
            with _lock:
                _batches[key] = _Timing(best[1], best[0] if last else per_item, last)
        elif not learning:
            with _lock:  # keep the estimate current (a model now warm, a busier machine)
                timing = _batches.get(key)
                if timing is not None and size == timing.chunk and use_last == timing.channels_last:
                    before = timing.seconds_per_item  # the first warm time replaces the ladder's cold one
                    timing.seconds_per_item = 0.5 * (before + per_item) if timing.warm else per_item
                    timing.warm = True
                elif timing is None and not chunk:  # a small call: a time for estimates, not a chunk choice
                    _batches[key] = _Timing(size, per_item, use_last, settled=False)
        done += size
        if progress is not None:
            progress(done, count)
    if learning and measured:  # the work ran out before the ladder's top or the layout trial
        best = min(measured)
        with _lock:
            current = _batches.get(key)
            if current is None or not current.settled:
                _batches[key] = _Timing(best[1], best[0], last)
    relate(("batch", *key), spent / count, model, template, since)  # for the next estimate


def _single(model: nn.Module, variants: Variants, step: Callable[[torch.Tensor, int], None], key: tuple) -> None:
    """Run one image and keep its time against the calibration (``relate``); a one-image call never fixes a
    chunk size or a per-item time."""
    batch = torch.empty_like(variants.template)
    variants.fill(0, batch)
    since, began = time.monotonic(), time.perf_counter()
    step(batch, 0)
    _sync(batch.device)
    took = time.perf_counter() - began
    if key == _key(model, batch):  # a plain forward: as a multiple of the calibrated one
        relate(("single", *key), took, model, batch, since, to_single=True)


def batched_forward(model: nn.Module, variants: Variants | torch.Tensor, chunk: int | None = None,
                    progress: Progress | None = None, *, channels_last: bool | None = None,
                    head: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The model's class scores (logits, N×K, on the model's device) for every variant, in chunks.

    Runs under ``torch.inference_mode``: no graph, no ``.grad``; the model is only called. Logits come back
    in float32, or float64 for a float64 model (exact scores, for tests against plain loops).
    ``head(logits)``, when given, maps each chunk's logits before they are kept (e.g. softmax).
    ``channels_last``: force the batch layout; ``None`` uses the measured choice.
    """
    variants = Stack(variants) if isinstance(variants, torch.Tensor) else variants
    out: list[torch.Tensor] = []

    def step(batch: torch.Tensor, _start: int) -> None:
        logits = at_least_float32(logits_of(model(batch)))
        out.append(logits if head is None else head(logits))

    with torch.inference_mode():
        _run(model, variants, chunk, progress, step, grad=False, channels_last=channels_last)
    if not out:
        raise CamError("nothing to run: no variants of the image were asked for")
    return torch.cat(out)


def batched_gradient(model: nn.Module, variants: Variants | torch.Tensor, score: ScoreFn,
                     chunk: int | None = None, progress: Progress | None = None,
                     reduce: Callable[[torch.Tensor, int], None] | None = None,
                     *, channels_last: bool | None = None,
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
        grad = grad.contiguous()  # a channels_last batch gives channels_last gradients; callers get plain ones
        logits_out.append(at_least_float32(logits.detach()))
        if reduce is not None:
            reduce(grad, start)
        else:
            grads.append(grad)

    _run(model, variants, chunk, progress, step, grad=True, channels_last=channels_last)
    if not logits_out:
        raise CamError("nothing to run: no variants of the image were asked for")
    return (None if reduce is not None else torch.cat(grads)), torch.cat(logits_out)


def run_chunks(model: nn.Module, variants: Variants | torch.Tensor, step: Callable[[torch.Tensor, int], None],
               chunk: int | None = None, progress: Progress | None = None, grad: bool = False,
               what: str = "") -> None:
    """Call ``step(batch, start)`` on the variants chunk by chunk (for methods whose step is more than a
    forward: a wrapped gradient method, a layer CAM). Same chunking, progress and timing as the others;
    ``what`` (``timing_key``) keeps a backward to a layer apart from one to the input."""
    variants = Stack(variants) if isinstance(variants, torch.Tensor) else variants
    _run(model, variants, chunk, progress, step, grad=grad, what=what)
