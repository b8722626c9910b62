"""The layout's rules, read from the source with ``ast``. The library stays a library: no module of ``cam_core``
imports ``models`` or the application (``cam_explorer``, Streamlit, ``ui``, ``pages``), except the lazy hand-over in
``cam_core/__main__.py`` that keeps ``python -m cam_core``; the backbones never import Streamlit; pages are widgets
and layout only (no torch or numpy, no cache of their own: engine calls are cached in ``ui/``)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CAM_CORE = ROOT / "cam_core"
APPLICATION = ("models", "cam_explorer", "streamlit", "ui", "pages")


def _imports(path: Path) -> list[tuple[str, int]]:
    """(top-level module, line) of every import statement in ``path``, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def test_cam_core_imports_no_application_module():
    offenders = [f"{path.relative_to(CAM_CORE.parent)}:{line} imports {name}"
                 for path in sorted(CAM_CORE.rglob("*.py")) if path.name != "__main__.py"
                 for name, line in _imports(path) if name in APPLICATION]
    assert offenders == []


def test_the_hand_over_imports_the_cli_only_when_run():
    tree = ast.parse((CAM_CORE / "__main__.py").read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(not (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("cam_explorer"))
               for n in top_level)
    assert ("cam_explorer", ) == tuple({name for name, _ in _imports(CAM_CORE / "__main__.py")} & set(APPLICATION))


def test_the_backbones_never_import_streamlit():
    assert [p.name for p in sorted((ROOT / "models").rglob("*.py"))
            if any(name in ("streamlit", "ui", "pages") for name, _ in _imports(p))] == []


@pytest.mark.parametrize("page", sorted((ROOT / "pages").glob("*.py")), ids=lambda p: p.name)
def test_a_page_computes_nothing_and_caches_nothing_itself(page):
    computing = {name for name, _ in _imports(page)} & {"torch", "numpy", "cv2", "torchvision"}
    assert not computing, f"{page.name} imports {sorted(computing)}: computation is for cam_core"
    caches = {ast.unparse(node) for node in ast.walk(ast.parse(page.read_text(encoding="utf-8")))
              if isinstance(node, ast.Attribute) and node.attr in ("cache_data", "cache_resource")}
    assert not caches, f"{page.name}: {sorted(caches)}; cached engine calls belong in ui/ (ui.engine.cached)"
