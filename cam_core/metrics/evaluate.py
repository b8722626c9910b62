"""``evaluate``: score one heat map on one image with any registered metrics, in one batched model run."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..batching import Progress, Stack, batched_forward
from ..device import model_device
from ..errors import CamError
from ..explanation import Explanation
from ..hygiene import eval_mode
from ..targets import ClassTarget
from .common import Chain, Context, Measured, heatmap_array, one_image
from .result import MetricResult
from .settings import resolve_settings
from .specs import get_metric


def evaluate(model: nn.Module, x: torch.Tensor, heatmap: Any, metrics: str | Sequence[str] = ("deletion", "insertion"),
             target_class: int | None = None, *, progress: Progress | None = None,
             **settings: Any) -> dict[str, MetricResult]:
    """How faithful ``heatmap`` is to ``model``'s decision on ``x``: ``{metric name: MetricResult}``.

    ``x``: one preprocessed image, 1×C×H×W or C×H×W. ``heatmap``: an ``Explanation`` (its class is then the
    default target), its ``.heatmap``, or any H×W array or tensor at x's resolution; another shape, NaN or
    Inf raises ``CamError``. ``metrics``: names from ``METRICS`` (one name or several). ``target_class``:
    the class whose softmax probability is measured; ``None`` = the top class of the clean image.
    ``progress(done, total)`` follows the one batched model run. ``settings``: see ``SETTINGS`` (unknown
    names are refused). The model is borrowed: eval mode while it runs, no hooks, no gradients.
    """
    if isinstance(heatmap, Explanation):
        if target_class is None and heatmap.channel is None:
            target_class = heatmap.class_idx
        heatmap = heatmap.heatmap
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise CamError("no metric asked for; choose from deletion, insertion, road, average_drop, …")
    specs = [get_metric(name) for name in names]
    resolved = resolve_settings(settings)
    x = one_image(x).to(model_device(model))
    ctx = Context(x=x, heat=heatmap_array(heatmap, x), settings=resolved)

    families: dict[str, tuple[Any, set[str]]] = {}
    for spec in specs:
        families.setdefault(spec.family.__name__, (spec.planner, set()))[1].add(spec.name)
    plans = [planner(ctx, wanted) for planner, wanted in families.values()]

    class_idx, clean, probs = None, None, np.zeros(0)
    if any(spec.needs_model for spec in specs):
        chain = Chain([Stack(x), *[v for p in plans for v in p.variants]])  # item 0: the clean image
        with eval_mode(model):
            logits = batched_forward(model, chain, chunk=resolved["chunk"], progress=progress)
        target = ClassTarget(None if target_class is None else int(target_class)).resolved(logits[:1])
        class_idx = target.index
        all_probs = target.prob(logits).double().cpu().numpy()
        clean, probs = float(all_probs[0]), all_probs[1:]

    results: dict[str, MetricResult] = {}
    offset = 0
    for p in plans:
        results.update(p.finish(Measured(class_idx, clean, probs[offset:offset + p.count])))
        offset += p.count
    return {spec.name: results[spec.name] for spec in specs}
