"""``explain``: the one entry point for every method, on any ``nn.Module`` classifier."""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .device import model_device
from .errors import CamError
from .explanation import Explanation
from .hygiene import eval_mode
from .layers import auto_layer, resolve_layer
from .methods.base import MapResult, Progress, Target
from .registry import get_method

# A map is blank when its positive peak is rounding noise: not above this fraction of the signed map's largest
# magnitude. Relative, not absolute: a randomly initialised network can have logits (and maps) near 1e-14.
_NOISE = 1e-6
_FLOOR = torch.finfo(torch.float32).tiny


def _finite(t: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(t.float(), nan=0.0, posinf=0.0, neginf=0.0)


def normalize(heat: torch.Tensor, signed: torch.Tensor | None = None) -> tuple[torch.Tensor, bool]:
    """Scale a non-negative map to [0, 1] by its maximum; a blank (or broken) map stays zeros, never NaN.

    ``signed``: the signed map this is the positive part of (default: none); a peak not above ``1e-6`` times
    its largest magnitude is float rounding, and the map is blank.
    """
    heat = _finite(heat).clamp(min=0)
    peak = float(heat.max()) if heat.numel() else 0.0
    scale = float(_finite(signed).abs().max()) if signed is not None and signed.numel() else 0.0
    if not peak > max(_FLOOR, _NOISE * scale):
        return torch.zeros_like(heat), True
    return heat / peak, False


def _to_input_size(heat: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if tuple(heat.shape) == tuple(size):
        return heat
    return F.interpolate(heat[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]


def heatmap_from(positive: torch.Tensor, signed: torch.Tensor, size: torch.Size | tuple[int, int]
                 ) -> tuple[torch.Tensor, bool]:
    """The map ``explain`` shows: ``positive`` upsampled to ``size`` and scaled to [0, 1], and whether it is blank
    (``signed``: the map it is the positive part of). Audits rebuild it from a stored raw map."""
    return normalize(_to_input_size(positive, torch.Size(size)), signed=signed)


def _explain_one(model: nn.Module, x: torch.Tensor, method: str, target_layer: str | nn.Module | None,
                 target_class: int | None, target_channel: int | None, progress: Progress | None,
                 params: dict[str, Any]) -> Explanation:
    spec = get_method(method)
    resolved = spec.resolve_params(params)
    started = time.perf_counter()
    if target_channel is not None:
        if not spec.feature_target:
            raise CamError(f"{spec.display} explains classes only; a feature-map target needs "
                           "saliency, guided backprop or deconvnet")
        if target_layer is None:
            raise CamError("a feature-map target needs a layer as well as a channel")
    layer_name, layer = None, None
    if spec.needs_layer or target_channel is not None:
        layer_name, layer = resolve_layer(model, target_layer if target_layer is not None else auto_layer(model, x))
    target = Target(model, x, None if target_class is None else int(target_class), layer_name, layer,
                    target_channel, progress)
    result: MapResult = spec.run(target, resolved)
    class_idx = None if target_channel is not None else result.class_idx
    score = prob = None
    if class_idx is not None and result.logits is not None:
        score = float(result.logits[0, class_idx])
        prob = float(result.logits.softmax(dim=1)[0, class_idx])
    heat, blank = heatmap_from(result.positive.detach(), result.raw.detach(), x.shape[-2:])
    notes = list(result.notes)
    if blank:
        what = f"class {class_idx}" if class_idx is not None else f"channel {target_channel}"
        where = f" at layer {layer_name!r}" if layer_name else ""
        notes.append(f"no positive evidence for {what}{where}: the map is blank")
    elif spec.needs_layer and result.raw.dim() == 2 and result.raw.numel() == 1:
        notes.append(f"layer {layer_name!r} is 1×1 at this input size: the map is uniform and says nothing about "
                     "where; pick an earlier layer or a larger image")
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    elapsed = (time.perf_counter() - started) * 1000.0
    return Explanation(
        heatmap=heat.cpu().numpy().astype("float32", copy=False),
        raw=result.raw.detach().cpu().numpy(),
        method=spec.name, class_idx=class_idx, score=score, prob=prob, layer=layer_name,
        elapsed_ms=elapsed,
        gradient=None if result.gradient is None else result.gradient.detach().cpu().numpy(),
        params=resolved, extras=result.extras, notes=notes, channel=target_channel)


def explain(model: nn.Module, x: torch.Tensor, method: str, target_layer: str | nn.Module | None = None,
            target_class: int | Sequence[int] | None = None, *, target_channel: int | None = None,
            progress: Progress | None = None, **params: Any) -> Explanation | list[Explanation]:
    """Explain ``model``'s decision on the preprocessed image(s) ``x`` with ``method``.

    ``x``: 1×3×H×W (or 3×H×W) → one ``Explanation``; N×3×H×W → a list, one per image.
    ``target_layer``: dotted name or module; ``None`` picks the last spatial layer (reported in ``.layer``).
    ``target_class``: class index (one per image for a batch); ``None`` explains the top class.
    ``target_channel``: with ``target_layer``, project that feature map instead of a class (pixel methods).
    ``progress(done, total)`` is called as chunked work (occlusion, SmoothGrad) advances.
    The model is borrowed: hooks, train/eval flags and ``requires_grad`` are left as they were, and no
    parameter ``.grad`` is written.
    """
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        raise CamError("x must be a preprocessed image tensor of shape 3×H×W or N×3×H×W")
    single = x.dim() == 3 or x.shape[0] == 1
    batch = x[None] if x.dim() == 3 else x
    classes = list(target_class) if isinstance(target_class, Sequence) else [target_class] * batch.shape[0]
    if len(classes) != batch.shape[0]:
        raise CamError(f"{len(classes)} target classes for {batch.shape[0]} images")
    batch = batch.to(model_device(model))
    with eval_mode(model), torch.inference_mode(False):
        results = [_explain_one(model, batch[i:i + 1], method, target_layer, classes[i], target_channel,
                                progress, params) for i in range(batch.shape[0])]
    return results[0] if single else results
