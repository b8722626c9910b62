"""The pickers several pages share — method, target layer, class — all remembered in the shareable view."""
from __future__ import annotations

from typing import Any

import streamlit as st

from cam_core.registry import METHODS, methods_for
from cam_core.render import COLORMAP_NAMES

from . import cache, state
from .widgets import remembered_select, remembered_slider, show_error

#: The layer choice meaning "the model's default layer".
AUTO = "auto"
#: The class choice meaning "the image's top-1 prediction" (a sentinel, not ``None``: Streamlit draws a
#: ``None`` value as an empty "Choose an option" box).
TOP1 = -1
LEARN_PAGE = "pages/learn.py"


def offered_methods(ctx: Any) -> list[str]:
    """The methods that can run on the context's model (``cam_core.registry.methods_for``)."""
    return methods_for(ctx.backbone.model)


def not_offered_note(slot: str, asked: list[str], offered: list[str], ctx: Any, instead: str, now: Any) -> None:
    """One line when methods asked for (a link, or a choice made on another model) cannot run on this one;
    it stays (through the reruns that follow) while the model and the choice ``now`` it fell back to do."""
    ss = st.session_state
    key = f"_not_offered_{slot}"
    dropped = [METHODS[m].display for m in asked if m in METHODS and m not in offered]
    if dropped:
        ss[key] = (ctx.model_key, now, f"{', '.join(dropped)} cannot run on {ctx.backbone.display} (attention "
                                       f"methods need a transformer's attention layers): {instead}.")
    held = ss.get(key)
    if held and held[:2] == (ctx.model_key, now):
        st.info(held[2], icon=":material/info:")
    elif held:
        del ss[key]


def method_picker(ctx: Any, default: str = "gradcam") -> str:
    """A select of the methods that can run on the context's model, with a link to its Learn entry; a stored
    method that cannot run here (a link, a switch from a ViT to a CNN) falls back to ``default``, said in one
    line."""
    options = offered_methods(ctx)
    asked = state.view().get("method")
    method = remembered_select("Method", options, "method", default=default,
                               format_func=lambda m: METHODS[m].display)
    not_offered_note("method", [asked] if isinstance(asked, str) else [], options, ctx,
                     f"showing {METHODS[method].display}", method)
    # under the select, not in a narrow column beside it (where a small window cut the label to "A…")
    st.page_link(LEARN_PAGE, label=f"About {METHODS[method].display}", icon=":material/help:",
                 query_params={"method": method}, help=f"How {METHODS[method].display} works (Learn page)")
    return method


def layer_picker(ctx: Any, needs_layer: bool = True, show_shapes: bool = True) -> str | None:
    """Target layer selectbox: "auto (model default: …)" first, then every spatial layer with its shape.

    Returns the dotted layer name to pass to the engine (the model's default for "auto"), or ``None``
    when ``needs_layer`` is false (pixel and perturbation methods; the widget is then disabled). Keyed to
    the model and the input's size (the shapes in the labels); ``show_shapes=False`` leaves the shapes out
    (Batch: the shapes differ from image to image).
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
        choice = shapes[name]
        if not show_shapes:
            return f"{name}  ·  {choice.info.kind}"
        return choice.label()

    depends = (ctx.model_key, choices[0].info.shape if choices and show_shapes else None,
               ctx.image.digest if show_shapes and ctx.image is not None else None)
    choice = remembered_select("Target layer", options, "layer", default=AUTO, format_func=label,
                               disabled=not needs_layer, depends_on=depends,
                               help="Where in the network the map is taken, grouped by stage (finest grid "
                               "first); type to search"
                               if needs_layer else "This method works in pixel space: it uses no layer")
    if not needs_layer:
        return None
    return default if choice == AUTO else choice


def class_depends(ctx: Any) -> tuple[Any, ...]:
    """What a class menu's options and labels depend on: the image and the model."""
    return (ctx.image.digest, ctx.model_key)


def class_picker(ctx: Any, preds: list[Any]) -> int | None:
    """Class selectbox: "top-1 prediction" (returns ``None``: follows the image), the top-5 with
    probabilities, then every other label (type to search all of them).

    Keyed to the image and the model: a new photo shows its own top-1 and top-5, and a class picked on
    another photo is not carried over (``state.IMAGE_BOUND``)."""
    state.bind_image(ctx.image.identity)
    categories = ctx.backbone.categories
    probs = {p.class_idx: p.prob for p in preds}
    top_ids = [p.class_idx for p in preds]
    options: list[int] = [TOP1, *top_ids, *(i for i in range(len(categories)) if i not in probs)]

    def label(idx: int) -> str:
        if idx == TOP1:
            return f"top-1 prediction: {preds[0].label} — {preds[0].prob:.1%}"
        if idx in probs:
            return f"{categories[idx]} ({idx}) — {probs[idx]:.1%}"
        return f"{categories[idx]} ({idx})"

    choice = remembered_select("Class", options, "class", default=TOP1, format_func=label,
                               depends_on=class_depends(ctx), help="The top-5 come first; type to search all labels")
    if choice == TOP1:
        state.remember("class", None)
        return None
    return int(choice)


def top_class_picker(ctx: Any, preds: list[Any], label: str = "Class", where: Any = None) -> int:
    """A class selectbox over the top-5 only (Occlusion, Invariance), sharing the view's class with Inspect:
    the class picked there when it is in the top-5, else the top-1. Keyed to the image and the model."""
    state.bind_image(ctx.image.identity)
    categories = ctx.backbone.categories
    probs = {p.class_idx: p.prob for p in preds}
    stored = state.view().get("class")
    choice = remembered_select(label, list(probs), "class", default=preds[0].class_idx, where=where,
                               format_func=lambda c: f"{categories[c]} ({c}) — {probs[c]:.1%}",
                               depends_on=class_depends(ctx))
    if stored is None and choice == preds[0].class_idx:
        state.remember("class", None)  # still "the top-1", so that Inspect keeps following the image
    return int(choice)


def overlay_controls(where_alpha: Any = None, where_cmap: Any = None) -> tuple[float, str]:
    """The shared alpha slider and colormap select (call inside an ``st.fragment``)."""
    alpha = remembered_slider("Overlay alpha", "alpha", min_value=0.0, max_value=1.0, default=0.5, step=0.05,
                              where=where_alpha, help="0 shows the photo, 1 the heat map")
    cmap = remembered_select("Colormap", list(COLORMAP_NAMES), "cmap", default="jet", where=where_cmap)
    return alpha, cmap
