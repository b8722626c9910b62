"""Compare: one image, several methods side by side on the same class and layer, each with its time.

Alpha and colormap are shared and live in an ``st.fragment``: moving them never recomputes a map.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ui import cache, state, trust
from ui.pickers import class_picker, layer_picker, overlay_controls
from ui.sidebar import start_page
from ui.widgets import predictions_or_error, show_error, stored_params

DEFAULT_METHODS = ["gradcam", "gradcam++", "guided_gradcam"]
PER_ROW = 4


def _method_select() -> list[str]:
    from cam_core.registry import METHODS

    stored = [m for m in state.view().get("compare_methods", DEFAULT_METHODS) if m in METHODS]
    chosen = st.multiselect("Methods", list(METHODS), default=stored, format_func=lambda m: METHODS[m].display,
                            key="w_compare_methods",
                            help="Each uses the parameters last set on Inspect (else its defaults)")
    state.remember("compare_methods", list(chosen))
    return list(chosen)


@st.fragment
def _grid(ctx: Any, results: list[tuple[str, Any]], scores: dict[str, Any]) -> None:
    """The overlays, redrawn alone when alpha or colormap moves (results come from the map cache)."""
    from cam_core.registry import METHODS
    from cam_core.render import gradient_image, overlay

    a, c, _ = st.columns([2, 2, 3])
    alpha, cmap = overlay_controls(a, c)
    state.sync_query_params()
    thumb = cache.display_image(ctx.image)
    per_row = max(1, min(len(results), PER_ROW))
    for start in range(0, len(results), per_row):
        row = results[start:start + per_row]
        for col, (method, exp) in zip(st.columns(per_row), row):
            with col:
                st.markdown(f"**{METHODS[method].display}**")
                if isinstance(exp, BaseException):
                    show_error(exp)
                    continue
                st.image(overlay(thumb, exp.heatmap, alpha, cmap), width="stretch")
                where = f" · layer {exp.layer}" if exp.layer else " · pixel space"
                st.caption(f"{exp.elapsed_ms:,.0f} ms{where}")
                if method in scores:
                    st.caption(trust.score_caption(scores[method]))
                if exp.gradient is not None:  # pixel-space methods: the signed gradient says more
                    st.image(gradient_image(exp.gradient), caption="signed pixel-space gradient", width="stretch")
                for note in exp.notes:
                    st.info(note, icon=":material/info:")


def main() -> None:
    ctx = start_page("Compare",
                     "The same image, class and layer under several methods: where do they agree?")
    if ctx is None:
        return
    preds = predictions_or_error(ctx)
    if preds is None:
        return
    from cam_core.registry import METHODS

    m, l, k = st.columns([3, 2, 2])
    with m:
        methods = _method_select()
    with l:
        layer = layer_picker(ctx, needs_layer=True)
    with k:
        class_idx = class_picker(ctx, preds)
    if not methods:
        st.info("Pick at least one method.")
        return

    results: list[tuple[str, Any]] = []
    progress = st.progress(0.0, text="Computing…")
    for i, method in enumerate(methods):
        spec = METHODS[method]
        progress.progress(i / len(methods), text=f"Computing {spec.display} ({i + 1} of {len(methods)})…")
        try:
            exp = cache.explain_cached(ctx, method, layer if spec.needs_layer else None, class_idx,
                                       stored_params(method, ctx.backbone))
        except Exception as exc:  # shown in that method's tile; the others go on
            exp = exc
        results.append((method, exp))
    progress.empty()
    st.divider()
    scores = trust.compare_scores(ctx, results)
    _grid(ctx, results, scores)
    trust.compare_summary(results, scores)


main()
