"""The web server: ``streamlit run serve.py`` (what ``make run`` and the Dockerfile do) serves ``app.py``.

Beside Streamlit's own routes it answers each page's URL (``/compare``) itself, so that a deep link opens
without the frontend probing ``/compare/_stcore/health`` first, and ``/inspect`` (the home page) goes to ``/``
(``ui/deep_links.py``).
"""
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from ui.deep_links import DeepLinks
from ui.navigation import home_path, url_paths

app = st.App(Path(__file__).resolve().parent / "app.py", middleware=[Middleware(DeepLinks, pages=url_paths(), home=home_path())])
