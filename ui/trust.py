""""Can I trust this map?": faithfulness curves (deletion / insertion) and the sanity check, on demand.

Page-independent pieces: the cached engine calls (``st.cache_data`` keyed like ``ui.cache``: image digest +
model + device + method + layer + class + parameters, the unhashable model, image and map as ``_``-prefixed
arguments), the Plotly figures, the low-confidence banner, and ``section`` which draws it all under a map.

What the person asked for is remembered in ``st.session_state`` under the map's own key (``map_key``), so a
result is never shown next to another map: a new image, model, method, layer, class or parameter is a new
key and the old results simply stop being drawn. Alpha and colormap are not in the key: moving them redraws
from the cache and never recomputes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from .cache import ENGINE_CALLS
from .widgets import literal

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


def unsure_message(preds: Sequence[Any]) -> str | None:
    """One line when the prediction is unsure (top class under 20 %, or the top two within 5 points)."""
    if not preds:
        return None
    top = preds[0]
    if float(top.prob) < UNSURE_TOP:
        return (f"The model is unsure: top class {literal(top.label)} at {float(top.prob):.0%}; maps of an "
                "unsure prediction are hard to read.")
    if len(preds) > 1 and float(top.prob) - float(preds[1].prob) < UNSURE_GAP:
        return (f"The model is unsure: top classes {literal(top.label)} ({float(top.prob):.0%}) and "
                f"{literal(preds[1].label)} "
                f"({float(preds[1].prob):.0%}) are within 5 points; maps of an unsure prediction are hard to read.")
    return None


# --- cached engine calls -------------------------------------------------------------------------------------

@st.cache_data(max_entries=32, show_spinner=False)
def _evaluate(key: tuple[Any, ...], steps: int, _backbone: Any, _image: Any, _exp: Any,
              _expected: str = "") -> dict[str, Any]:
    from cam_core import evaluate

    ENGINE_CALLS["evaluate"] += 1
    x = _backbone.preprocess(_image)
    bar = st.progress(0.0, text="Deletion and insertion: starting…")

    def progress(done: int, total: int) -> None:
        if total > 0:
            bar.progress(min(done / total, 1.0), text=f"Deletion and insertion: {done} of {total} model runs "
                                                                f"(expected: {_expected})")

    try:
        return evaluate(_backbone.model, x, _exp, METRICS, _exp.class_idx, progress=progress, steps=steps)
    finally:
        bar.empty()


@st.cache_data(max_entries=16, show_spinner=False)
def _sanity(key: tuple[Any, ...], _backbone: Any, _image: Any, _exp: Any, _expected: str = "") -> Any:
    from cam_core import sanity_check

    ENGINE_CALLS["sanity"] += 1
    x = _backbone.preprocess(_image)
    bar = st.progress(0.0, text="Sanity check: starting…")

    def progress(done: int, total: int) -> None:
        if total > 0:
            bar.progress(min(done / total, 1.0), text=f"Sanity check: {done} of {total} maps (expected: {_expected})")

    try:
        return sanity_check(_backbone.model, x, _exp.method, _exp.class_idx, target_layer=_exp.layer,
                            progress=progress, categories=_backbone.categories, **(_exp.params or {}))
    finally:
        bar.empty()


@st.cache_data(max_entries=16, show_spinner=False)
def _stage_count(model_key: str, device: str, shape: tuple[int, ...], _backbone: Any, _x: Any) -> int:
    from cam_core.sanity import find_stages

    return len(find_stages(_backbone.model, _x)[0])


def evaluate_cached(ctx: Any, exp: Any, steps: int) -> dict[str, Any]:
    """Deletion and insertion of ``exp``'s map (``{name: MetricResult}``), computed once per map and ``steps``."""
    return _evaluate(map_key(ctx, exp), int(steps), ctx.backbone, ctx.image.image, exp,
                     metrics_estimate(ctx, steps))


def sanity_cached(ctx: Any, exp: Any) -> Any:
    """``cam_core.sanity_check`` (cascading, seed 0) of ``exp``'s method, layer, class and parameters; cached."""
    return _sanity(map_key(ctx, exp), ctx.backbone, ctx.image.image, exp, sanity_estimate(ctx, exp))


def clear() -> None:
    """Empty the trust caches (tests)."""
    for fn in (_evaluate, _sanity, _stage_count):
        fn.clear()


# --- time estimates -----------------------------------------------------------------------------------------

def _about(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return "under a second" if seconds < 1 else f"about {seconds:,.0f} s"


def metrics_estimate(ctx: Any, steps: int) -> str:
    """"57 model runs, about 12 s" (the time once this process has measured the model on this device)."""
    from cam_core.batching import estimate_seconds

    count = 1 + 2 * int(steps)
    x = ctx.backbone.preprocess(ctx.image.image)
    about = _about(estimate_seconds(ctx.backbone.model, x, count))
    return f"{count} model runs" + (f", {about}" if about else "")


def sanity_estimate(ctx: Any, exp: Any) -> str:
    """"12 maps, at most about 8 s": the stages found in the model plus the original and a random class."""
    x = ctx.backbone.preprocess(ctx.image.image)
    maps = _stage_count(ctx.model_key, str(ctx.device), tuple(x.shape), ctx.backbone, x) + 2
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
    from cam_core.sanity import CHANGED_BELOW

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
    from PIL import Image

    from cam_core.render import colorize

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
    from cam_core.metrics import SETTINGS

    return int(SETTINGS["steps"].default)


def _steps_range() -> tuple[int, int]:
    from cam_core.metrics import SETTINGS

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


def section(ctx: Any, exp: Any, cmap: str) -> tuple[dict[str, Any] | None, Any | None]:
    """Draw "Can I trust this map?" for ``exp``; return what it shows (metrics, sanity) for the report."""
    from .widgets import show_error

    key = map_key(ctx, exp)
    asked = _asked(key)
    metrics = sanity = None
    box = st.expander("Can I trust this map?", icon=":material/verified:")  # the browser keeps it open
    with box:
        st.caption("Two checks of the map on screen, run when you ask: do the pixels it points at matter to the "
                   "model (deletion / insertion), and does it depend on the model at all (sanity check)?")
        left, right = st.columns(2, gap="large")
        with left:
            st.markdown("**Deletion and insertion**")
            lo, hi = _steps_range()  # the metrics settings' range, their one home
            steps = int(st.number_input("Curve steps", min_value=lo, max_value=hi, value=_default_steps(), step=1,
                                        key=_STEPS_KEY, help="Pixels are changed in this many equal steps; "
                                        "fewer steps are faster, more give a smoother curve"))
            st.session_state[_STEPS_CHOSEN] = steps  # Compare scores with the same steps
            st.button("Compute deletion and insertion", key="trust_metrics", icon=":material/insights:",
                      on_click=_ask, args=(key, "metrics"), help=f"Expected: {metrics_estimate(ctx, steps)}")
            if asked["metrics"] != steps:  # not asked, or asked with other steps: those curves are not shown
                st.caption(f"Expected: {metrics_estimate(ctx, steps)}.")
            else:
                try:
                    metrics = evaluate_cached(ctx, exp, steps)
                except Exception as exc:
                    show_error(exc, context="Deletion and insertion")
                    asked["metrics"] = None
                if metrics:
                    st.plotly_chart(curves_figure(metrics), width="stretch", key="trust_curves",
                                    config={"displaylogo": False})
                    for name, r in metrics.items():
                        st.markdown(f"**{name.capitalize()} AUC: {r.score:.3f}** — {r.explanation}")
                        for note in r.notes:
                            st.info(note, icon=":material/info:")
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
                    from cam_core.sanity import CHANGED_BELOW

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
    from cam_core.sanity import spearman
    from cam_core.sanity.similarity import centred_ranks

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
    """One button computing deletion and insertion for every map of ``results`` ((method, Explanation or
    error)) with the curve steps last set on Inspect; returns ``{method: {name: MetricResult}}`` once asked
    for exactly these maps, else ``{}``.
    The cache is Inspect's: a map already scored there is not scored again."""
    from .widgets import show_error

    maps = [(m, e) for m, e in results if not isinstance(e, BaseException)]
    if not maps:
        return {}
    steps = int(st.session_state.get(_STEPS_CHOSEN, _default_steps()))
    key = (*_compare_key(ctx, maps), steps)
    st.button("Compute deletion and insertion for every method", key="trust_compare", icon=":material/insights:",
              on_click=_ask_compare, args=(key,),
              help=f"Expected: {len(maps)} × {metrics_estimate(ctx, steps)}")
    if st.session_state.get(_COMPARE_ASKED) != key:
        return {}
    scores: dict[str, dict[str, Any]] = {}
    for method, exp in maps:
        try:
            scores[method] = evaluate_cached(ctx, exp, steps)
        except Exception as exc:
            show_error(exc, context=f"{method}: deletion and insertion")
    return scores


def score_caption(metrics: Mapping[str, Any]) -> str:
    """"deletion AUC 0.281 (lower is better) · insertion AUC 0.433 (higher is better)"."""
    return " · ".join(f"{name} AUC {r.score:.3f} ({'higher' if r.higher_is_better else 'lower'} is better)"
                      for name, r in metrics.items())


def compare_summary(results: Sequence[tuple[str, Any]], scores: Mapping[str, Mapping[str, Any]]) -> None:
    """The methods ranked by deletion AUC (when scored), and the maps' agreement (mean pairwise Spearman ρ)."""
    from cam_core.registry import METHODS

    maps = [(m, e) for m, e in results if not isinstance(e, BaseException)]
    rho = agreement([e.heatmap for _, e in maps])
    if rho is not None:
        st.metric("Agreement between the maps", f"ρ = {rho:.2f}",
                  help="Spearman rank correlation of the heat maps, mean over every pair of methods: 1 = the "
                       "same ranking of pixels, 0 = unrelated")
    if scores:
        ranked = sorted(scores.items(), key=lambda kv: kv[1]["deletion"].score)
        st.markdown("**Ranked by deletion AUC** (lower is better: the probability falls fastest when the "
                    "map's top pixels are removed)")
        st.dataframe([{"rank": i, "method": METHODS[m].display, "deletion AUC": round(r["deletion"].score, 3),
                       "insertion AUC": round(r["insertion"].score, 3)} for i, (m, r) in enumerate(ranked, 1)],
                     hide_index=True, key="trust_compare_rank")
