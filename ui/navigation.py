"""The app's pages: one table read by ``app.py`` (to register them) and ``serve.py`` (to answer deep links).

No Streamlit import: the web server reads the URL paths before any script runs.
"""
from __future__ import annotations

from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"

# (file, title, icon, url path), in menu order; Inspect is the home page. A page appears once its file exists.
PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("inspect.py", "Inspect", ":material/visibility:", "inspect"),
    ("compare.py", "Compare", ":material/compare:", "compare"),
    ("layers.py", "Layers", ":material/layers:", "layers"),
    ("occlusion.py", "Occlusion", ":material/grid_on:", "occlusion"),
    ("invariance.py", "Invariance", ":material/rotate_right:", "invariance"),
    ("batch.py", "Batch", ":material/photo_library:", "batch"),
    ("audit.py", "Audit", ":material/fact_check:", "audit"),
    ("walkthrough.py", "Walkthrough", ":material/route:", "walkthrough"),
    ("evolution.py", "Evolution", ":material/timeline:", "evolution"),
    ("learn.py", "Learn", ":material/school:", "learn"),
)
HOME = "inspect.py"


def present() -> list[tuple[str, str, str, str]]:
    """The pages whose file exists, in menu order."""
    return [row for row in PAGES if (PAGES_DIR / row[0]).is_file()]


def home_path() -> str:
    """The home page's own URL path (``inspect``); Streamlit serves that page at the root only."""
    return next(row[3] for row in PAGES if row[0] == HOME)


def url_paths() -> tuple[str, ...]:
    """Every page's URL path (``compare``, …): the deep links a person can open."""
    return tuple(row[3] for row in present())
