"""The Walkthrough page's cached engine calls and its pictures (photos with a box, maps one clicks, small grids of
numbers, the activation curve, the softmax bars): what ``pages/walkthrough.py`` lays out."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from cam_core.walkthrough import token_attention, walk
from ui import engine

PHOTO_PX = 300
WALKS_KEPT = 4  # one forward pass with every stage kept is tens of MB: a few photos per server


def walk_cached(ctx: Any) -> Any:
    """Every stage of the photo's forward pass (``cam_core.walkthrough.walk``), once per photo and model."""
    return engine.cached(ctx, "walkthrough", walk, entries=WALKS_KEPT, _model=ctx.backbone.model, _x=ctx.x)


def tokens_cached(ctx: Any) -> Any:
    """A transformer's patch grid and per-block attention (``token_attention``), once per photo and model."""
    return engine.cached(ctx, "token_attention", token_attention, entries=WALKS_KEPT, _model=ctx.backbone.model,
                         _x=ctx.x)


def enlarged(rgb: np.ndarray, width: int = PHOTO_PX) -> Image.Image:
    """An H×W×3 picture (uint8, or float in [0, 1]) scaled up by a whole factor to about ``width``, pixels kept
    sharp (a 3×3 kernel must stay nine squares)."""
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(rgb)
    scale = max(1, round(width / max(img.width, 1)))
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def with_box(rgb: np.ndarray, box: Any, colour: str = "#ff2b2b") -> Image.Image:
    """The photo enlarged to about ``PHOTO_PX`` with ``box`` (input pixels, inclusive) outlined."""
    img = Image.fromarray(rgb).convert("RGB")
    scale = max(1, round(PHOTO_PX / img.width))
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    ImageDraw.Draw(img).rectangle([box.left * scale, box.top * scale, (box.right + 1) * scale - 1,
                                   (box.bottom + 1) * scale - 1], outline=colour, width=max(2, scale))
    return img


def map_figure(plane: np.ndarray, row: int, col: int, title: str, height: int = 420) -> go.Figure:
    """A map as a heatmap with an invisible point on every cell (what a click selects) and the chosen cell ringed."""
    h, w = plane.shape
    fig = go.Figure(go.Heatmap(z=plane, colorscale="Viridis", showscale=True, hoverinfo="skip",
                               colorbar=dict(thickness=10)))
    rows, cols = np.mgrid[0:h, 0:w]
    cell = max(2, min(24, int((height - 40) / max(h, w))))  # no bigger than a cell: a click picks that cell
    fig.add_trace(go.Scatter(x=cols.ravel(), y=rows.ravel(), mode="markers", marker=dict(size=cell, opacity=0),
                             customdata=plane.ravel(), showlegend=False,
                             hovertemplate="row %{y}, col %{x}<br>value %{customdata:.4g}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[col], y=[row], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(size=14, symbol="square-open", color="#ff2b2b", line=dict(width=3))))
    fig.update_layout(height=height, margin=dict(l=4, r=4, t=28, b=4), title=dict(text=title, font=dict(size=13)),
                      xaxis=dict(showgrid=False, constrain="domain", range=[-0.5, w - 0.5]),
                      yaxis=dict(range=[h - 0.5, -0.5], scaleanchor="x", showgrid=False, constrain="domain"),
                      clickmode="event+select", dragmode=False)
    return fig


def values_figure(values: np.ndarray, title: str) -> go.Figure:
    """A small grid of numbers (a pooling window, a kernel slice) with each value written in its cell; NaN is
    padding."""
    text = [["pad" if np.isnan(v) else f"{v:.3g}" for v in row] for row in values]
    fill = np.nanmin(values) if np.isfinite(values).any() else 0
    fig = go.Figure(go.Heatmap(z=np.nan_to_num(values, nan=fill), text=text, texttemplate="%{text}",
                               colorscale="Viridis", showscale=False, hoverinfo="skip"))
    side = 60 + 38 * values.shape[0]
    fig.update_layout(height=min(side, 320), margin=dict(l=4, r=4, t=28, b=4),
                      title=dict(text=title, font=dict(size=13)),
                      xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed"))
    return fig


def activation_figure(step: Any) -> go.Figure:
    """The activation function's curve with this position's (input, output) marked."""
    fig = go.Figure(go.Scatter(x=step.xs, y=step.ys, mode="lines", name=step.function, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[step.x], y=[step.y], mode="markers+text", text=[f"  ({step.x:.3g}, {step.y:.3g})"],
                             textposition="middle right", marker=dict(size=12, color="#ff2b2b"), showlegend=False))
    fig.update_layout(height=280, margin=dict(l=8, r=8, t=28, b=8), title=dict(text=step.function, font=dict(size=13)),
                      xaxis=dict(title="input"), yaxis=dict(title="output"), showlegend=False)
    return fig


def softmax_figure(top: Sequence[tuple[int, float]], labels: Sequence[str], logits: Any) -> go.Figure:
    """The top classes' probabilities as horizontal bars (largest on top), each bar's logit on hover."""
    fig = go.Figure(go.Bar(x=[p for _, p in top][::-1], y=list(labels)[::-1], orientation="h",
                           text=[f"{p:.1%}" for _, p in top][::-1], textposition="auto",
                           customdata=[float(logits[i]) for i, _ in top][::-1],
                           hovertemplate="%{y}: %{x:.2%}, logit %{customdata:.3f}<extra></extra>"))
    fig.update_layout(height=250, margin=dict(l=8, r=8, t=8, b=8), xaxis=dict(range=[0, 1], tickformat=".0%"))
    return fig
