"""Plotly figures the pages share: the top-k bar chart and the interactive heat map (hover shows the value)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

#: Long side, in cells, of the heat map sent to the browser (hover values are the map's own, subsampled).
MAX_HEATMAP_CELLS = 256


def top_k_bar(predictions: Sequence[Any], highlight: int | None = None) -> go.Figure:
    """Horizontal bar chart of predictions (``label``, ``prob``, ``class_idx``), most likely on top.

    The bar of class ``highlight`` (the one being explained) is drawn in a stronger colour.
    """
    preds = list(predictions)[::-1]
    labels = [f"{p.label} ({p.class_idx})" for p in preds]
    probs = [float(p.prob) for p in preds]
    colours = ["#d62728" if p.class_idx == highlight else "#1f77b4" for p in preds]
    fig = go.Figure(go.Bar(
        x=probs, y=labels, orientation="h", marker_color=colours,
        text=[f"{v:.1%}" for v in probs], textposition="auto",
        hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    fig.update_layout(
        height=60 + 36 * len(preds), margin=dict(l=8, r=8, t=8, b=8),
        xaxis=dict(range=[0, 1], tickformat=".0%", title=None), yaxis=dict(title=None),
    )
    return fig


def colorscale(cmap: str, steps: int = 11) -> list[list[Any]]:
    """A Plotly colorscale sampled from ``cam_core.render``'s lookup table, so both views share colours."""
    from cam_core.render import COLORMAPS

    lut = COLORMAPS[cmap]
    idx = np.linspace(0, 255, steps).round().astype(int)
    return [[i / (steps - 1), f"rgb({lut[j, 0]},{lut[j, 1]},{lut[j, 2]})"] for i, j in enumerate(idx)]


def heatmap_figure(heatmap: np.ndarray, cmap: str, image_size: tuple[int, int] | None = None) -> go.Figure:
    """Interactive heat map in [0, 1]; axes in the original image's pixels when ``image_size`` (w, h) is given."""
    hm = np.asarray(heatmap, dtype=np.float32)
    h, w = hm.shape
    step = max(1, int(np.ceil(max(h, w) / MAX_HEATMAP_CELLS)))
    small = hm[::step, ::step]
    sx = (image_size[0] / w) if image_size else 1.0
    sy = (image_size[1] / h) if image_size else 1.0
    xs = (np.arange(small.shape[1]) * step + step / 2) * sx
    ys = (np.arange(small.shape[0]) * step + step / 2) * sy
    fig = go.Figure(go.Heatmap(
        z=small, x=xs, y=ys, zmin=0.0, zmax=1.0, colorscale=colorscale(cmap),
        hovertemplate="x %{x:.0f}, y %{y:.0f}<br>value %{z:.3f}<extra></extra>",
        colorbar=dict(thickness=12, len=0.9),
    ))
    fig.update_layout(margin=dict(l=8, r=8, t=8, b=8), height=420)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", showgrid=False)
    fig.update_xaxes(constrain="domain", showgrid=False)
    return fig
