"""Invariance (Zeiler & Fergus 2014, fig. 5): translate, rotate or scale the photo over a range and plot,
per value, the target class probability and how far a layer's feature vector moved from the original's.

The sweep (``ui.cache.sweep_cached``) runs in batches with a progress bar and is cached by image hash + model +
all its settings.
"""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from cam_core.invariance import EDGES, TRANSFORMS, default_values
from cam_core.report import fitted_range
from ui import cache
from ui.sidebar import photo_page
from ui.pickers import top_class_picker
from ui.widgets import literal, remembered_radio, remembered_select, remembered_slider, reset_when_changed, show_error

THUMBS = 7
#: Per transformation: slider bounds, default range, step, and how its value is written.
RANGES = {
    "translate": dict(lo=-200.0, hi=200.0, default=(-60.0, 60.0), step=5.0, unit="px", fmt="%.0f px",
                      title="Horizontal shift (photo pixels, + is right)"),
    "rotate": dict(lo=-180.0, hi=180.0, default=(-90.0, 90.0), step=5.0, unit="°", fmt="%.0f°",
                   title="Rotation (degrees, + is counter-clockwise)"),
    "scale": dict(lo=0.4, hi=2.5, default=(0.6, 1.6), step=0.05, unit="×", fmt="×%.2f", title="Scale factor"),
}


def _fmt(kind: str, v: float) -> str:
    unit = RANGES[kind]["unit"]
    return f"{v:g}{unit}" if unit != "×" else f"×{v:g}"


def _line(x: list[float], y: list[float], title: str, ytitle: str, kind: str, hover: list[str],
          yrange: list[float] | None = None) -> go.Figure:
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines+markers", customdata=hover,
                               hovertemplate=f"{RANGES[kind]['title'].split(' (')[0]} %{{x:g}}<br>"
                                             f"{ytitle} %{{y:.3f}}<br>%{{customdata}}<extra></extra>"))
    identity = 1.0 if kind == "scale" else 0.0
    fig.add_vline(x=identity, line_dash="dot", line_color="grey")
    fig.update_layout(title=dict(text=title, x=0, font=dict(size=15)), height=340,
                      margin=dict(l=8, r=8, t=40, b=8), xaxis_title=RANGES[kind]["title"], yaxis_title=ytitle)
    if yrange:
        fig.update_yaxes(range=yrange)
    return fig


def main(ctx: Any) -> None:
    try:
        preds = cache.predict_cached(ctx, top=5)
        choices = cache.layer_choices_cached(ctx)  # grouped by stage, no pass-through/container entries
    except Exception as exc:
        show_error(exc, context="prediction")
        return
    # Every setting lives in the shareable view (and the URL); the range is per transformation, the layer
    # menu is keyed to the model and the photo (its options), the class to the photo (its top-5).
    t, r, n = st.columns([2, 4, 2])
    with t:
        kind = remembered_radio("Transformation", list(TRANSFORMS), "inv_kind", default=list(TRANSFORMS)[0],
                                horizontal=True, format_func=str.capitalize)
    spec = RANGES[kind]
    reset_when_changed("inv_range", kind)  # another transformation: its own default range
    with r:
        low, high = remembered_slider(spec["title"], "inv_range", min_value=spec["lo"], max_value=spec["hi"],
                                      default=spec["default"], step=spec["step"], format=spec["fmt"],
                                      depends_on=(kind,))
    with n:
        steps = remembered_slider("Steps", "inv_steps", min_value=3, max_value=25, default=9, step=1,
                                  help="Values evenly spaced over the range (the unchanged photo is always added)")
    layer_names = [c.name for c in choices]
    labels = {c.name: c.label() for c in choices}
    a, b, c = st.columns([4, 3, 2])
    with a:
        default = ctx.backbone.spec.default_layer
        layer = remembered_select("Layer for the feature distance", layer_names, "feature_layer",
                                  default=default if default in layer_names else layer_names[-1],
                                  depends_on=(ctx.model_key,),
                                  format_func=lambda name: labels[name],
                                  help="Distance = ‖f(transformed) − f(original)‖ / ‖f(original)‖ with f the "
                                       "layer's whole flattened activation (its feature vector)")
    with b:
        class_idx = top_class_picker(ctx, preds, "Class")
    with c:
        edge = remembered_select("Uncovered area", list(EDGES), "inv_edge", default=list(EDGES)[0],
                                 format_func=lambda e: "grey" if e == "grey" else "mirrored")
    values = tuple(default_values(kind, float(low), float(high), int(steps)))
    try:
        result = cache.sweep_cached(ctx, kind, values, layer, int(class_idx), edge)
    except Exception as exc:
        show_error(exc, context="invariance sweep")
        return
    label = ctx.backbone.categories[result.class_idx]
    hover = [f"top-1: {ctx.backbone.categories[k]}" for k in result.top_classes]
    left, right = st.columns(2)
    left.plotly_chart(_line(result.values, result.probs, f"Probability of {label}", "probability", kind, hover,
                            list(fitted_range(result.probs))), width="stretch", key="inv_prob", config={"displaylogo": False})
    right.plotly_chart(_line(result.values, result.distances, f"Feature distance at {result.layer}",
                             "relative distance", kind, hover), width="stretch", key="inv_dist",
                       config={"displaylogo": False})
    kept = sum(k == result.class_idx for k in result.top_classes)
    st.caption(f"{literal(label)} stays the top-1 class for {kept} of {len(values)} values. Distance is Euclidean "
               f"between the whole flattened activations of {result.layer}, divided by the original's norm.")
    st.subheader("Some of the transformed photos", anchor=False)
    picks = sorted({round(i * (len(values) - 1) / (THUMBS - 1)) for i in range(THUMBS)}) if len(values) > THUMBS \
        else list(range(len(values)))
    for col, i in zip(st.columns(len(picks)), picks):
        col.image(result.thumbs[i], width="stretch",
                  caption=f"{_fmt(kind, result.values[i])} · p {result.probs[i]:.2f} · d {result.distances[i]:.2f}")


photo_page("Invariance",
           "Move, turn or resize the photo (Zeiler & Fergus 2014, fig. 5): does the classifier still see "
           "the same thing, and how much does a layer's representation change?", main)
