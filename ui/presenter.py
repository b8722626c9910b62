"""Presenter mode: a link like ``?present=1&show=alpha,cmap`` opens a view for a projector — sidebar gone, type
enlarged, and of the page's controls only those the link names (TensorFlow Playground's hide-controls idea).

The names in ``show`` are the view keys of ``ui.state`` (``alpha``, ``cmap``, ``wt_temp`` …): a remembered widget's
key is ``w_NAME`` or ``w_NAME@…``, and Streamlit marks its container with the class ``st-key-w_NAME…``. What the link
asks for is kept in the session, so moving between pages stays in presenter mode. The CSS lives here only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import streamlit as st

_SESSION_KEY = "_presenter"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
BASE_PX = 20  # type size on a projector (Streamlit's own is 16)


@dataclass(frozen=True)
class Presenter:
    """Presenter mode is on; ``show``: the controls left visible (view keys)."""

    show: tuple[str, ...] = ()


def parse(params: dict[str, str]) -> Presenter | None:
    """Presenter mode from a link's query parameters, or ``None``; names that are not plain keys are dropped."""
    if str(params.get("present", "")).strip().lower() not in ("1", "true", "yes", "on"):
        return None
    names = [n.strip() for n in str(params.get("show", "")).split(",")]
    return Presenter(tuple(dict.fromkeys(n for n in names if _NAME.match(n))))


def css(presenter: Presenter) -> str:
    """The style sheet of presenter mode (see the module docstring)."""
    shown = ", ".join(f'.stElementContainer[class*="st-key-w_{n}"]' for n in presenter.show)
    keep = f"{shown} {{ display: block !important; }}" if shown else ""
    return f"""<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
[data-testid="stSidebarNav"], header [data-testid="stToolbar"] {{ display: none !important; }}
html {{ font-size: {BASE_PX}px; }}
[data-testid="stMainBlockContainer"] {{ max-width: 100%; padding: 1rem 1.2rem; }}
[data-testid="stMain"] {{ overflow-x: hidden; }}
h1, h2, h3, label, [data-testid="stWidgetLabel"] p {{ overflow-wrap: anywhere; word-break: break-word;
  white-space: normal !important; }}
[data-testid="stPageLink"] a, [data-testid="stPageLink"] p, [data-testid="stPageLink"] span {{
  white-space: normal !important; overflow: visible !important; max-width: none !important; }}
.stElementContainer[class*="st-key-w_"] {{ display: none !important; }}
{keep}
</style>"""


def current() -> Presenter | None:
    """Presenter mode for this session: read from the link on the first run that has one, then remembered."""
    found = parse(dict(st.query_params))
    if found is not None:
        st.session_state[_SESSION_KEY] = found
    return st.session_state.get(_SESSION_KEY)


def apply() -> Presenter | None:
    """Put this run in presenter mode when the link (or an earlier run of the session) asked for it."""
    presenter = current()
    if presenter is not None:
        st.html(css(presenter))
    return presenter
