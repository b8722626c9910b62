"""Layers (Zeiler & Fergus 2014): what a layer sees — its strongest feature maps, one channel projected
back to pixels with a deconvnet, the per-channel mean activations, the first-layer filters, and the
channel-mean map at each stage from the input to the head; and a channel's top-activating patches over an
audit's images (``ui.patches_view``).

Every heavy result comes from ``ui.cache`` (keyed by image hash + model + layer (+ channel)); changing N or the
colormap only redraws.
"""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from cam_core.render import (CHECKERBOARD_NOTE, CHECKERBOARD_THRESHOLD, COLORMAP_NAMES, colorize, end_colours,
                             filter_mosaic, heatmap_at_image_size, overlay, tile, unit_range)
from ui import cache, patches_view
from ui.sidebar import photo_page
from ui.widgets import remembered_select, remembered_slider, reset_when_changed, show_error

PER_ROW = 8
TILE_PX = 176
MAX_STAGES = 8


def _mean_chart(fm: Any, top: list[int], selected: int) -> go.Figure:
    k = len(fm.mean)
    shown = set(top)
    colours = ["#d62728" if c == selected else ("#1f77b4" if c in shown else "#aec7e8") for c in range(k)]
    fig = go.Figure(go.Bar(x=list(range(k)), y=fm.mean.tolist(), marker_color=colours, marker_line_width=0,
                           hovertemplate="channel %{x}<br>mean %{y:.4f}<extra></extra>"))
    fig.update_layout(height=260, margin=dict(l=8, r=8, t=8, b=8), bargap=0.05,
                      xaxis=dict(title="channel"), yaxis=dict(title="mean activation"))
    return fig


# --- page ----------------------------------------------------------------------------------------------------

def _layer_select(ctx: Any, choices: list[Any]) -> str:
    by_name = {c.name: c for c in choices}
    options = list(by_name)
    default = ctx.backbone.spec.default_layer if ctx.backbone.spec.default_layer in by_name else options[-1]
    return remembered_select("Layer", options, "feature_layer", default=default,
                             format_func=lambda name: by_name[name].label(),
                             depends_on=(ctx.model_key, ctx.image.digest),
                             help="Grouped by stage (one stage per grid size, finest first); pass-through and "
                                  "container modules are left out. Type to search")


def _selected_channel(ctx: Any, fm: Any, layer: str, channel: int, cmap: str) -> None:
    thumb = cache.display_image(ctx.image)
    unit = unit_range(fm.maps[channel])
    a, b, c = st.columns(3)
    a.image(colorize(heatmap_at_image_size(unit, thumb), cmap), width="stretch",
            caption=f"Feature map {channel} (enlarged to the photo)")
    b.image(overlay(thumb, unit, 0.5, cmap), width="stretch", caption="Over the photo")
    with c:
        try:
            with st.spinner("Projecting to pixels (deconvnet)…"):
                proj, board = cache.projection_cached(ctx, layer, channel)
            st.image(proj, width="stretch", caption="Deconvnet projection to pixel space")
            st.caption("Signed: grey = 0, each colour channel's ± scaled to the 99th percentile of |value|.")
            if board > CHECKERBOARD_THRESHOLD:
                st.info(CHECKERBOARD_NOTE, icon=":material/grid_4x4:")
        except Exception as exc:
            show_error(exc, context="deconvnet projection")


def _stage_strip(ctx: Any, cmap: str) -> None:
    stages = cache.stage_strip_cached(ctx)
    if not stages:
        st.info("This model has no layer with a spatial output to show.")
        return
    try:
        maps = cache.stage_maps_cached(ctx, [s.name for s in stages])
    except Exception as exc:
        show_error(exc, context="stage maps")
        return
    cols = st.columns(len(stages) + 1)
    cols[0].image(cache.display_image(ctx.image, 256), width="stretch", caption="input")
    for col, info in zip(cols[1:], stages):
        if info.name in maps:
            c, h, w = info.shape
            col.image(tile(maps[info.name], cmap, 256), width="stretch", caption=f"{info.name} · {c}×{h}×{w}")


def main(ctx: Any) -> None:
    try:
        choices = cache.layer_choices_cached(ctx)
    except Exception as exc:
        show_error(exc, context="listing layers")
        return
    if not choices:
        st.error("This model has no layer with a spatial output: there are no feature maps to show.")
        return
    l, n, m = st.columns([4, 2, 2])
    with l:
        layer = _layer_select(ctx, choices)
    with n:
        top_n = remembered_slider("Channels shown (top-N by mean)", "layers_top_n", min_value=4, max_value=64,
                                  default=16, step=4)
    with m:
        cmap = remembered_select("Colormap", list(COLORMAP_NAMES), "feature_cmap", default="viridis")
    try:
        with st.spinner(f"Feature maps of {layer}…"):
            fm = cache.features_cached(ctx, layer)
    except Exception as exc:
        show_error(exc, context=f"feature maps of {layer}")
        return

    top = fm.top(top_n)
    k, u, v = fm.maps.shape
    st.subheader(f"Top {len(top)} of {k} channels at {layer} ({u}×{v} each)", anchor=False)
    low, high = end_colours(cmap)
    st.caption(f"Ranked by mean activation over the image; each map scaled to its own range: {high} = the "
               f"channel's strongest activation, {low} = its weakest.")
    looks = st.toggle("Beside each channel: what it looks for (feature visualization)", key="layers_visualize",
                      help=f"An image optimised to excite the channel as much as possible (Lucid's recipe; "
                           f"{cache.VIS_TILE['steps']} steps at {cache.VIS_TILE['size']} px). A few seconds a "
                           f"channel the first time, then kept for every photo and every session")
    for start in range(0, len(top), PER_ROW):
        for col, ch in zip(st.columns(PER_ROW), top[start:start + PER_ROW]):
            col.image(tile(fm.maps[ch], cmap, TILE_PX), width="stretch", caption=f"ch {ch} · mean {fm.mean[ch]:.3f}")
            if looks:
                with col:
                    try:
                        col.image(cache.visualization_cached(ctx, layer, ch), width="stretch",
                                  caption=f"ch {ch} looks for")
                    except Exception as exc:
                        show_error(exc, context=f"feature visualization of channel {ch}")

    st.subheader("One channel, enlarged and projected to pixels", anchor=False)
    order = [int(c) for c in fm.order]
    reset_when_changed("channel", ctx.model_key, layer)  # (and a new photo: "channel" is image-bound)
    channel = remembered_select("Channel", order, "channel", default=order[0],
                                depends_on=(ctx.model_key, layer, ctx.image.digest),
                                format_func=lambda c: f"ch {c} · mean {fm.mean[c]:.3f} (rank {order.index(c) + 1})",
                                help="Ordered by mean activation; type a number to find any channel")
    _selected_channel(ctx, fm, layer, int(channel), cmap)

    patches_view.section(ctx, layer, int(channel), order)

    st.subheader("Mean activation per channel", anchor=False)
    st.plotly_chart(_mean_chart(fm, top, int(channel)), width="stretch", key="layers_means",
                    config={"displaylogo": False})

    st.subheader("Channel-mean map at each stage", anchor=False)
    st.caption(f"From the input to the head: the grid gets coarser and the features more abstract. Each map is the "
               f"mean over the layer's channels, scaled to its own range: {high} = strongest, {low} = weakest.")
    _stage_strip(ctx, cmap)

    st.subheader("First-layer filters", anchor=False)
    try:
        tiles = cache.filters_cached(ctx)
        st.image(filter_mosaic(tiles), caption=f"{tiles.shape[0]} filters, {tiles.shape[1]}×{tiles.shape[2]} "
                                                "RGB, each scaled to its own range")
    except Exception as exc:
        show_error(exc, context="first-layer filters")


photo_page("Layers",
           "What each layer responds to (Zeiler & Fergus 2014): its strongest feature maps, one of them "
           "projected back to pixels, and how the picture turns into features stage by stage.", main)
