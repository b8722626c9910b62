"""Plotly figures the pages share: the top-k bar chart and the interactive heat map (hover shows the value)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from cam_core.render import COLORMAPS

#: Long side, in cells, of the heat map sent to the browser (hover values are the map's own, subsampled).
MAX_HEATMAP_CELLS = 256


def top_k_bar(predictions: Sequence[Any], highlight: int | None = None, chosen: Any = None) -> go.Figure:
    """Horizontal bar chart of predictions (``label``, ``prob``, ``class_idx``), most likely on top.

    The bar of class ``highlight`` (the one being explained) is drawn in a stronger colour. When that
    class is not among ``predictions``, ``chosen`` (its ``Prediction``) is added as a separate bar at the
    bottom, labelled with its rank outside the top, so the chart always shows the class being explained.
    """
    preds = list(predictions)
    outside = chosen is not None and highlight is not None and all(p.class_idx != highlight for p in preds)
    rows = preds + ([chosen] if outside else [])
    rows = rows[::-1]
    labels = [f"{p.label} ({p.class_idx})" for p in rows]
    if outside:
        labels[0] = f"{chosen.label} ({chosen.class_idx}) · not in top {len(preds)}"
    probs = [float(p.prob) for p in rows]
    colours = ["#d62728" if p.class_idx == highlight else "#1f77b4" for p in rows]
    fig = go.Figure(go.Bar(
        x=probs, y=labels, orientation="h", marker_color=colours,
        text=[f"{v:.1%}" if v >= 0.001 else f"{v:.2g}" for v in probs], textposition="auto",
        hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    fig.update_layout(
        height=60 + 36 * len(rows), margin=dict(l=8, r=8, t=8, b=8),
        # fitted: a top class at 3 % is a bar one can see, not a sliver of a 0–100 % axis
        xaxis=dict(range=[0, min(1.0, max(0.05, 1.2 * max(probs, default=0.0)))], tickformat=".0%", title=None),
        yaxis=dict(title=None, automargin=True),
    )
    if outside:  # a dotted rule between the top-k and the chosen class
        fig.add_hline(y=0.5, line_dash="dot", line_color="#888")
    return fig


def colorscale(cmap: str, steps: int = 11, reverse: bool = False) -> list[list[Any]]:
    """A Plotly colorscale sampled from ``cam_core.render``'s lookup table, so both views share colours."""
    lut = COLORMAPS[cmap]
    idx = np.linspace(0, 255, steps).round().astype(int)
    if reverse:
        idx = idx[::-1]
    return [[i / (steps - 1), f"rgb({lut[j, 0]},{lut[j, 1]},{lut[j, 2]})"] for i, j in enumerate(idx)]


def heatmap_figure(heatmap: Any, cmap: str, image_size: tuple[int, int] | None = None,
                   values: np.ndarray | None = None) -> go.Figure:
    """Interactive heat map; axes in the original image's pixels when ``image_size`` (w, h) is given.

    ``heatmap`` is what is coloured, in [0, 1] (an array or a ``render.DisplayMap``); ``values``, when
    given, is the map shown on hover (e.g. the max-normalised heat map behind a percentile display).
    A signed display map gets a colour bar labelled −, 0, +.
    """
    signed = bool(getattr(heatmap, "signed", False))
    hm = np.asarray(getattr(heatmap, "values", heatmap), dtype=np.float32)
    h, w = hm.shape
    step = max(1, int(np.ceil(max(h, w) / MAX_HEATMAP_CELLS)))
    small = hm[::step, ::step]
    hover = small if values is None else np.asarray(values, dtype=np.float32)[::step, ::step]
    sx = (image_size[0] / w) if image_size else 1.0
    sy = (image_size[1] / h) if image_size else 1.0
    xs = (np.arange(small.shape[1]) * step + step / 2) * sx
    ys = (np.arange(small.shape[0]) * step + step / 2) * sy
    bar = dict(thickness=12, len=0.9)
    if signed:
        bar.update(tickvals=[0.0, 0.5, 1.0], ticktext=["against", "0", "for"])
    fig = go.Figure(go.Heatmap(
        z=small, x=xs, y=ys, zmin=0.0, zmax=1.0, colorscale=colorscale(cmap), customdata=hover,
        hovertemplate="x %{x:.0f}, y %{y:.0f}<br>value %{customdata:.3f}<extra></extra>",
        colorbar=bar,
    ))
    fig.update_layout(margin=dict(l=8, r=8, t=8, b=8), height=420)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", showgrid=False)
    fig.update_xaxes(constrain="domain", showgrid=False)
    return fig
