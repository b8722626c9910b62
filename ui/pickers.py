"""The pickers several pages share — method, target layer, class — all remembered in the shareable view."""
from __future__ import annotations

from typing import Any

import streamlit as st

from . import cache
from .widgets import remembered_select, show_error

#: The layer choice meaning "the model's default layer".
AUTO = "auto"
LEARN_PAGE = "pages/learn.py"


def method_picker(default: str = "gradcam") -> str:
    """A method selectbox (from ``cam_core.registry.METHODS``) with a "?" link to its Learn entry."""
    from cam_core.registry import METHODS

    col, link = st.columns([4, 1], vertical_alignment="bottom")
    method = remembered_select("Method", list(METHODS), "method", default=default,
                               format_func=lambda m: METHODS[m].display, where=col)
    with link:
        st.page_link(LEARN_PAGE, label="About", icon=":material/help:", query_params={"method": method},
                     help=f"How {METHODS[method].display} works (Learn page)")
    return method


def layer_picker(ctx: Any, needs_layer: bool = True) -> str | None:
    """Target layer selectbox: "auto (model default: …)" first, then every spatial layer with its shape.

    Returns the dotted layer name to pass to the engine (the model's default for "auto"), or ``None``
    when ``needs_layer`` is false (pixel and perturbation methods; the widget is then disabled).
    """
    default = ctx.backbone.spec.default_layer
    try:
        choices = cache.layer_choices_cached(ctx)  # grouped by stage, no pass-through/container entries
    except Exception as exc:
        show_error(exc, context="listing layers")
        choices = []
    shapes = {c.name: c for c in choices}
    options = [AUTO, *shapes]

    def label(name: str) -> str:
        if name == AUTO:
            return f"auto (model default: {default})"
        return shapes[name].label()

    choice = remembered_select("Target layer", options, "layer", default=AUTO, format_func=label,
                               disabled=not needs_layer,
                               help="Where in the network the map is taken, grouped by stage (finest grid "
                               "first); type to search"
                               if needs_layer else "This method works in pixel space: it uses no layer")
    if not needs_layer:
        return None
    return default if choice == AUTO else choice


def class_picker(ctx: Any, preds: list[Any]) -> int | None:
    """Class selectbox: "top-1 prediction" (``None``, follows the image), the top-5 with probabilities,
    then every other label (type to search all of them)."""
    categories = ctx.backbone.categories
    probs = {p.class_idx: p.prob for p in preds}
    top_ids = [p.class_idx for p in preds]
    options: list[int | None] = [None, *top_ids, *(i for i in range(len(categories)) if i not in probs)]

    def label(idx: int | None) -> str:
        if idx is None:
            return f"top-1 prediction: {preds[0].label} — {preds[0].prob:.1%}"
        if idx in probs:
            return f"{categories[idx]} ({idx}) — {probs[idx]:.1%}"
        return f"{categories[idx]} ({idx})"

    return remembered_select("Class", options, "class", default=None, format_func=label,
                             help="The top-5 come first; type to search all labels")


def overlay_controls(where_alpha: Any = None, where_cmap: Any = None) -> tuple[float, str]:
    """The shared alpha slider and colormap select (call inside an ``st.fragment``)."""
    from cam_core.render import COLORMAP_NAMES

    from .widgets import remembered_slider

    alpha = remembered_slider("Overlay alpha", "alpha", min_value=0.0, max_value=1.0, default=0.5, step=0.05,
                              where=where_alpha, help="0 shows the photo, 1 the heat map")
    cmap = remembered_select("Colormap", list(COLORMAP_NAMES), "cmap", default="jet", where=where_cmap)
    return alpha, cmap
