"""Occlusion explorer (Zeiler & Fergus 2014, fig. 7): slide a square over the photo and watch the
classifier. Two maps over the occluder positions: the target class's probability, and the class that
wins. The coarse windows' maps show first, then the rest of the windows run with a progress bar (each window
once, ``cam_core.progressive``); click the map (or move the sliders) to see the top-5 with the patch there.

Patch, stride and fill are the method's own parameters (defaults and ranges from ``cam_core.registry``, values
shared with Inspect); the geometry comes from ``cam_core.occlusion_view``. The page lays out.
"""
from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from PIL import Image, ImageDraw

from cam_core.occlusion_view import defaults, photo_grid, prob_top, window_at, winning_classes
from cam_core.registry import get_method
from cam_core.render import COLORMAPS
from ui import cache, state
from ui.display import results_slot
from ui.figures import colorscale, top_k_bar
from ui.sidebar import photo_page
from ui.pickers import top_class_picker
from ui.widgets import _fill_choices, literal, predictions_or_error, remembered_slider, set_remembered, show_error

#: Qualitative colours for the top-class map (one per class that appears; the rest reuse them).
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94"]
#: Both maps are drawn at this height with the same margins and no in-figure legend: equal plot areas.
MAP_HEIGHT = 420
PROB_CMAP = "coolwarm"  # reversed: red where hiding the square makes the probability collapse


def _base_figure(thumb: Image.Image, size: tuple[int, int]) -> go.Figure:
    w, h = size
    fig = go.Figure()
    fig.add_layout_image(source=thumb, xref="x", yref="y", x=0, y=0, sizex=w, sizey=h, sizing="stretch",
                         layer="below")
    fig.update_xaxes(range=[0, w], showgrid=False, constrain="domain", zeroline=False)
    fig.update_yaxes(range=[h, 0], showgrid=False, scaleanchor="x", constrain="domain", zeroline=False)
    fig.update_layout(height=MAP_HEIGHT, margin=dict(l=8, r=8, t=8, b=8), dragmode=False,
                      clickmode="event+select", showlegend=False)
    return fig


def _prob_figure(exp: Any, grid: Any, thumb: Image.Image, size: tuple[int, int]) -> go.Figure:
    values = exp.extras["prob_grid"]
    fig = _base_figure(thumb, size)
    # x/y are cell edges (one more than the grid): the cells tile the photo from edge to edge.
    fig.add_trace(go.Heatmap(z=values, x=grid.x_edges, y=grid.y_edges, zmin=0.0, zmax=prob_top(exp.extras),
                             colorscale=colorscale(PROB_CMAP, reverse=True), opacity=0.65, showscale=False,
                             hovertemplate="p = %{z:.3f}<extra></extra>"))
    xs, ys = grid.points()
    # Invisible markers at the window centres: clicking one selects that occluder position.
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", marker=dict(size=14, opacity=0.0),
                             hovertemplate="patch centred at x %{x:.0f}, y %{y:.0f}<extra></extra>",
                             showlegend=False, name="positions"))
    return fig


def _top_class_figure(exp: Any, grid: Any, thumb: Image.Image, size: tuple[int, int],
                      categories: list[str]) -> go.Figure:
    classes, z = winning_classes(exp.extras["top_class_grid"])
    n = len(classes)
    scale = []
    for i in range(n):  # a stepped colorscale: value i ↦ colour i
        colour = PALETTE[i % len(PALETTE)]
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    text = [[f"{categories[classes[i]]} ({classes[i]})" for i in row] for row in z]
    fig = _base_figure(thumb, size)
    fig.add_trace(go.Heatmap(z=z, x=grid.x_edges, y=grid.y_edges, zmin=-0.5, zmax=n - 0.5, colorscale=scale,
                             showscale=False, opacity=0.7, text=text,
                             hovertemplate="%{text}<extra></extra>"))
    return fig


def _prob_legend(exp: Any, label: str) -> str:
    lut = COLORMAPS[PROB_CMAP][::-1]
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in (lut[round(i * 255 / 10)] for i in range(11)))
    return (f'<div class="cam-legend"><div style="height:10px;border-radius:2px;'
            f'background:linear-gradient(to right, {stops})"></div>'
            f'<div style="display:flex;justify-content:space-between;font-size:0.8rem;opacity:0.75">'
            f'<span>red: p = 0 (hiding this square removes the evidence for {html.escape(label)})</span>'
            f'<span>blue: p = {prob_top(exp.extras):.2f}</span></div></div>')


def _class_legend(exp: Any, categories: list[str], most: int = 12) -> str:
    classes, _ = winning_classes(exp.extras["top_class_grid"])
    chips = [f'<span style="white-space:nowrap;margin-right:0.9rem"><span style="display:inline-block;width:0.8rem;'
             f'height:0.8rem;background:{PALETTE[i % len(PALETTE)]};margin-right:0.3rem;vertical-align:-0.1rem">'
             f'</span>{html.escape(categories[c])} ({c})</span>' for i, c in enumerate(classes[:most])]
    more = f" … and {len(classes) - most} more" if len(classes) > most else ""
    return (f'<div class="cam-legend" style="font-size:0.8rem;line-height:1.6">'
            f'<b>wins:</b> {"".join(chips)}{more}</div>')


def _draw_maps(where: Any, ctx: Any, exp: Any, label: str, note: str, interactive: bool) -> Any:
    """Both maps side by side in ``where``, each with its legend underneath (never over the other plot);
    returns the probability chart's selection event when interactive."""
    thumb = cache.display_image(ctx.image, 768)
    size = ctx.image.image.size
    grid = photo_grid(exp.extras, exp.heatmap.shape, size)
    event = None
    with where.container():
        st.caption(note)
        left, right = st.columns(2)
        with left:
            st.markdown(f"**Probability of {literal(label)}** with the patch at each position")
            fig = _prob_figure(exp, grid, thumb, size)
            if interactive:
                event = st.plotly_chart(fig, width="stretch", key="occ_prob", on_select="rerun",
                                        selection_mode="points", config={"displaylogo": False})
            else:
                st.plotly_chart(fig, width="stretch", config={"displaylogo": False})
            st.markdown(_prob_legend(exp, label), unsafe_allow_html=True)
        with right:
            st.markdown("**Top class** with the patch at each position")
            st.plotly_chart(_top_class_figure(exp, grid, thumb, size, ctx.backbone.categories),
                            width="stretch", config={"displaylogo": False})
            st.markdown(_class_legend(exp, ctx.backbone.categories), unsafe_allow_html=True)
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


def _probe_section(ctx: Any, patch: int, fill: Any, class_idx: int, base: list[Any]) -> None:
    w, h = ctx.image.image.size
    in_h, in_w = ctx.x.shape[-2:]
    st.subheader("Patch at one spot", anchor=False)
    st.caption("Click a cell of the probability map, or move the sliders (photo pixels).")
    a, b = st.columns(2)  # keyed to the photo: its size is the sliders' range
    cx = remembered_slider("Patch centre x", "occ_x", min_value=0, max_value=w - 1, default=w // 2, step=1,
                           where=a, depends_on=(ctx.image.digest,))
    cy = remembered_slider("Patch centre y", "occ_y", min_value=0, max_value=h - 1, default=h // 2, step=1,
                           where=b, depends_on=(ctx.image.digest,))
    top, left = window_at(cx, cy, (w, h), (in_h, in_w), patch)
    try:
        preds = cache.probe_cached(ctx, patch, fill, top, left)
    except Exception as exc:
        show_error(exc, context="occluded prediction")
        return
    thumb = cache.display_image(ctx.image, 768).copy()
    s = thumb.width / in_w
    box = [left * s, top * s, (left + patch) * s - 1, (top + patch) * s - 1]
    ImageDraw.Draw(thumb).rectangle(box, fill=cache.fill_rgb(ctx, fill), outline=(255, 0, 0),
                                    width=max(1, round(2 * s)))
    pic, bars = st.columns([2, 3])
    pic.image(thumb, width="stretch", caption=f"Patch {patch}px at x {cx}, y {cy}")
    with bars:
        before = next((p.prob for p in base if p.class_idx == class_idx), None)
        after = next((p.prob for p in preds if p.class_idx == class_idx), None)
        label = ctx.backbone.categories[class_idx]
        st.markdown(f"**{literal(label)}**: {before:.1%} without the patch → "
                    + (f"{after:.1%} with it" if after is not None else "out of the top-5 with it")
                    if before is not None else f"**{literal(label)}**")
        st.plotly_chart(top_k_bar(preds, highlight=class_idx), width="stretch", key="occ_probe_top5",
                        config={"displayModeBar": False})


def _params(ctx: Any) -> tuple[int, int, str, Any]:
    """Patch, stride and fill: the registry's defaults and ranges, shared with Inspect's occlusion parameters."""
    d = defaults()
    specs = get_method("occlusion").params
    stored: dict[str, Any] = state.view().setdefault("params", {}).setdefault("occlusion", {})
    p, s, f = st.columns([2, 2, 3])  # the fill's menu shows "dataset mean (0)" whole at 800 px
    values = {}
    for name, col, label, help_text in (
            ("patch", p, "Patch size (input px)", "Side of the occluding square in the model's input pixels"),
            ("stride", s, "Stride (input px)", "Step between positions of the fine pass; smaller is finer, slower")):
        p_ = specs[name]
        lo, hi, step = int(p_.min), int(p_.max), int(p_.step)
        current = int(min(max(int(stored.get(name, d[name])), lo), hi))
        key = f"w_occ_{name}"
        if key in st.session_state:  # the widget's own state (clamped): no second default beside it
            st.session_state[key] = int(min(max(int(st.session_state[key]), lo), hi))
            values[name] = int(col.slider(label, lo, hi, step=step, key=key, help=help_text))
        else:
            values[name] = int(col.slider(label, lo, hi, current, step=step, key=key, help=help_text))
        stored[name] = values[name]
    fills = _fill_choices(ctx.backbone)
    default_fill = next((k for k, v in fills.items() if v == d["fill"]), next(iter(fills)))
    stored_fill = stored.get("fill", default_fill)
    with f:
        fill_name = st.selectbox("Fill", list(fills), index=list(fills).index(stored_fill)
                                 if stored_fill in fills else 0, key="w_occ_fill",
                                 help="The occluder's colour (the model's dataset mean by default)")
    stored["fill"] = fill_name
    return values["patch"], values["stride"], fill_name, fills[fill_name]


def main(ctx: Any) -> None:
    preds = predictions_or_error(ctx)
    if preds is None:
        return
    controls, k = st.columns([6, 3])
    with controls:
        patch, stride, fill_name, fill = _params(ctx)
    with k:
        class_idx = top_class_picker(ctx, preds, "Target class")
    label = ctx.backbone.categories[class_idx]
    params = {"patch": patch, "stride": stride, "fill": fill}
    # The previous maps and probe leave the screen while new ones are computed (never under this photo).
    area = results_slot("occlusion", str(ctx.device), ctx.model_key, ctx.image.digest, class_idx, patch, stride,
                        fill)
    with area:
        maps = st.empty()

        def coarse(first: Any) -> None:  # drawn while the other windows run (a cached map has no coarse step)
            _draw_maps(maps, ctx, first, label, f"Coarse windows (stride ≈ patch {patch}) — refining with stride "
                       f"{stride}…", interactive=False)

        try:
            exp = cache.explain_cached(ctx, "occlusion", None, class_idx, params, on_coarse=coarse)
        except Exception as exc:
            maps.empty()
            show_error(exc, context="occlusion")
            return
        rows, cols = len(exp.extras["rows"]), len(exp.extras["cols"])
        note = (f"{rows}×{cols} positions (patch {patch}, stride {stride}) · fill {fill_name} · windows reach "
                f"every edge · {exp.elapsed_ms / 1000:,.1f} s · p({literal(label)}) without occlusion: "
                f"{exp.extras['base_prob']:.1%}")
        event = _draw_maps(maps, ctx, exp, label, note, interactive=True)
        _apply_click(event, ctx.image.digest)
        _probe_section(ctx, patch, fill, class_idx, preds)


photo_page("Occlusion explorer",
           "Hide one square of the photo at a time (Zeiler & Fergus 2014): where does the probability "
           "of the class collapse, and which class wins instead?", main)
