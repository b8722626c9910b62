"""Compare: one image, several methods side by side on the same class and layer, ranked at the top by
deletion and insertion against random maps; each tile its verdict and the time the person waited for it.

Alpha, colormap and display scale are shared and live in an ``st.fragment``: moving them never recomputes
a map. Long methods run only once their "Run …" toggle is on (each shows its expected time first). Every tile
holds one overlay of the same size, so the grid has no holes; pixel-space gradients,
which only some methods have, sit in their own row of tiles below.
"""
from __future__ import annotations

import time
from typing import Any

import streamlit as st

from cam_core.registry import METHODS
from cam_core.render import gradient_image, overlay

from ui import cache, state, trust
from ui.display import checkerboard_note, display_controls, legend, map_cmap, results_slot, target_label
from ui.pickers import class_picker, layer_picker, not_offered_note, offered_methods, overlay_controls
from ui.sidebar import photo_page
from ui.widgets import predictions_or_error, show_error, stored_params

DEFAULT_METHODS = ["gradcam", "gradcam++", "guided_gradcam"]
PER_ROW = 4


def _run_toggles(ctx: Any, methods: list[str], layer: str | None) -> dict[str, str]:
    """A "Run … (about N s)" toggle per long method, off until switched on, one per line (a label is never
    cut); returns the long methods left off, each with its expected time. What was switched on is in the
    view (a link keeps it), whatever the label."""
    long = [m for m in methods if METHODS[m].long_running]
    if not long:
        return {}
    on = set(state.view().get("compare_run") or ())
    waiting: dict[str, str] = {}
    for method in long:
        spec = METHODS[method]
        try:
            expected = cache.expected_text(ctx, method, stored_params(method, ctx.backbone),
                                           layer if spec.needs_layer else None)
        except Exception:  # bad stored parameters: the run itself will say why
            expected = "time not estimated"
        chosen = st.toggle(f"Run {spec.display} ({expected})", value=method in on, key=f"w_compare_run_{method}",
                           help="A long method: many forward passes. Computed maps are kept; the class "
                                "of an occlusion map changes without a new run.")
        (on.add if chosen else on.discard)(method)
        if not chosen:
            waiting[method] = expected
    state.remember("compare_run", sorted(on) or None)
    return waiting


def _method_select(ctx: Any) -> list[str]:
    options = offered_methods(ctx)
    asked = list(state.view().get("compare_methods", DEFAULT_METHODS))
    stored = [m for m in asked if m in options]
    ss = st.session_state
    if "w_compare_methods" in ss:  # chosen on another model: keep only what can run on this one
        held = list(ss["w_compare_methods"])
        asked += [m for m in held if m not in asked]
        if any(m not in options for m in held):
            ss["w_compare_methods"] = [m for m in held if m in options]
    given = {} if "w_compare_methods" in ss else {"default": stored}  # the widget's own value wins
    chosen = st.multiselect("Methods", options, format_func=lambda m: METHODS[m].display, key="w_compare_methods",
                            help="Each uses the parameters last set on Inspect (else its defaults). Methods "
                                 "that cannot run on this model are not listed.", **given)
    not_offered_note("compare", asked, options, ctx, "left out", list(chosen))
    state.remember("compare_methods", list(chosen))
    return list(chosen)


def _tiles(items: list[tuple[str, Any]], per_row: int) -> None:
    """``(title, draw)`` pairs in rows of ``per_row`` equal columns (the last row padded, never stretched)."""
    for start in range(0, len(items), per_row):
        for col, (title, draw) in zip(st.columns(per_row), items[start:start + per_row]):
            with col:
                st.markdown(f"**{title}**")
                draw()


@st.fragment
def _grid(ctx: Any, results: list[tuple[str, Any]], scores: dict[str, Any],
          waiting: dict[str, str] | None = None, waited: dict[str, float] | None = None) -> None:
    """The overlays, redrawn alone when alpha, colormap or display scale moves (maps come from the cache)."""

    a, c, q, g = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    alpha, cmap = overlay_controls(a, c)
    pct, signed = display_controls(q, g)
    state.sync_query_params()
    draw_cmap = map_cmap(cmap, signed)
    thumb = cache.display_image(ctx.image)
    waiting = waiting or {}
    per_row = max(1, min(len(results) + len(waiting), PER_ROW))
    label = None

    def tile(method: str, exp: Any) -> Any:
        def draw() -> None:
            if isinstance(exp, BaseException):
                show_error(exp)
                return
            shown = cache.display_map_cached(exp, pct, signed)
            st.image(overlay(thumb, shown, alpha, draw_cmap), width="stretch")
            where = f" · layer {exp.layer}" if exp.layer else " · pixel space"
            st.caption(f"{_duration((waited or {}).get(method, exp.elapsed_ms / 1000))}{where}",
                       help="The time you waited for this map (computed maps are kept: a second look is instant)")
            if method in scores:
                st.markdown(trust.tile_verdict(scores[method]))
            for note in exp.notes:
                st.info(note, icon=":material/info:")
            checkerboard_note(None, exp)
        return draw

    def idle(expected: str) -> Any:
        return lambda: st.info(f"Long method: switch on to run ({expected})", icon=":material/schedule:")

    _tiles([(METHODS[m].display, tile(m, e)) for m, e in results]
           + [(METHODS[m].display, idle(t)) for m, t in waiting.items()], per_row)
    ok = [e for _, e in results if not isinstance(e, BaseException)]
    if ok:
        label = target_label(ok[0], ctx.backbone.categories)
        where = "its maximum" if pct >= 100 else f"its own {pct:g}th percentile"
        legend(None, draw_cmap, label, cache.display_map_cached(ok[0], pct, signed),
               scale_note=f"each map scaled to {where}" + (", centred on zero" if signed else ""))
    grads = [(m, e) for m, e in results if not isinstance(e, BaseException) and e.gradient is not None]
    if grads:
        st.markdown("**Signed pixel-space gradients** — grey = 0, brighter/darker colours = ± "
                    "(each scaled to its 99th percentile of |gradient|)")

        def grad_tile(exp: Any) -> Any:
            return lambda: st.image(gradient_image(exp.gradient), width="stretch")

        _tiles([(METHODS[m].display, grad_tile(e)) for m, e in grads], per_row)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:,.1f} s"


_WAITED = "compare_waited"


def _waited(key: tuple[Any, ...], seconds: float) -> float:
    """The wall time a map took when it was computed: a run that found it kept (a few ms) keeps the first
    figure; a real recomputation (e.g. after the cache dropped it) replaces it."""
    store: dict[tuple[Any, ...], float] = st.session_state.setdefault(_WAITED, {})
    if key not in store or seconds >= 0.05:
        store[key] = seconds
    return store[key]


def main(ctx: Any) -> None:
    preds = predictions_or_error(ctx)
    if preds is None:
        return
    methods = _method_select(ctx)  # full width: the methods' names are never cut
    l, k = st.columns(2)
    with l:
        layer = layer_picker(ctx, needs_layer=True)
    with k:
        class_idx = class_picker(ctx, preds)
    if not methods:
        st.info("Pick at least one method.")
        return

    waiting = _run_toggles(ctx, methods, layer)
    params = {m: stored_params(m, ctx.backbone) for m in methods}
    # The previous grid leaves the screen while other maps are computed (never shown under this photo).
    grid = results_slot("compare", ctx.model_key, str(ctx.device), ctx.image.digest, tuple(methods), layer,
                        class_idx, tuple(sorted(waiting)), params)
    results: list[tuple[str, Any]] = []
    waited: dict[str, float] = {}
    progress = st.progress(0.0, text="Computing…")
    for i, method in enumerate(methods):
        spec = METHODS[method]
        if method in waiting:
            continue
        progress.progress(i / len(methods), text=f"Computing {spec.display} ({i + 1} of {len(methods)})…")
        began = time.perf_counter()
        try:
            exp = cache.explain_cached(ctx, method, layer if spec.needs_layer else None, class_idx,
                                       params[method])
        except Exception as exc:  # shown in that method's tile; the others go on
            exp = exc
        waited[method] = _waited((ctx.model_key, str(ctx.device), ctx.image.digest, method, layer, class_idx,
                                  repr(sorted(params[method].items()))), time.perf_counter() - began)
        results.append((method, exp))
    progress.empty()
    with grid:
        st.divider()
        scores = trust.compare_scores(ctx, results)
        trust.compare_summary(results, scores)  # the ranking first: what a reader looks for
        _grid(ctx, results, scores, waiting, waited)


photo_page("Compare",
           "The same image, class and layer under several methods: where do they agree?", main)
