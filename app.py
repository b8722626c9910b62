"""CAM Explorer — the Streamlit entry point: page set-up, navigation and the shareable URL.

Served by ``streamlit run serve.py`` (``make run``; deep links then open without a 404 probe), or directly with
``streamlit run app.py``. Each page draws the shared sidebar itself (``ui.sidebar.render_sidebar``);
this file only registers the pages (the later ones only once their file exists) and keeps the URL in step.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

# Before torch is first imported: OpenMP threads that wait by sleeping, not spinning. Several browser sessions
# share the server's cores; spinning threads then stall each other (one batched forward measured 1.27 s
# spinning vs 0.076 s passive on 2 busy cores, bench notes in docs/benchmarks.md). A value you set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st

from ui import fit, navigation, presenter, state

ROOT = Path(__file__).resolve().parent


def _setup_logging() -> None:
    """Tracebacks go to the server log (stderr), never to the page."""
    log = logging.getLogger("cam_explorer")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _pages() -> list[st.Page]:
    return [st.Page(str(navigation.PAGES_DIR / file), title=title, icon=icon, url_path=url,
                    default=(file == navigation.HOME))
            for file, title, icon, url in navigation.present()]


# A local file: a material-icon favicon is fetched from fonts.gstatic.com on every page load (offline: an error).
st.set_page_config(page_title="CAM Explorer", page_icon=str(ROOT / "static" / "favicon.png"), layout="wide")
_setup_logging()
fit.apply()  # labels wrap rather than being cut in a small window
state.view()  # read the shareable view from the URL on the session's first run
presenter.apply()  # ?present=1&show=…: projector view (ui/presenter.py)
page = st.navigation(_pages())
try:
    page.run()
finally:
    state.sync_query_params()
