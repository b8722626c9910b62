"""Occlusion explorer (Zeiler & Fergus 2014, fig. 7): slide a grey square over the photo and watch the
classifier. Two maps over the occluder positions: the target class's probability, and the class that
wins. A coarse pass (stride = patch) shows first, then the fine pass runs with a progress bar; click the
map (or move the sliders) to see the top-5 with the patch at that spot.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image, ImageDraw

from ui import cache
from ui.figures import top_k_bar
from ui.sidebar import start_page
from ui.pickers import top_class_picker
from ui.widgets import predictions_or_error, remembered_select, remembered_slider, set_remembered, show_error

#: Qualitative colours for the top-class map (one per class that appears; the rest reuse them).
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94"]
FILLS = ("dataset mean", "grey", "black")


def _fill_value(backbone: Any, name: str) -> Any:
    """The occluder colour in the model's normalized space (0 is the dataset mean)."""
    if name == "grey":
        return tuple(backbone.fill_value((128, 128, 128)))
    if name == "black":
        return tuple(backbone.fill_value((0, 0, 0)))
    return 0.0


@st.cache_data(max_entries=64, show_spinner=False)
def _probe(model_key: str, device: str, digest: str, patch: int, fill: Any, top: int, left: int,
           _backbone: Any, _image: Any) -> list:
    """Top-5 with the patch at (top, left) in model-input pixels."""
    from cam_core.methods.occlusion import fill_tensor, occlude
    from cam_core.predict import predict

    cache.ENGINE_CALLS["occlusion_probe"] += 1
    x = _backbone.preprocess(_image)
    return predict(_backbone.model, occlude(x, top, left, patch, fill_tensor(fill, x)), _backbone.categories, top=5)


def _centres(exp: Any, image_size: tuple[int, int], input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Occluder centres in the photo's own pixels: (xs for columns, ys for rows)."""
    e = exp.extras
    sx, sy = image_size[0] / input_hw[1], image_size[1] / input_hw[0]
    xs = (np.asarray(e["cols"]) + e["patch"] / 2) * sx
    ys = (np.asarray(e["rows"]) + e["patch"] / 2) * sy
    return xs, ys


def _base_figure(thumb: Image.Image, size: tuple[int, int]) -> go.Figure:
    w, h = size
    fig = go.Figure()
    fig.add_layout_image(source=thumb, xref="x", yref="y", x=0, y=0, sizex=w, sizey=h, sizing="stretch",
                         layer="below")
    fig.update_xaxes(range=[0, w], showgrid=False, constrain="domain", zeroline=False)
    fig.update_yaxes(range=[h, 0], showgrid=False, scaleanchor="x", constrain="domain", zeroline=False)
    fig.update_layout(height=440, margin=dict(l=8, r=8, t=32, b=8), dragmode=False, clickmode="event+select")
    return fig


def _prob_figure(exp: Any, thumb: Image.Image, size: tuple[int, int], input_hw: tuple[int, int],
                 label: str) -> go.Figure:
    xs, ys = _centres(exp, size, input_hw)
    grid = exp.extras["prob_grid"]
    fig = _base_figure(thumb, size)
    fig.add_trace(go.Heatmap(z=grid, x=xs, y=ys, zmin=0.0, zmax=max(float(grid.max()), exp.extras["base_prob"]),
                             colorscale="RdBu", opacity=0.65,
                             colorbar=dict(title=dict(text=f"p({label[:18]})", side="right"), thickness=12),
                             hovertemplate="patch centred at x %{x:.0f}, y %{y:.0f}<br>p = %{z:.3f}<extra></extra>"))
    gx, gy = np.meshgrid(xs, ys)
    # Invisible markers on the grid: clicking one selects that occluder position.
    fig.add_trace(go.Scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", marker=dict(size=14, opacity=0.0),
                             hoverinfo="none", showlegend=False, name="positions"))
    return fig


def _top_class_figure(exp: Any, thumb: Image.Image, size: tuple[int, int], input_hw: tuple[int, int],
                      categories: list[str]) -> go.Figure:
    xs, ys = _centres(exp, size, input_hw)
    grid = np.asarray(exp.extras["top_class_grid"])
    classes, counts = np.unique(grid, return_counts=True)
    classes = classes[np.argsort(-counts, kind="stable")]  # most frequent first (first colours, first in legend)
    index = {int(c): i for i, c in enumerate(classes)}
    z = np.vectorize(lambda c: index[int(c)])(grid)
    n = len(classes)
    colours = [PALETTE[i % len(PALETTE)] for i in range(n)]
    scale = []
    for i, colour in enumerate(colours):  # a stepped colorscale: value i ↦ colour i
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    text = np.vectorize(lambda c: f"{categories[int(c)]} ({int(c)})")(grid)
    fig = _base_figure(thumb, size)
    fig.add_trace(go.Heatmap(z=z, x=xs, y=ys, zmin=-0.5, zmax=n - 0.5, colorscale=scale, showscale=False,
                             opacity=0.7, text=text,
                             hovertemplate="patch centred at x %{x:.0f}, y %{y:.0f}<br>%{text}<extra></extra>"))
    for i, c in enumerate(classes[:12]):  # legend entries (the 12 most frequent)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"{categories[int(c)]} ({int(c)})",
                                 marker=dict(size=12, symbol="square", color=colours[i])))
    fig.update_layout(showlegend=True, legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0,
                                                  title=dict(text="wins:")))
    return fig


def _draw_maps(where: Any, ctx: Any, exp: Any, label: str, note: str, interactive: bool) -> Any:
    """Both maps side by side in ``where``; returns the probability chart's selection event when interactive."""
    thumb = cache.display_image(ctx.image, 768)
    size = ctx.image.image.size
    input_hw = exp.heatmap.shape
    event = None
    with where.container():
        st.caption(note)
        left, right = st.columns(2)
        with left:
            st.markdown(f"**Probability of {label}** with the patch at each position")
            fig = _prob_figure(exp, thumb, size, input_hw, label)
            if interactive:
                event = st.plotly_chart(fig, width="stretch", key="occ_prob", on_select="rerun",
                                        selection_mode="points", config={"displaylogo": False})
            else:
                st.plotly_chart(fig, width="stretch", config={"displaylogo": False})
        with right:
            st.markdown("**Top class** with the patch at each position")
            st.plotly_chart(_top_class_figure(exp, thumb, size, input_hw, ctx.backbone.categories),
                            width="stretch", config={"displaylogo": False})
    return event


def _apply_click(event: Any, digest: str) -> None:
    """A click on the probability map moves the probe sliders there (before they are drawn)."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", None) or []
    if not points:
        return
    pt = points[0]
    marker = (round(float(pt["x"])), round(float(pt["y"])))
    if st.session_state.get("_occ_last_click") != marker:
        st.session_state["_occ_last_click"] = marker
        set_remembered("occ_x", marker[0], (digest,))
        set_remembered("occ_y", marker[1], (digest,))


def _probe_section(ctx: Any, patch: int, fill: Any, fill_name: str, class_idx: int, base: list[Any]) -> None:
    w, h = ctx.image.image.size
    x = ctx.backbone.preprocess(ctx.image.image)
    in_h, in_w = x.shape[-2:]
    st.subheader("Patch at one spot", anchor=False)
    st.caption("Click a cell of the probability map, or move the sliders (photo pixels).")
    a, b = st.columns(2)  # keyed to the photo: its size is the sliders' range
    cx = remembered_slider("Patch centre x", "occ_x", min_value=0, max_value=w - 1, default=w // 2, step=1,
                           where=a, depends_on=(ctx.image.digest,))
    cy = remembered_slider("Patch centre y", "occ_y", min_value=0, max_value=h - 1, default=h // 2, step=1,
                           where=b, depends_on=(ctx.image.digest,))
    top = int(min(max(round(cy * in_h / h - patch / 2), 0), max(in_h - patch, 0)))
    left = int(min(max(round(cx * in_w / w - patch / 2), 0), max(in_w - patch, 0)))
    try:
        preds = _probe(ctx.model_key, str(ctx.device), ctx.image.digest, patch, fill, top, left, ctx.backbone,
                       ctx.image.image)
    except Exception as exc:
        show_error(exc, context="occluded prediction")
        return
    thumb = cache.display_image(ctx.image, 768).copy()
    s = thumb.width / in_w
    box = [left * s, top * s, (left + patch) * s - 1, (top + patch) * s - 1]
    colour = {"black": (0, 0, 0), "grey": (128, 128, 128)}.get(fill_name, (127, 127, 127))
    ImageDraw.Draw(thumb).rectangle(box, fill=colour, outline=(255, 0, 0), width=max(1, round(2 * s)))
    pic, bars = st.columns([2, 3])
    pic.image(thumb, width="stretch", caption=f"Patch {patch}px at x {cx}, y {cy}")
    with bars:
        before = next((p.prob for p in base if p.class_idx == class_idx), None)
        after = next((p.prob for p in preds if p.class_idx == class_idx), None)
        label = ctx.backbone.categories[class_idx]
        st.markdown(f"**{label}**: {before:.1%} without the patch → "
                    + (f"{after:.1%} with it" if after is not None else "out of the top-5 with it")
                    if before is not None else f"**{label}**")
        st.plotly_chart(top_k_bar(preds, highlight=class_idx), width="stretch", key="occ_probe_top5",
                        config={"displayModeBar": False})


def main() -> None:
    ctx = start_page("Occlusion explorer",
                     "Hide one square of the photo at a time (Zeiler & Fergus 2014): where does the probability "
                     "of the class collapse, and which class wins instead?")
    if ctx is None:
        return
    preds = predictions_or_error(ctx)
    if preds is None:
        return
    p, s, f, k = st.columns([2, 2, 2, 3])
    patch = remembered_slider("Patch size (input px)", "occ_patch", min_value=8, max_value=160, default=48, step=8,
                              where=p, help="Side of the occluding square in the model's input pixels")
    stride = remembered_slider("Stride (input px)", "occ_stride", min_value=4, max_value=160, default=24, step=4,
                               where=s, help="Step between positions of the fine pass; smaller is finer and slower")
    with f:
        fill_name = remembered_select("Fill", list(FILLS), "occ_fill", default="grey")
    with k:
        class_idx = top_class_picker(ctx, preds, "Target class")
    fill = _fill_value(ctx.backbone, fill_name)
    label = ctx.backbone.categories[class_idx]
    params = {"patch": patch, "stride": stride, "fill": fill}
    done: set = st.session_state.setdefault("_occ_done", set())
    fine_key = (ctx.model_key, ctx.image.digest, class_idx, patch, stride, fill)
    maps = st.empty()
    try:
        if stride < patch and fine_key not in done:
            coarse = cache.explain_cached(ctx, "occlusion", None, class_idx, {**params, "stride": patch})
            _draw_maps(maps, ctx, coarse, label, f"Coarse pass (stride {patch}) — refining with stride {stride}…",
                       interactive=False)
        exp = cache.explain_cached(ctx, "occlusion", None, class_idx, params)
    except Exception as exc:
        maps.empty()
        show_error(exc, context="occlusion")
        return
    done.add(fine_key)
    rows, cols = len(exp.extras["rows"]), len(exp.extras["cols"])
    note = (f"{rows}×{cols} positions (patch {patch}, stride {stride}) · {exp.elapsed_ms / 1000:,.1f} s · "
            f"p({label}) without occlusion: {exp.extras['base_prob']:.1%}")
    event = _draw_maps(maps, ctx, exp, label, note, interactive=True)
    _apply_click(event, ctx.image.digest)
    _probe_section(ctx, patch, fill, fill_name, class_idx, preds)


main()
