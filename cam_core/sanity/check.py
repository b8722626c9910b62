"""The model-parameter randomization check (Adebayo et al., NeurIPS 2018): does the map depend on the model?

A map that explains a model must change when the model's weights are replaced by random ones. On a copy of
the model, the stages are randomized top-down — cumulatively (``cascading``: the head, then the head and the
last block, …) or one at a time (``independent``) — and after each the map for the same class is recomputed
with ``explain`` and compared with the original: Spearman's ρ of |map| and SSIM. Also compared: the map of
the target class with the map of a (seeded) random other class — a class-blind method draws the same map.

Three outcomes (``SanityResult.outcome``), each with one plain sentence (``reason``):
``"failed"`` — the map survived randomizing every stage (cascading) or any single stage (independent);
``"warning"`` — it changed, but only once randomization reached deeper stages ("late"), or the map of a random
other class looks like it (ρ ≥ 0.5: class-insensitive); ``"passed"`` — neither: a class-insensitive map can
never pass.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CamError
from ..explain import explain
from ..explanation import Explanation
from ..hygiene import private_copy
from ..layers import auto_layer
from ..registry import get_method
from .similarity import centred_ranks, edge_map, spearman, ssim
from .stages import Stage, find_stages, named_stages, randomize, restore, stage_state

MODES = ("cascading", "independent")
OUTCOMES = ("passed", "warning", "failed")
CHANGED_BELOW = 0.5  # ρ below this: the map has changed (it no longer ranks the pixels alike)
BN_NOTE = ("randomized BatchNorm layers lose their trained running statistics too (mean 0, variance 1, "
           "weight 1, bias 0: a freshly built layer, the identity in eval mode)")


@dataclass
class StageResult:
    """The map after randomizing ``stage`` (and, cascading, every stage above it)."""

    stage: str
    parts: tuple[str, ...]
    rho: float  # Spearman ρ of |map| with the original map; NaN when this map is blank
    ssim: float
    edge_rho: float  # Spearman ρ with the input's edge map
    heatmap: np.ndarray  # [0, 1] at the input's size, for thumbnails
    blank: bool

    @property
    def changed(self) -> bool:
        """The map no longer looks like the original (a blank map counts as changed)."""
        return self.blank or not self.rho >= CHANGED_BELOW


@dataclass
class SanityResult:
    """Outcome of ``sanity_check``: per-stage similarity to the original map, the maps, and a verdict."""

    method: str
    layer: str | None
    class_idx: int
    mode: str
    seed: int
    original: np.ndarray  # the trained model's heatmap
    edge_rho: float  # the original map against the input's edge map
    stages: list[StageResult]
    random_class: int | None
    random_class_rho: float
    random_class_ssim: float
    random_class_heatmap: np.ndarray | None
    outcome: str  # "passed", "warning" or "failed" (OUTCOMES)
    reason: str  # one plain sentence saying why, classes by name
    verdict: str  # the model check in figures: passed/passed late/failed, ρ and the stage
    class_verdict: str  # the class check in figures
    elapsed_ms: float
    notes: list[str] = field(default_factory=list)
    class_name: str = ""  # the target class as a person reads it: 'tabby' (281), or class 281
    random_class_name: str = ""

    @property
    def passed(self) -> bool:
        """Only a clean pass: a warning (late, or class-insensitive) is not one."""
        return self.outcome == "passed"

    @property
    def class_insensitive(self) -> bool:
        """The map for a random other class looks like this one (ρ ≥ ``CHANGED_BELOW``)."""
        return self.random_class_rho >= CHANGED_BELOW

    @property
    def rhos(self) -> list[float]:
        return [s.rho for s in self.stages]

    def summary(self) -> str:
        """The outcome and its reason, then the figures, for a report or a CLI line."""
        return f"Sanity check {self.outcome}: {self.reason} ({self.verdict}; {self.class_verdict})."

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers and text (no maps), e.g. for JSON; NaN becomes None."""
        def num(v: float) -> float | None:
            return None if v != v else round(float(v), 4)

        return {
            "method": self.method, "layer": self.layer, "class": self.class_idx, "mode": self.mode,
            "seed": self.seed, "outcome": self.outcome, "passed": self.passed, "reason": self.reason,
            "verdict": self.verdict, "class_verdict": self.class_verdict, "class_name": self.class_name,
            "random_class_name": self.random_class_name,
            "edge_rho": num(self.edge_rho), "random_class": self.random_class,
            "random_class_rho": num(self.random_class_rho), "random_class_ssim": num(self.random_class_ssim),
            "stages": [{"stage": s.stage, "rho": num(s.rho), "ssim": num(s.ssim), "edge_rho": num(s.edge_rho),
                        "blank": s.blank} for s in self.stages],
            "elapsed_ms": round(self.elapsed_ms, 1), "notes": list(self.notes),
        }


def _fmt(rho: float) -> str:
    return "undefined" if rho != rho else f"{rho:.2f}"


def _verdict(stages: list[StageResult], mode: str) -> tuple[bool, str]:
    changed = [s for s in stages if s.changed]
    if mode == "cascading":
        if not changed:
            last = stages[-1]
            return False, (f"failed: the map stayed similar (ρ={_fmt(last.rho)}) with all layers randomized — "
                           "it shows the image, not the model")
        first = changed[0]
        how = (f"the map went blank after {first.stage!r}" if first.blank
               else f"ρ={_fmt(first.rho)} after {first.stage!r}")
        if first is stages[0]:
            return True, f"passed: the map changed as soon as the top layers were randomized ({how})"
        before = stages[stages.index(first) - 1]
        return True, (f"passed late: the map stayed similar while the top stages were randomized "
                      f"(ρ={_fmt(before.rho)} after {before.stage!r}) and changed only once randomization reached "
                      f"{first.stage!r} ({how})")
    if not changed:
        low = min(stages, key=lambda s: s.rho)
        return False, (f"failed: the map stayed similar whichever single stage was randomized (lowest "
                       f"ρ={_fmt(low.rho)}, {low.stage!r}) — it shows the image, not the model")
    names = ", ".join(repr(s.stage) for s in changed[:3]) + (" …" if len(changed) > 3 else "")
    return True, f"passed: randomizing {names} alone changed the map ({len(changed)} of {len(stages)} stages)"


def class_name(index: int | None, categories: Sequence[str] | None) -> str:
    """``'tabby' (281)`` when the label is known, else ``class 281``."""
    if index is None:
        return ""
    if categories is not None and 0 <= index < len(categories) and str(categories[index]).strip():
        return f"'{str(categories[index]).strip()}' ({index})"
    return f"class {index}"


def _class_verdict(target: str, other: str, rho: float) -> str:
    if not other:
        return "class check: the model has one class, nothing to compare"
    if rho != rho:
        return f"class check: the map for {other} is blank, unlike the map for {target}"
    if rho >= CHANGED_BELOW:
        return (f"class check: the maps for {target} and {other} (drawn at random) are alike (ρ={rho:.2f}) — "
                "the map barely depends on the class")
    return f"class check: the map for {other} (drawn at random) differs (ρ={rho:.2f}) — the map is class-specific"


def _model_outcome(stages: list[StageResult], mode: str) -> str:
    """``"passed"``, ``"late"`` (cascading: changed only below the top stage) or ``"failed"``."""
    changed = [s for s in stages if s.changed]
    if not changed:
        return "failed"
    return "late" if mode == "cascading" and changed[0] is not stages[0] else "passed"


def _outcome(model: str, stages: list[StageResult], mode: str, target: str, other: str,
             rho: float) -> tuple[str, str]:
    """The outcome and its one plain sentence (classes by name)."""
    insensitive = bool(other) and rho >= CHANGED_BELOW
    if model == "failed":
        whole = "every layer" if mode == "cascading" else "any one stage"
        return "failed", (f"the map hardly changed when {whole} of the model was replaced by random weights, so "
                          "it shows the image itself rather than what the model learned")
    alike = f"the map for {other} looks like the map for {target} (ρ={rho:.2f})"
    if model == "late":
        first = next(s for s in stages if s.changed)
        late = (f"the map stayed similar while the top layers were randomized and changed only when "
                f"randomization reached {first.stage!r}")
        if insensitive:
            return "warning", f"{late}, and {alike}, so it depends weakly on the model and barely on the class"
        return "warning", f"{late}, so it depends on the model's last layers only weakly"
    if insensitive:
        return "warning", (f"the map changes when the model's weights are randomized, but {alike}, so it barely "
                           "depends on the class asked for")
    tail = (f" and differs from the map for another class ({other})" if other else "")
    return "passed", (f"the map changed as soon as the model's weights were randomized{tail}, so it depends on "
                      f"what the model learned{' and on the class' if other else ''}")


def _copy(model: nn.Module) -> nn.Module:
    """A private copy in eval mode, its parameters not requiring gradients (none are needed)."""
    twin = private_copy(model)  # deepcopy, without hooks another session has on the shared model right now
    twin.eval()
    twin.requires_grad_(False)
    return twin


def sanity_check(model: nn.Module, x: torch.Tensor, method: str, target_class: int | None = None, *,
                 target_layer: str | nn.Module | None = None, mode: str = "cascading", seed: int = 0,
                 progress: Callable[[int, int], None] | None = None,
                 stages: Sequence[str | Sequence[str]] | None = None, categories: Sequence[str] | None = None,
                 **method_params: Any) -> SanityResult:
    """Randomize ``model``'s weights stage by stage (on a copy) and see whether ``method``'s map changes.

    ``x``: one preprocessed image (3×H×W or 1×3×H×W). ``target_class``: ``None`` is the trained model's top
    class; it stays fixed for every stage. ``mode``: ``"cascading"`` (top-down, cumulative) or
    ``"independent"`` (one stage at a time, the others trained). ``seed`` fixes the random weights (stage *i*
    gets the same weights in both modes) and the random class. ``stages``: dotted module names, top-down, to
    use instead of the ones found from the model. ``categories``: the class labels, so that the reason names
    classes as a person does. ``progress(done, total)`` after each map. Other keywords
    go to the method (``explain``); SmoothGrad's noise keeps its registry seed. ``model`` is never changed:
    all work happens on a ``copy.deepcopy``.
    """
    started = time.perf_counter()
    spec = get_method(method)  # an unknown method fails before any work
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise CamError(f"the sanity-check seed must be an integer from 0 to {2**32 - 1}, got {seed!r}")
    if mode not in MODES:
        raise CamError(f"unknown sanity-check mode {mode!r}; choose one of {', '.join(MODES)}")
    if not isinstance(x, torch.Tensor) or not (x.dim() == 3 or (x.dim() == 4 and x.shape[0] == 1)):
        raise CamError("the sanity check takes one preprocessed image tensor, 3×H×W or 1×3×H×W")
    x = x if x.dim() == 4 else x[None]
    device = next((t.device for t in (*model.parameters(), *model.buffers())), x.device)
    x = x.to(device)
    twin = _copy(model)
    layer = target_layer
    if isinstance(layer, nn.Module):  # the same module inside the copy, by name
        layer = next((n for n, m in model.named_modules() if m is layer), None)
        if layer is None:
            raise CamError("the target layer is not a module of this model")
    if layer is None and spec.needs_layer:
        layer = auto_layer(model, x)  # cached per model: the app has usually found it already
    plan, classes = find_stages(twin, x)
    if stages is not None:
        plan = named_stages(twin, stages)
    total = len(plan) + 2
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def run(cls: int | None) -> Explanation:
        return explain(twin, x, method, layer, cls, **method_params)

    original = run(target_class)
    if original.class_idx is None:
        raise CamError("the sanity check explains a class; this method gave none")
    if original.is_blank:
        raise CamError(f"the map for class {original.class_idx} is blank on the trained model: nothing to "
                       "compare; pick another class or layer")
    cls, layer = original.class_idx, original.layer if original.layer is not None else layer
    step()
    reference, edges = centred_ranks(original.heatmap), centred_ranks(edge_map(x))
    generator = np.random.default_rng(seed)
    other = None
    other_rho = other_ssim = float("nan")
    other_map = None
    if classes > 1:
        other = int(generator.integers(classes - 1))
        other += other >= cls  # any class but the target, uniformly
        other_map = run(other).heatmap
        other_rho, other_ssim = spearman(reference, other_map), ssim(original.heatmap, other_map)
    step()

    results: list[StageResult] = []
    for index, stage in enumerate(plan):
        saved = stage_state(twin, stage) if mode == "independent" else None
        randomize(twin, stage, seed * 1_000_003 + index)
        heat = run(cls).heatmap
        if saved is not None:
            restore(twin, saved)
        blank = not bool(np.any(heat > 0))
        results.append(StageResult(stage.name, stage.parts, spearman(reference, heat),
                                   ssim(original.heatmap, heat), spearman(edges, heat), heat, blank))
        step()

    _, verdict = _verdict(results, mode)
    target_name, other_name = class_name(cls, categories), class_name(other, categories)
    outcome, reason = _outcome(_model_outcome(results, mode), results, mode, target_name, other_name, other_rho)
    notes = [f"original map: {note}" for note in original.notes]
    notes += [BN_NOTE] if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in twin.modules()) else []
    notes.append(f"ρ below {CHANGED_BELOW} counts as changed; a blank map (no positive evidence left) counts as "
                 "changed, its ρ undefined")
    return SanityResult(
        method=original.method, layer=original.layer, class_idx=cls, mode=mode, seed=seed,
        original=original.heatmap, edge_rho=spearman(edges, reference), stages=results,
        random_class=other, random_class_rho=other_rho, random_class_ssim=other_ssim,
        random_class_heatmap=other_map, outcome=outcome, reason=reason, verdict=verdict,
        class_verdict=_class_verdict(target_name, other_name, other_rho),
        elapsed_ms=(time.perf_counter() - started) * 1000.0, notes=notes, class_name=target_name,
        random_class_name=other_name)
