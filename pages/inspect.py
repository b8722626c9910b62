"""Inspect (home): one image, one method — the map, the overlay, the top-5 and downloads for a review.

Alpha and colormap live in an ``st.fragment``: moving them redraws the overlay from the cached map and
never calls the engine again.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import streamlit as st

from cam_core import __version__
from cam_core.registry import METHODS
from cam_core.render import colorize, gradient_image, heatmap_at_image_size, overlay, to_npy_bytes, to_png_bytes
from cam_core.report import build_report
from ui import cache, state, trust
from ui.display import checkerboard_note, display_controls, legend, map_cmap, results_slot, target_label
from ui.figures import heatmap_figure, top_k_bar
from ui.pickers import class_picker, layer_picker, method_picker, overlay_controls
from ui.sidebar import photo_page
from ui.widgets import literal, param_inputs, predictions_or_error, show_error


def _details(exp: Any, ctx: Any) -> None:
    label = ctx.backbone.categories[exp.class_idx] if exp.class_idx is not None else "—"
    st.metric("Time taken", f"{exp.elapsed_ms:,.0f} ms")
    st.markdown(f"**Explained class:** {literal(label)} ({exp.class_idx})  \n"
                f"**Method:** {METHODS[exp.method].display}  \n"
                f"**Layer:** {exp.layer or '— (pixel space)'}  \n"
                + (f"**Score:** {exp.score:.3f} · **probability:** {exp.prob:.1%}" if exp.score is not None else ""))


def _downloads(ctx: Any, exp: Any, preds: list[Any], alpha: float, cmap: str, shown: Any,
               evidence: tuple[Any, Any] = (None, None)) -> None:
    image = ctx.image
    stem = image.name.rsplit(".", 1)[0]
    base = f"{stem}_{exp.method}"

    def overlay_png() -> bytes:
        return to_png_bytes(overlay(image.image, shown, alpha, cmap))  # what the page shows

    def heatmap_npy() -> bytes:
        return to_npy_bytes(heatmap_at_image_size(exp.heatmap, image.image))

    def report_html() -> str:
        spec = METHODS[exp.method]
        return build_report(
            original=image.image, overlay=overlay(image.image, shown, alpha, cmap), image_name=image.name,
            model=ctx.backbone.display, method=spec.display, method_citation=spec.citation, layer=exp.layer,
            class_idx=exp.class_idx,
            class_label=ctx.backbone.categories[exp.class_idx] if exp.class_idx is not None else None,
            params={**exp.params, "alpha": alpha, "colormap": cmap, "display": shown.caption()}, top=preds, score=exp.score, prob=exp.prob,
            elapsed_ms=exp.elapsed_ms, notes=exp.notes, created=datetime.now(timezone.utc), version=__version__,
            metrics=evidence[0], sanity=evidence[1], input_size=tuple(ctx.x.shape[-2:]), device=str(ctx.device),
            warnings=[w for w in [trust.unsure_message(preds, plain=True)] if w])

    c1, c2, c3 = st.columns(3)
    c1.download_button("Overlay PNG", overlay_png, f"{base}_overlay.png", "image/png",
                       icon=":material/download:", on_click="ignore", width="stretch")
    c2.download_button("Heat map .npy", heatmap_npy, f"{base}_heatmap.npy", "application/octet-stream",
                       icon=":material/download:", on_click="ignore", width="stretch",
                       help=f"float32 {image.image.height}×{image.image.width}, values in [0, 1]")
    c3.download_button("HTML report", report_html, f"{base}_report.html", "text/html",
                       icon=":material/description:", on_click="ignore", width="stretch")


@st.fragment
def _view(ctx: Any, exp: Any, preds: list[Any]) -> None:
    """Everything that depends on alpha/colormap/display scale; reruns alone when they move (the map is
    not recomputed)."""
    a, c, q, g = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    alpha, cmap = overlay_controls(a, c)
    pct, signed = display_controls(q, g)
    state.sync_query_params()  # a fragment rerun does not reach app.py's sync

    shown = cache.display_map_cached(exp, pct, signed)
    draw = map_cmap(cmap, signed)
    thumb = cache.display_image(ctx.image)
    panels = [("Original", thumb), ("Heat map", colorize(heatmap_at_image_size(shown, thumb), draw)),
              ("Overlay", overlay(thumb, shown, alpha, draw))]
    if exp.gradient is not None:
        panels.append(("Pixel-space gradient", gradient_image(exp.gradient)))
    for col, (title, img) in zip(st.columns(len(panels)), panels):
        col.image(img, caption=title, width="stretch")
    legend(None, draw, target_label(exp, ctx.backbone.categories), shown)
    checkerboard_note(None, exp)

    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Interactive heat map** (hover for values)")
        st.plotly_chart(heatmap_figure(shown, draw, ctx.image.image.size, values=exp.heatmap), width="stretch",
                        key="heatmap_plot", config={"displaylogo": False})
    with right:
        _details(exp, ctx)
    downloads = st.container()
    st.divider()
    evidence = trust.section(ctx, exp, draw)  # drawn below the downloads; the report carries what it shows
    with downloads:
        _downloads(ctx, exp, preds, alpha, draw, shown, evidence)


def main(ctx: Any) -> None:
    preds = predictions_or_error(ctx)
    if preds is None:
        return
    best = preds[0]
    st.subheader(f"{literal(best.label)} — {best.prob:.1%}", anchor=False)
    st.caption(f"Top-1 of {literal(ctx.backbone.display)} on {literal(ctx.image.name)}")
    unsure = trust.unsure_message(preds)
    if unsure:
        st.warning(unsure, icon=":material/help:")

    controls, chart = st.columns([3, 2])
    with controls:
        method = method_picker(ctx)
        spec = METHODS[method]
        layer = layer_picker(ctx, spec.needs_layer)
        class_idx = class_picker(ctx, preds)
        params = param_inputs(method, ctx.backbone) if spec.params else {}
    with chart:
        st.plotly_chart(top_k_bar(preds, highlight=class_idx if class_idx is not None else best.class_idx,
                                  chosen=cache.class_prediction(ctx, class_idx)),
                        width="stretch", key="top5", config={"displayModeBar": False})

    # The previous map leaves the screen while another one is computed (never shown under this photo's title).
    results = results_slot("inspect", ctx.model_key, str(ctx.device), ctx.image.digest, method, layer, class_idx,
                           params)
    try:
        with st.spinner(f"Computing {spec.display}…", show_time=True):
            exp = cache.explain_cached(ctx, method, layer, class_idx, params)
    except Exception as exc:
        show_error(exc, context=spec.display)
        return
    with results:
        for note in exp.notes:
            st.info(note, icon=":material/info:")
        st.divider()
        _view(ctx, exp, preds)


photo_page("Inspect", "Why did the classifier decide what it decided? Pick a method and a class: the "
           "map shows where the evidence is.", main)
