"""The library stays a library: no module of ``cam_core`` imports ``models`` or the application
(``cam_explorer``), except the lazy hand-over in ``cam_core/__main__.py`` that keeps ``python -m cam_core``."""
from __future__ import annotations

import ast
from pathlib import Path

CAM_CORE = Path(__file__).resolve().parents[2] / "cam_core"
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
