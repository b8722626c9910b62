"""CSS that keeps every label readable in a small window (1024×768, 800×900): text wraps instead of being cut.

Streamlit cuts a widget label, a toggle's text or the upload box's instructions with an ellipsis when its
column is narrow ("About" → "A…", "Signed" → "Si…"), and a button's text too ("Compare with random maps" in
half of an 800-px page); columns here wrap onto the next line before they get
that narrow. A selectbox's value cannot wrap (it is an input), so a column holding a menu of ``LONG_MENUS``
(layer, class and Walkthrough stage entries, up to ~60 characters: "stage 1 · 112×144 │ blocks.0.0 ·
DepthwiseSeparableConv, 16 ch") wraps to the page's width before it is narrower than ``MENU_MIN``. Columns
holding images are left out: they scale, and a row of tiles (Layers' eight a row) that
wrapped left its last tile alone on a row, stretched to the page's width. Checked by
tests/e2e/test_fit_browser.py (no element's text wider than its box; every tile of a row the same width).
"""
from __future__ import annotations

import streamlit as st

#: The narrowest a column may get before the row wraps: a toggle with a one-word label and its "?" fits.
COLUMN_MIN = "7.5rem"
#: The narrowest a column holding a long menu may get: its box then shows ~60 characters.
MENU_MIN = "27rem"
#: Widget keys (prefixes) of the menus whose values run long.
LONG_MENUS = ("w_layer", "w_class", "w_wt_stage")
_LONG = ", ".join(f'[class*="st-key-{key}"]' for key in LONG_MENUS)

CSS = f"""
[data-testid="stHorizontalBlock"] {{ flex-wrap: wrap; }}
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:not(:has([data-testid="stImage"])) {{
  min-width: min({COLUMN_MIN}, 100%); }}
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:has({_LONG}) {{
  min-width: min({MENU_MIN}, 100%); }}
[data-testid="stFileUploaderDropzoneInstructions"] * {{ white-space: normal; overflow: visible;
  text-overflow: clip; }}
[data-testid="stWidgetLabel"] p, [data-testid="stCheckbox"] label p {{ white-space: normal; overflow-wrap: anywhere; }}
[data-testid^="stBaseButton"] {{ max-width: 100%; height: auto; }}
[data-testid^="stBaseButton"] * {{ white-space: normal; overflow: visible; text-overflow: clip; min-width: 0; }}
"""


def apply() -> None:
    """Add the CSS to the page (once per run; it draws nothing visible)."""
    st.html(f"<style>{CSS}</style>")
