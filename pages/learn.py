"""Learn: every registered method in plain words, its formula, what it is good and bad at, and its paper.

Each method has an anchor (``#gradcam``, ``#gradcam-pp`` …); the method picker's "?" link opens this
page with ``?method=NAME`` and that method is shown first.
"""
from __future__ import annotations

import streamlit as st

from cam_core.registry import METHODS

KIND_WORDS = {
    "cam": "class activation map at a layer",
    "pixel": "pixel-space gradient",
    "perturbation": "perturbation (changes the input and watches the output)",
}


def anchor(name: str) -> str:
    """The HTML anchor of a method's section (``gradcam++`` → ``gradcam-pp``)."""
    return name.replace("++", "-pp").replace("_", "-")


def _section(spec, highlighted: bool) -> None:
    with st.container(border=True):
        st.header(spec.display, anchor=anchor(spec.name))
        if highlighted:
            st.badge("the method you picked", icon=":material/arrow_back:", color="blue")
        st.caption(f"{KIND_WORDS.get(spec.kind, spec.kind)} · `{spec.name}`")
        st.write(spec.summary)
        st.latex(spec.formula)
        good, bad = st.columns(2)
        good.success(f"**Good at:** {spec.good_at}", icon=":material/thumb_up:")
        bad.warning(f"**Bad at:** {spec.bad_at}", icon=":material/thumb_down:")
        st.markdown(f"**Paper:** [{spec.citation}]({spec.paper_url})")


def main() -> None:
    # No photo or model pickers here: this page uses neither (the navigation stays in the sidebar).
    st.title("Learn", anchor=False)
    st.write("How each method turns a classifier's decision into a picture. Notation: input $x$, class score "
             "$y^c$ (before softmax), activations $A^k$ of feature map $k$ at the target layer, "
             "$Z$ = number of positions in a map.")
    picked = st.query_params.get("method")
    order = list(METHODS)
    if picked in METHODS:
        order.remove(picked)
        order.insert(0, picked)
    st.markdown(" · ".join(f"[{METHODS[n].display}](#{anchor(n)})" for n in METHODS))
    for name in order:
        _section(METHODS[name], highlighted=(name == picked))


main()
