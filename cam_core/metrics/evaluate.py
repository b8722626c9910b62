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
from .baseline import BaselineScores, as_baseline, verdict
from .result import MetricResult
from .settings import resolve_settings
from .specs import MetricSpec, get_metric


def evaluate(model: nn.Module, x: torch.Tensor, heatmap: Any, metrics: str | Sequence[str] = ("deletion", "insertion"),
             target_class: int | None = None, *, progress: Progress | None = None, baseline: Any = None,
             **settings: Any) -> dict[str, MetricResult]:
    """How faithful ``heatmap`` is to ``model``'s decision on ``x``: ``{metric name: MetricResult}``.

    ``x``: one preprocessed image, 1×C×H×W or C×H×W. ``heatmap``: an ``Explanation`` (its class is then the
    default target), its ``.heatmap``, or any H×W array or tensor at x's resolution; another shape, NaN or
    Inf raises ``CamError``. ``metrics``: names from ``METRICS`` (one name or several). ``target_class``:
    the class whose softmax probability is measured; ``None`` = the top class of the clean image.
    ``progress(done, total)`` follows the one batched model run. ``baseline``: a number N of seeded random
    smooth maps to score the same way (``True`` = 16; a ``Baseline`` to own the cache), once per model,
    image, class and settings — each result then has ``baseline`` and ``verdict`` (``baseline.py``).
    ``settings``: see ``SETTINGS`` (unknown names are refused). The model is borrowed: eval mode while it
    runs, no hooks, no gradients.
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
    base = as_baseline(baseline)
    x = one_image(x).to(model_device(model))
    heat = heatmap_array(heatmap, x)

    if base is None:
        return _score(model, x, [heat], specs, target_class, resolved, progress)[0]

    keys = {spec.name: base.key(model, x, target_class, spec.name, resolved, spec.settings) for spec in specs}
    known = {name: base.get(model, key) for name, key in keys.items()}
    missing = [spec for spec in specs if known[spec.name] is None]
    maps = base.maps(*heat.shape) if missing else []
    scored = _score(model, x, [heat] + maps, specs, target_class, resolved, progress,
                    [s.name for s in missing])
    results = scored[0]
    class_idx = next((r.class_idx for r in results.values() if r.class_idx is not None), None)
    if missing:
        base.runs += 1
    for spec in missing:
        scores = BaselineScores(tuple(float(r[spec.name].score) for r in scored[1:]), base.seed)
        known[spec.name] = scores
        base.put(model, keys[spec.name], scores)
        if target_class is None and class_idx is not None:  # the top class, also found by its index
            base.put(model, base.key(model, x, class_idx, spec.name, resolved, spec.settings), scores)
    for name, r in results.items():
        r.baseline = known[name]
        r.verdict = verdict(r.score, r.baseline, r.higher_is_better)
    return results


def _score(model: nn.Module, x: torch.Tensor, heats: list[np.ndarray], specs: list[MetricSpec],
           target_class: int | None, resolved: dict[str, Any], progress: Progress | None,
           later: Sequence[str] | None = None) -> list[dict[str, MetricResult]]:
    """Every map in ``heats`` scored with ``specs`` (maps after the first: only the metrics in ``later``),
    all perturbed inputs in one batched forward after one clean image."""
    jobs: list[tuple[int, list[MetricSpec]]] = [(0, specs)]
    jobs += [(i, [s for s in specs if s.name in (later or ())]) for i in range(1, len(heats))]
    plans: list[tuple[int, Any]] = []
    for i, wanted_specs in jobs:
        ctx = Context(x=x, heat=heats[i], settings=resolved)
        families: dict[str, tuple[Any, set[str]]] = {}
        for spec in wanted_specs:
            families.setdefault(spec.family.__name__, (spec.planner, set()))[1].add(spec.name)
        plans += [(i, planner(ctx, wanted)) for planner, wanted in families.values()]

    class_idx, clean, probs = None, None, np.zeros(0)
    if any(spec.needs_model for spec in specs):
        chain = Chain([Stack(x), *[v for _, p in plans for v in p.variants]])  # item 0: the clean image
        with eval_mode(model):
            logits = batched_forward(model, chain, chunk=resolved["chunk"], progress=progress)
        target = ClassTarget(None if target_class is None else int(target_class)).resolved(logits[:1])
        class_idx = target.index
        all_probs = target.prob(logits).double().cpu().numpy()
        clean, probs = float(all_probs[0]), all_probs[1:]

    results: list[dict[str, MetricResult]] = [{} for _ in heats]
    offset = 0
    for i, p in plans:
        results[i].update(p.finish(Measured(class_idx, clean, probs[offset:offset + p.count])))
        offset += p.count
    return [{spec.name: out[spec.name] for spec in wanted} for (_, wanted), out in zip(jobs, results)]


def model_runs(model: nn.Module, x: torch.Tensor, metrics: str | Sequence[str] = ("deletion", "insertion"),
               target_class: int | None = None, *, baseline: Any = None, **settings: Any) -> tuple[int, int]:
    """How many images ``evaluate`` with the same arguments would run now: ``(the map's own, the baseline's)``.

    The baseline's part is 0 when its scores are already kept; nothing is run (for time estimates)."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    specs = [get_metric(name) for name in names]
    if not any(spec.needs_model for spec in specs):
        return 0, 0
    resolved = resolve_settings(settings)
    x = one_image(x)
    ctx = Context(x=x, heat=np.zeros(tuple(x.shape[-2:])), settings=resolved)

    def count(wanted: list[MetricSpec]) -> int:
        families: dict[str, tuple[Any, set[str]]] = {}
        for spec in wanted:
            families.setdefault(spec.family.__name__, (spec.planner, set()))[1].add(spec.name)
        return sum(planner(ctx, chosen).count for planner, chosen in families.values())

    own = 1 + count(specs)
    base = as_baseline(baseline)
    if base is None:
        return own, 0
    missing = [spec for spec in specs
               if base.get(model, base.key(model, x, target_class, spec.name, resolved, spec.settings)) is None]
    return own, base.n * count(missing) if missing else 0
