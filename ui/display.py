"""How maps are shown on every page: display scaling (percentile, signed), the colour legend, and the
deconvnet checkerboard note. The numbers come from ``cam_core.render``; this module lays out widgets.
"""
from __future__ import annotations

import html
from typing import Any

import streamlit as st

from cam_core.render import CHECKERBOARD_NOTE, CHECKERBOARD_THRESHOLD, COLORMAPS, DIVERGING, legend as legend_text

from . import state
from .cache import checkerboard_cached
from .widgets import remembered_select

#: Display percentiles offered (100 = the plain maximum, as ``Explanation.heatmap`` is normalised).
PERCENTILES = (99.0, 99.5, 99.9, 100.0)
DEFAULT_PERCENTILE = 99.0


def display_controls(where_scale: Any = None, where_signed: Any = None) -> tuple[float, bool]:
    """The display-scale select and the signed toggle, both remembered in the shareable view."""
    pct = remembered_select(
        "Display scale", list(PERCENTILES), "display_pct", default=DEFAULT_PERCENTILE,
        format_func=lambda q: "max" if q >= 100 else f"{q:g}th percentile", where=where_scale,
        help="The colour scale's top end. A percentile keeps one hot pixel from turning the rest dark; "
             "the maps you download (.npy) stay max-normalised")
    target = where_signed if where_signed is not None else st
    signed = bool(target.toggle("Signed", value=bool(state.view().get("signed", False)), key="w_signed",
                                help="Show evidence against the class too, centred on zero with a diverging "
                                     "colormap (blue − · white 0 · red +)"))
    state.remember("signed", signed)
    return float(pct), signed


def map_cmap(cmap: str, signed: bool) -> str:
    """The colormap a map is drawn with: the chosen one, or a diverging one (coolwarm) for a signed map."""
    return cmap if not signed or cmap in DIVERGING else "coolwarm"


def target_label(exp: Any, categories: Any) -> str:
    """What an explanation explains, in words: ``"tabby (281)"`` or ``"channel 7 of blocks.5"``."""
    if exp.channel is not None:
        return f"channel {exp.channel} of {exp.layer}"
    if exp.class_idx is not None:
        return f"{categories[exp.class_idx]} ({exp.class_idx})"
    return "the explained output"


def _gradient_css(cmap: str, steps: int = 11) -> str:
    """A CSS linear-gradient through the colormap's lookup table (the same colours as the maps)."""
    lut = COLORMAPS[cmap]
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in
                      (lut[round(i * 255 / (steps - 1))] for i in range(steps)))
    return f"linear-gradient(to right, {stops})"


def legend(where: Any, cmap: str, label: str, shown: Any, scale_note: str | None = None) -> None:
    """A colour strip with its meaning and how the map was scaled, e.g.
    ``red = strongest evidence for tabby (281) · dark blue = none — scaled to its 99th percentile``.
    ``scale_note`` replaces the scaling part (e.g. for a grid where each map has its own scale)."""
    target = where if where is not None else st
    text = f"{legend_text(cmap, label, signed=shown.signed)} — {scale_note or shown.caption()}"
    target.markdown(
        f'<div class="cam-legend" role="img" aria-label="{html.escape(text)}">'
        f'<div style="height:10px;border-radius:2px;background:{_gradient_css(cmap)}"></div>'
        f'<div style="font-size:0.8rem;opacity:0.75;margin-top:2px">{html.escape(text)}</div></div>',
        unsafe_allow_html=True)


def checkerboard_note(where: Any, exp: Any) -> None:
    """Explain deconvnet's grid pattern where it appears (measured on the map, not assumed from the method)."""
    if checkerboard_cached(exp) > CHECKERBOARD_THRESHOLD:
        target = where if where is not None else st
        target.info(CHECKERBOARD_NOTE, icon=":material/grid_4x4:")


def results_slot(page: str, *identity: Any) -> Any:
    """A container for a page's results, placed before they are computed; fill it afterwards (``with slot:``).

    ``identity`` is what the results describe (model, device, image digest, method, layer, class,
    parameters…). When it differs from what this session last drew on ``page``, the old results leave the
    screen now: Streamlit would otherwise keep them, greyed, under the new photo's title for as long as the
    new ones take (an occlusion or Score-CAM run: seconds to minutes). The same identity (a rerun; alpha or
    colormap move in a fragment and never get here) leaves them in place, without a flicker.

    How: two neighbouring places, one a container, the other an empty element. The browser keeps a
    container's old children until new ones replace them, and an ``st.empty`` emptied and refilled within
    one flush reaches it as just the container; so a new identity swaps the places instead: the old
    results' place gets an empty element (which clears it), the new ones start in the other, empty place.
    """
    ss = st.session_state
    key, place = f"_results_shown_{page}", f"_results_place_{page}"
    if ss.get(key) != identity:
        ss[place] = 1 - ss.get(place, 0)
    ss[key] = identity
    if ss.get(place, 0):
        st.empty()
        return st.container()
    slot = st.container()
    st.empty()
    return slot
