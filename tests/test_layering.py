"""The layout's rules, read from the source with ``ast``: pages are widgets and layout only (no torch or numpy, no
cache of their own: engine calls are cached in ``ui/``), and the library and backbones never import Streamlit."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported(path: Path) -> set[str]:
    """Top-level package names imported anywhere in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _attributes(path: Path) -> set[str]:
    """Every dotted attribute read in the file (``st.cache_data`` …)."""
    return {ast.unparse(node) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Attribute)}


PAGES = sorted((ROOT / "pages").glob("*.py"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a_page_computes_nothing_and_caches_nothing_itself(page):
    assert not _imported(page) & {"torch", "numpy", "cv2", "torchvision"}, f"{page.name}: computation is for cam_core"
    caches = {a for a in _attributes(page) if a.endswith((".cache_data", ".cache_resource"))}
    assert not caches, f"{page.name}: {sorted(caches)}; cached engine calls belong in ui/ (ui.engine.cached)"


def test_the_library_and_backbones_never_import_streamlit():
    offenders = [str(p.relative_to(ROOT)) for package in ("cam_core", "models")
                 for p in sorted((ROOT / package).rglob("*.py")) if "streamlit" in _imported(p)]
    assert not offenders
