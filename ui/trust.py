""""Can I trust this map?": deletion / insertion judged against random maps, and the sanity check.

Page-independent pieces: the engine calls (on ``ui.engine.cached``: keyed by model, device, image digest,
the map and the settings), the Plotly figures, the low-confidence banner, and ``section`` which draws it all
under a map. The curves come by themselves when they are expected to be quick (``AUTO_SECONDS``, from
``cam_core.metrics.model_runs`` and the model's measured speed), on a click otherwise; the sanity check on a
click. What was asked for is remembered under the map's own key (``map_key``), so a result is never shown
next to another map. Alpha and colormap are not in any key: moving them redraws and never recomputes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cam_core import evaluate, sanity_check
from cam_core.batching import estimate_seconds
from cam_core.metrics import SETTINGS, model_runs
from cam_core.metrics.baseline import shared_baseline
from cam_core.metrics.ranking import pixel_note, rank
from cam_core.registry import METHODS
from cam_core.render import colorize
from cam_core.sanity import CHANGED_BELOW, find_stages, spearman
from cam_core.sanity.similarity import centred_ranks

from .engine import cached, peek
from .widgets import literal, show_error

#: Below this top-class probability, or with the top two closer than ``UNSURE_GAP``, the prediction is unsure.
UNSURE_TOP = 0.20
UNSURE_GAP = 0.05
#: Session-state entry holding what was asked for the map on screen: ``{"key": map_key, "metrics": the curve
#: steps asked with (``None``: not asked), "sanity": bool}``.
_ASKED = "trust_asked"
_STEPS_KEY = "w_trust_steps"
_STEPS_CHOSEN = "trust_steps"  # outlives the widget (Streamlit drops a widget's state on pages without it)
METRICS = ("deletion", "insertion")

#: Width, in CSS pixels, of each sanity-check thumbnail (a row of 11 fits the wide layout).
THUMB_SIDE = 76
_COLOURS = {"deletion": "#d62728", "insertion": "#2ca02c"}


def map_key(ctx: Any, exp: Any) -> tuple[Any, ...]:
    """What identifies the map on screen: model, device, image digest, method, layer, class, parameters."""
    params = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (exp.params or {}).items()))
    return (ctx.model_key, str(ctx.device), ctx.image.digest, exp.method, exp.layer, exp.class_idx, params)


def unsure_message(preds: Sequence[Any], plain: bool = False) -> str | None:
    """One line when the prediction is unsure (top class under 20 %, or the top two within 5 points); labels
    escaped for Markdown unless ``plain`` (e.g. for the HTML report, which escapes its own)."""
    if not preds:
        return None
    name = (lambda t: str(t)) if plain else literal
    top = preds[0]
    if float(top.prob) < UNSURE_TOP:
        return (f"The model is unsure: top class {name(top.label)} at {float(top.prob):.0%}; maps of an "
                "unsure prediction are hard to read.")
    if len(preds) > 1 and float(top.prob) - float(preds[1].prob) < UNSURE_GAP:
        return (f"The model is unsure: top classes {name(top.label)} ({float(top.prob):.0%}) and "
                f"{name(preds[1].label)} "
                f"({float(preds[1].prob):.0%}) are within 5 points; maps of an unsure prediction are hard to read.")
    return None


# --- cached engine calls -------------------------------------------------------------------------------------

#: Random maps each deletion/insertion score is judged against in the app. The CLI's 16 cost 16 × 56 extra
#: images at 28 steps (896: two minutes on a busy 2-core CPU at 0.15 s an image, measured); 8 halve that and
#: keep the rule's meaning ("better" = beats all 8: 1 chance in 9 for a random map). Paid once per image and
#: class: every other method's map on it reuses them.
APP_BASELINE = 8
#: Curves expected to take at most this long are computed as soon as the map is shown (a progress bar with
#: the expected time beyond ``QUICK_SECONDS``); longer ones wait for a click. Tests may lower it.
AUTO_SECONDS = 15.0
QUICK_SECONDS = 1.0


def _baseline() -> Any:
    return shared_baseline(APP_BASELINE)


def _run_evaluate(model: Any, x: Any, exp: Any, steps: int, baseline: int, progress: Any = None) -> dict[str, Any]:
    return evaluate(model, x, exp, METRICS, exp.class_idx, progress=progress, steps=steps,
                    baseline=_baseline() if baseline else None)


def metric_runs(ctx: Any, exp: Any, steps: int) -> tuple[int, int]:
    """Images the curves of ``exp``'s map would run now: (its own, the random maps' — 0 once kept)."""
    return model_runs(ctx.backbone.model, ctx.x, METRICS, exp.class_idx, baseline=_baseline(), steps=int(steps))


def curve_seconds(ctx: Any, runs: int) -> float | None:
    """Seconds ``runs`` images of deletion/insertion curves should take (``None`` before the model was timed)."""
    return estimate_seconds(ctx.backbone.model, ctx.x, runs) if runs else 0.0


def _evaluate_inputs(ctx: Any, exp: Any, steps: int, baseline: bool) -> dict[str, Any]:
    return {"_model": ctx.backbone.model, "_x": ctx.x, "exp": exp, "steps": int(steps),
            "baseline": APP_BASELINE if baseline else 0}


def evaluate_cached(ctx: Any, exp: Any, steps: int, baseline: bool = True) -> dict[str, Any]:
    """Deletion and insertion of ``exp``'s map (``{name: MetricResult}``), with verdicts against
    ``APP_BASELINE`` random maps when ``baseline``; computed once per map, steps and baseline (a progress
    bar with the expected time when it should take over ``QUICK_SECONDS``)."""
    own, extra = metric_runs(ctx, exp, steps)
    runs = own + (extra if baseline else 0)
    seconds = curve_seconds(ctx, runs)
    bar = None if seconds is not None and seconds <= QUICK_SECONDS else "Deletion and insertion"
    return cached(ctx, "evaluate", _run_evaluate, bar=bar, expected=lambda: runs_text(runs, seconds), entries=32,
                  **_evaluate_inputs(ctx, exp, steps, baseline))


def kept_metrics(ctx: Any, exp: Any, steps: int, baseline: bool = True) -> dict[str, Any] | None:
    """The curves already computed for ``exp``'s map, or ``None``; never computes."""
    return peek(ctx, "evaluate", **_evaluate_inputs(ctx, exp, steps, baseline))


def tier(total: float | None, alone: float | None, asked: bool, auto: float) -> str:
    """What to compute now from the expected seconds (``None``: the model's speed not measured yet):
    ``"full"`` — the curves with their verdict (asked for, or ``total`` within ``auto``); ``"own"`` — the
    map's own curves (``alone`` within ``auto``, or unknown: they measure the speed), the verdict later;
    ``"wait"`` — nothing until a click."""
    if asked or (total is not None and total <= auto):
        return "full"
    if auto > 0 and (alone is None or alone <= auto):
        return "own"
    return "wait"


def metrics_now(ctx: Any, exp: Any, steps: int, asked: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    """The curves to show for ``exp``'s map and, when they lack their verdict, what a click would cost
    (``tier`` decides; the verdict follows at once when the curves' own run showed it is quick too)."""
    full = kept_metrics(ctx, exp, steps)
    if full is not None:
        return full, None
    own, extra = metric_runs(ctx, exp, steps)
    chosen = tier(curve_seconds(ctx, own + extra), curve_seconds(ctx, own), asked, AUTO_SECONDS)
    if chosen == "full":
        return evaluate_cached(ctx, exp, steps), None
    plain = kept_metrics(ctx, exp, steps, baseline=False)
    if plain is None and chosen == "own":
        plain = evaluate_cached(ctx, exp, steps, baseline=False)  # also times the model for the estimate
        if tier(curve_seconds(ctx, own + extra), 0.0, False, AUTO_SECONDS) == "full":
            return evaluate_cached(ctx, exp, steps), None
    return plain, runs_text(own + extra, curve_seconds(ctx, own + extra))


def _run_sanity(model: Any, x: Any, exp: Any, categories: Any, progress: Any = None) -> Any:
    return sanity_check(model, x, exp.method, exp.class_idx, target_layer=exp.layer, progress=progress,
                        categories=categories, **(exp.params or {}))


def sanity_cached(ctx: Any, exp: Any) -> Any:
    """``cam_core.sanity_check`` (cascading, seed 0) of ``exp``'s method, layer, class and parameters; cached."""
    return cached(ctx, "sanity", _run_sanity, bar="Sanity check", expected=lambda: sanity_estimate(ctx, exp),
                  entries=16, _model=ctx.backbone.model, _x=ctx.x, exp=exp, _categories=ctx.backbone.categories)


def _stage_count(ctx: Any) -> int:

    return cached(ctx, "sanity_stages", lambda model, x, shape: len(find_stages(model, x)[0]), image=False,
                  entries=16, _model=ctx.backbone.model, _x=ctx.x, shape=tuple(ctx.x.shape))


# --- time estimates -----------------------------------------------------------------------------------------

def _about(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return "under a second" if seconds < 1 else f"about {seconds:,.0f} s"


def runs_text(runs: int, seconds: float | None) -> str:
    """"505 model runs, about 12 s" (no time before this process has measured the model on this device)."""
    about = _about(seconds)
    return f"{runs} model runs" + (f", {about}" if about else "")


def metrics_estimate(ctx: Any, exp: Any, steps: int) -> str:
    """What the curves of ``exp``'s map with their verdict would cost now (random maps included until kept)."""
    own, extra = metric_runs(ctx, exp, steps)
    return runs_text(own + extra, curve_seconds(ctx, own + extra))


def sanity_estimate(ctx: Any, exp: Any) -> str:
    """"12 maps, at most about 8 s": the stages found in the model plus the original and a random class."""
    maps = _stage_count(ctx) + 2
    about = _about(exp.elapsed_ms / 1000.0 * maps if exp.elapsed_ms else None)
    return f"{maps} maps" + (f", at most {about}" if about else "")  # the first map's time includes warm-up


# --- figures ------------------------------------------------------------------------------------------------

def curves_figure(results: Mapping[str, Any]) -> go.Figure:
    """Deletion and insertion curves in one figure: class probability against the fraction of pixels changed."""
    fig = go.Figure()
    x_label, y_label = "fraction of pixels", "class probability"
    for name, r in results.items():
        if r.curve is None:
            continue
        x_label, y_label = r.curve.x_label, r.curve.y_label
        fig.add_trace(go.Scatter(
            x=np.asarray(r.curve.x), y=np.asarray(r.curve.y), mode="lines+markers", name=f"{name} (AUC {r.score:.3f})",
            line=dict(color=_COLOURS.get(name)), fill="tozeroy", opacity=0.8,
            hovertemplate=f"{name}: %{{x:.0%}} → %{{y:.3f}}<extra></extra>"))
    fig.update_layout(height=320, margin=dict(l=8, r=8, t=8, b=8), legend=dict(orientation="h", y=1.12),
                      xaxis=dict(title=x_label, tickformat=".0%", range=[0, 1]), yaxis=dict(title=y_label))
    return fig


def sanity_figure(result: Any) -> go.Figure:
    """Spearman ρ of each stage's map with the original map, stages top-down; the "changed" line dashed."""
    names = ["original"] + [s.stage for s in result.stages]
    rhos = [1.0] + [None if s.rho != s.rho else float(s.rho) for s in result.stages]
    fig = go.Figure(go.Scatter(x=names, y=rhos, mode="lines+markers", name="Spearman ρ",
                               hovertemplate="%{x}: ρ = %{y:.2f}<extra></extra>"))
    fig.add_hline(y=CHANGED_BELOW, line_dash="dash", line_color="#888",
                  annotation_text=f"changed below ρ = {CHANGED_BELOW}", annotation_position="bottom right")
    fig.update_layout(height=300, margin=dict(l=8, r=8, t=8, b=8), yaxis=dict(title="Spearman ρ", range=[-1, 1.05]),
                      xaxis=dict(title="randomized down to (cascading)"))
    return fig


def sanity_thumbnails(result: Any, cmap: str, photo_size: tuple[int, int],
                      side: int = 2 * THUMB_SIDE) -> tuple[list[np.ndarray], list[str]]:
    """The original map, then the map after each stage was randomized, coloured with ``cam_core.render`` and
    resized to the photo's aspect ratio (``photo_size`` = width, height), ``side`` pixels on the long side."""

    w, h = photo_size
    scale = side / max(w, h, 1)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def small(heat: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(colorize(heat, cmap)).resize(size, Image.Resampling.BILINEAR))

    images = [small(result.original)] + [small(s.heatmap) for s in result.stages]
    captions = ["original"] + [f"{s.stage} (ρ={'—' if s.rho != s.rho else f'{s.rho:.2f}'})" for s in result.stages]
    return images, captions


#: How each sanity-check outcome is drawn: the Streamlit call's name and its icon.
OUTCOME_STYLE = {"passed": ("success", ":material/check_circle:"), "warning": ("warning", ":material/warning:"),
                 "failed": ("error", ":material/cancel:")}


def sanity_banner(result: Any) -> None:
    """The outcome in its colour (passed: green, warning: amber, failed: red) with its one-sentence reason."""
    kind, icon = OUTCOME_STYLE[result.outcome]
    getattr(st, kind)(f"Sanity check {result.outcome}: {literal(result.reason, limit=600)}.", icon=icon)


# --- the section --------------------------------------------------------------------------------------------

def _default_steps() -> int:
    return int(SETTINGS["steps"].default)


def _steps_range() -> tuple[int, int]:
    return int(SETTINGS["steps"].min), int(SETTINGS["steps"].max)


def _asked(key: tuple[Any, ...]) -> dict[str, Any]:
    """What was asked for this map; anything asked for another map is forgotten."""
    asked = st.session_state.get(_ASKED)
    if not asked or asked.get("key") != key:
        asked = {"key": key, "metrics": None, "sanity": False}
        st.session_state[_ASKED] = asked
    return asked


def _ask(key: tuple[Any, ...], what: str) -> None:
    """Button callback: remember that ``what`` ("metrics" or "sanity") was asked for the map ``key``; the
    curves remember the steps they were asked with (read here, after the widgets took their new values)."""
    _asked(key)[what] = int(st.session_state.get(_STEPS_KEY, _default_steps())) if what == "metrics" else True


#: How each standing against the random maps is marked: colour and icon.
STANDING_STYLE = {"better": ("green", ":material/check_circle:"), "unclear": ("orange", ":material/help:"),
                  "no better": ("red", ":material/cancel:")}


def show_metrics(metrics: Mapping[str, Any], key: str = "trust_curves") -> None:
    """The curves, then each score's verdict as a sentence (marked by its standing) and its notes."""
    st.plotly_chart(curves_figure(metrics), width="stretch", key=key, config={"displaylogo": False})
    for r in metrics.values():
        colour, icon = STANDING_STYLE.get(r.standing or "", ("gray", ":material/remove:"))
        st.markdown(f":{colour}[{icon}] {r.sentence()}", help=r.explanation)
        for note in r.notes:
            st.info(note, icon=":material/info:")


def section(ctx: Any, exp: Any, cmap: str) -> tuple[dict[str, Any] | None, Any | None]:
    """Draw "Can I trust this map?" for ``exp``; return what it shows (metrics, sanity) for the report."""
    key = map_key(ctx, exp)
    asked = _asked(key)
    metrics = sanity = None
    box = st.container(key="trust_section")  # open under the map: the verdict is the first thing read
    with box:
        st.markdown("#### Can I trust this map?")
        st.caption("Do the pixels the map points at matter to the model (deletion and insertion, judged "
                   f"against {APP_BASELINE} random maps), and does the map depend on the model at all (sanity "
                   "check, on request)?")
        left, right = st.columns(2, gap="large")
        with left:
            st.markdown("**Deletion and insertion**")
            lo, hi = _steps_range()  # the metrics settings' range, their one home
            steps = int(st.number_input("Curve steps", min_value=lo, max_value=hi, value=_default_steps(), step=1,
                                        key=_STEPS_KEY, help="Pixels are changed in this many equal steps; "
                                        "fewer steps are faster, more give a smoother curve"))
            st.session_state[_STEPS_CHOSEN] = steps  # Compare scores with the same steps
            cost = None
            try:
                metrics, cost = metrics_now(ctx, exp, steps, asked=asked["metrics"] == steps)
            except Exception as exc:
                show_error(exc, context="Deletion and insertion")
                asked["metrics"] = None
            if metrics:
                show_metrics(metrics)
            if cost:  # the verdict, or the curves themselves, wait for a click
                st.button("Compare with random maps" if metrics else "Compute deletion and insertion",
                          key="trust_metrics", icon=":material/insights:", on_click=_ask, args=(key, "metrics"),
                          help=f"Expected: {cost}")
                st.caption(f"Expected: {cost}." + (" The random maps are scored once for this image and class; "
                                                    "every other map of it reuses them." if metrics else ""))
        with right:
            st.markdown("**Sanity check** (Adebayo et al., 2018)")
            st.caption("The model's layers are randomized top-down, on a copy; a trustworthy map changes.")
            st.button("Run sanity check", key="trust_sanity", icon=":material/shuffle:", on_click=_ask,
                      args=(key, "sanity"), help=f"Expected: {sanity_estimate(ctx, exp)}")
            if not asked["sanity"]:
                st.caption(f"Expected: {sanity_estimate(ctx, exp)}.")
            else:
                try:
                    sanity = sanity_cached(ctx, exp)
                except Exception as exc:
                    show_error(exc, context="Sanity check")
                    asked["sanity"] = False
                if sanity is not None:
                    sanity_banner(sanity)
                    if sanity.random_class_name and sanity.random_class_rho == sanity.random_class_rho:
                        st.caption(f"Class check: the map for {literal(sanity.random_class_name)} (a class drawn "
                                   f"at random) against this one, ρ = {sanity.random_class_rho:.2f}; alike from "
                                   f"ρ = {CHANGED_BELOW}.")
                    st.plotly_chart(sanity_figure(sanity), width="stretch", key="trust_sanity_plot",
                                    config={"displaylogo": False})
        if sanity is not None:
            images, captions = sanity_thumbnails(sanity, cmap, ctx.image.image.size)
            st.image(images, caption=captions, width=THUMB_SIDE)
    return metrics, sanity


# --- Compare: every method's scores, ranked, and how much the maps agree -------------------------------------

_COMPARE_ASKED = "trust_compare_asked"


def agreement(heatmaps: Sequence[np.ndarray]) -> float | None:
    """Mean Spearman ρ over every pair of maps (|values| ranked, ties averaged); ``None`` under two maps.

    A pair with a blank map has no ranking and is left out; ``None`` when no pair is left.
    """

    ranked = [centred_ranks(h) for h in heatmaps]
    rhos = [spearman(ranked[i], ranked[j]) for i in range(len(ranked)) for j in range(i + 1, len(ranked))
            if ranked[i][0].shape == ranked[j][0].shape]
    rhos = [r for r in rhos if r == r]
    return float(np.mean(rhos)) if rhos else None


def _compare_key(ctx: Any, maps: Sequence[tuple[str, Any]]) -> tuple[Any, ...]:
    return tuple(map_key(ctx, exp) for _, exp in maps)


def _ask_compare(key: tuple[Any, ...]) -> None:
    st.session_state[_COMPARE_ASKED] = key


def compare_scores(ctx: Any, results: Sequence[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deletion and insertion of every map of ``results`` ((method, Explanation or error)) with the curve
    steps last set on Inspect: ``{method: {name: MetricResult}}``. Each map's curves come as on Inspect
    (``metrics_now``: by themselves when quick); one button asks for every verdict still missing. The cache
    is Inspect's and the random maps are shared: only the first map of an image pays for them."""
    maps = [(m, e) for m, e in results if not isinstance(e, BaseException)]
    if not maps:
        return {}
    steps = int(st.session_state.get(_STEPS_CHOSEN, _default_steps()))
    key = (*_compare_key(ctx, maps), steps)
    asked = st.session_state.get(_COMPARE_ASKED) == key
    scores: dict[str, dict[str, Any]] = {}
    pending = 0
    for method, exp in maps:
        try:
            metrics, cost = metrics_now(ctx, exp, steps, asked=asked)
        except Exception as exc:
            show_error(exc, context=f"{method}: deletion and insertion")
            continue
        if metrics:
            scores[method] = metrics
        pending += cost is not None
    if pending:
        first = next(e for m, e in maps if m not in scores or scores[m]["deletion"].baseline is None)
        st.button("Compute deletion and insertion for every method", key="trust_compare",
                  icon=":material/insights:", on_click=_ask_compare, args=(key,),
                  help=f"Expected: about {pending} × {metrics_estimate(ctx, first, steps)} (the random maps once)")
        st.caption(f"{pending} of {len(maps)} maps wait for their verdict against random maps: "
                   f"the first of them costs {metrics_estimate(ctx, first, steps)}.")
    return scores


def _standing_mark(r: Any) -> str:
    colour, icon = STANDING_STYLE.get(r.standing or "", ("gray", ":material/remove:"))
    return f":{colour}[{icon}]"


def tile_verdict(metrics: Mapping[str, Any]) -> str:
    """One short line per tile: each curve's standing against the random maps (or its AUC until judged)."""
    parts = []
    for name, r in metrics.items():
        if r.baseline is None:
            parts.append(f"{name} AUC {r.score:.3f}")
        elif r.standing == "better":
            parts.append(f"{_standing_mark(r)} {name}: better than all {r.baseline.n} random maps")
        elif r.standing == "unclear":
            parts.append(f"{_standing_mark(r)} {name}: not clearly better than random")
        else:
            parts.append(f"{_standing_mark(r)} {name}: no better than random")
    return "  \n".join(parts)


def score_caption(metrics: Mapping[str, Any]) -> str:
    """"deletion AUC 0.281 (lower is better) · insertion AUC 0.433 (higher is better)"."""
    return " · ".join(f"{name} AUC {r.score:.3f} ({'higher' if r.higher_is_better else 'lower'} is better)"
                      for name, r in metrics.items())


RANK_RULE = ("Ranked by deletion and insertion against the random maps: 2 points per curve better than all of "
             "them, 1 for better than half; then by the margin over their mean, in their spreads. Margins within "
             "half a spread are a tie (docs/metrics.md).")


def compare_summary(results: Sequence[tuple[str, Any]], scores: Mapping[str, Mapping[str, Any]]) -> None:
    """The ranking (ties as ties, the rule stated, a note when pixel-level maps rank high) and the maps'
    agreement (mean pairwise Spearman ρ) — drawn at the top of Compare."""

    maps = [(m, e) for m, e in results if not isinstance(e, BaseException)]
    judged = {m: r for m, r in scores.items() if all(v.baseline is not None for v in r.values())}
    if len(judged) > 1:
        ranked = rank(judged)
        st.markdown("**Ranking** — " + ", ".join(f"{r.place} {METHODS[r.name].display}" for r in ranked))
        st.dataframe([{"place": r.place, "method": METHODS[r.name].display,
                       "deletion": r.standings["deletion"], "insertion": r.standings["insertion"],
                       "margin over random (spreads)": round(r.margin, 1)} for r in ranked],
                     hide_index=True, key="trust_compare_rank")
        st.caption(RANK_RULE + ("" if len(judged) == len(maps) else
                                f" {len(maps) - len(judged)} of the maps are not judged yet and not ranked."))
        note = pixel_note(ranked, {m: METHODS[m].kind for m in judged}, {m: METHODS[m].display for m in judged})
        if note:
            st.info(note, icon=":material/grain:")
    rho = agreement([e.heatmap for _, e in maps])
    if rho is not None:
        st.metric("Agreement between the maps", f"ρ = {rho:.2f}",
                  help="Spearman rank correlation of the heat maps, mean over every pair of methods: 1 = the "
                       "same ranking of pixels, 0 = unrelated")
