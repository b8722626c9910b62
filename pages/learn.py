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


#: How a CNN gets from pixels to a prediction, each concept linked to the Walkthrough step that shows it with the
#: real numbers (``wt_step`` opens the page at the first stage of that kind; ``#softmax`` is its last section).
CONCEPTS: tuple[tuple[str, str, str], ...] = (
    ("Convolution", "wt_step=conv",
     "each output number is a weighted sum of a small patch of the input: the kernel's weights times the pixels, "
     "plus a bias."),
    ("Receptive field", "wt_step=conv",
     "the part of the photo one position depends on; it grows with every kernel and stride on the way."),
    ("Batch norm", "wt_step=norm",
     "each channel shifted and scaled by statistics learned in training — or folded into the kernel."),
    ("Activation", "wt_step=activation",
     "a fixed function applied to every number (ReLU keeps positives, ReLU6 also caps at 6)."),
    ("Pooling", "wt_step=pooling", "a window's largest or average value: a smaller map, the same channels."),
    ("Logits, softmax and temperature", "wt_step=conv#softmax",
     "the last layer's weighted sums become probabilities; dividing by a temperature sharpens or flattens them."),
)


def _concepts() -> None:
    with st.container(border=True):
        st.subheader("From pixels to prediction: each step on your own photo", anchor="concepts")
        st.markdown("\n".join(f"- **{name}** — {text} [See it in the Walkthrough](/walkthrough?{link})"
                               for name, link, text in CONCEPTS))


def main() -> None:
    # No photo or model pickers here: this page uses neither (the navigation stays in the sidebar).
    st.title("Learn", anchor=False)
    st.write("How each method turns a classifier's decision into a picture. Notation: input $x$, class score "
             "$y^c$ (before softmax), activations $A^k$ of feature map $k$ at the target layer, "
             "$Z$ = number of positions in a map.")
    _concepts()
    picked = st.query_params.get("method")
    order = list(METHODS)
    if picked in METHODS:
        order.remove(picked)
        order.insert(0, picked)
    st.markdown(" · ".join(f"[{METHODS[n].display}](#{anchor(n)})" for n in METHODS))
    for name in order:
        _section(METHODS[name], highlighted=(name == picked))


main()
