"""The Audit page's charts: the confusion matrix as a Plotly heat map (counts written in the cells)."""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from cam_core.audit.review import Confusion

#: Classes drawn in the matrix at most (the busiest; the per-class table lists them all).
MAX_CLASSES = 40


def confusion_figure(conf: Confusion, max_classes: int = MAX_CLASSES) -> go.Figure:
    """True class down, predicted across; colour is the share of the true class's images, the text the count."""
    keep = list(range(len(conf.classes)))
    if len(keep) > max_classes:
        busy = conf.counts.sum(axis=1) + conf.counts.sum(axis=0)
        keep = sorted(int(i) for i in np.argsort(-busy, kind="stable")[:max_classes])
    counts = conf.counts[np.ix_(keep, keep)]
    # Plotly reads tags in tick text (<b>, <a href>): labels are shown as written, escaped
    labels = [html.escape(conf.classes[i][1]) for i in keep]
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(
        z=share, x=labels, y=labels, text=counts, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text} images<extra></extra>",
        colorbar=dict(title="share", thickness=12)))
    fig.update_layout(margin=dict(l=8, r=8, t=8, b=8), height=max(260, 40 + 26 * len(labels)),
                      xaxis_title="predicted", yaxis_title="true")
    fig.update_yaxes(autorange="reversed")
    return fig
