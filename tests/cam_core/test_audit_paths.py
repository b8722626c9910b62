"""Audit names resolve only inside the configured audits folders: each hostile name is refused with a message."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from cam_core.audit.paths import (ENV, AuditPathError, audit_roots, list_audits, new_audit_dir, resolve_audit)
from cam_core.errors import CamError


def _audit(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}", encoding="utf-8")
    (folder / "parts").mkdir()
    return folder


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "audits"
    outside = tmp_path / "secret"
    _audit(root / "run1")
    _audit(root / "team" / "run2")
    _audit(outside / "stolen")
    (outside / "passwd").write_text("root:x:0:0", encoding="utf-8")
    return {"root": root, "outside": outside, "tmp": tmp_path}


def test_roots_from_environment_several_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert audit_roots({ENV: f"{a}{os.pathsep}{b}{os.pathsep}{a}"}) == [a.resolve(), b.resolve()]
    monkeypatch.chdir(tmp_path)
    assert audit_roots({}) == [tmp_path.resolve() / "audits"]
    assert audit_roots({ENV: ""}) == [tmp_path.resolve() / "audits"]


def test_plain_and_nested_names_resolve(layout: dict[str, Path]) -> None:
    root = layout["root"]
    assert resolve_audit("run1", [root]) == (root / "run1").resolve()
    assert resolve_audit("team/run2", [root]) == (root / "team" / "run2").resolve()
    assert list_audits([root]) == ["run1", "team/run2"]


def test_second_folder_is_searched(layout: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "more"
    _audit(other / "run3")
    assert resolve_audit("run3", [layout["root"], other]) == (other / "run3").resolve()
    assert list_audits([layout["root"], other]) == ["run1", "run3", "team/run2"]


@pytest.mark.parametrize("name", ["../secret/stolen", "run1/../../secret/stolen", "..", "team/..",
                                  "..\\secret\\stolen"])
def test_dot_dot_refused(layout: dict[str, Path], name: str) -> None:
    with pytest.raises(AuditPathError, match=r"'\.\.' is not allowed"):
        resolve_audit(name, [layout["root"]])


def test_absolute_paths_refused(layout: dict[str, Path]) -> None:
    for name in (str(layout["outside"] / "stolen"), str(layout["root"] / "run1"), "/etc", "C:\\Windows", "~/x"):
        with pytest.raises(AuditPathError, match="absolute paths are not allowed"):
            resolve_audit(name, [layout["root"]])


def test_symlinked_audit_pointing_out_refused(layout: dict[str, Path]) -> None:
    root = layout["root"]
    (root / "link").symlink_to(layout["outside"] / "stolen", target_is_directory=True)
    (root / "team" / "deep").symlink_to(layout["outside"], target_is_directory=True)
    with pytest.raises(AuditPathError, match="leads outside the audits folder"):
        resolve_audit("link", [root])
    with pytest.raises(AuditPathError, match="leads outside the audits folder"):
        resolve_audit("team/deep/stolen", [root])
    assert list_audits([root]) == ["run1", "team/run2"]  # never listed


def test_symlink_inside_audit_pointing_out_refused(layout: dict[str, Path]) -> None:
    root = layout["root"]
    (root / "run1" / "parts" / "part-00000.parquet").symlink_to(layout["outside"] / "passwd")
    with pytest.raises(AuditPathError, match=r"parts/part-00000\.parquet leads outside"):
        resolve_audit("run1", [root])


def test_symlink_staying_inside_is_fine(layout: dict[str, Path]) -> None:
    root = layout["root"]
    (root / "alias").symlink_to(root / "run1", target_is_directory=True)
    assert resolve_audit("alias", [root]) == (root / "run1").resolve()


def test_missing_and_not_an_audit(layout: dict[str, Path]) -> None:
    root = layout["root"]
    (root / "plain").mkdir()
    with pytest.raises(AuditPathError, match="no such audit"):
        resolve_audit("nope", [root])
    with pytest.raises(AuditPathError, match="no manifest.json"):
        resolve_audit("plain", [root])
    for empty in ("", "  ", ".", "./"):
        with pytest.raises(AuditPathError):
            resolve_audit(empty, [root])
    with pytest.raises(AuditPathError, match="NUL"):
        resolve_audit("run1\x00", [root])
    assert issubclass(AuditPathError, CamError)  # pages and the CLI show it as one line


def test_new_audit_dir(layout: dict[str, Path], tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    made = new_audit_dir("mine-1", [fresh, layout["root"]])
    assert made == fresh / "mine-1" and made.is_dir()
    for bad in ("../x", "a/b", ".hidden", "", "x" * 101, "/abs"):
        with pytest.raises(AuditPathError, match="use letters"):
            new_audit_dir(bad, [fresh])
    with pytest.raises(AuditPathError, match="already exists"):
        new_audit_dir("mine-1", [fresh])


def test_within_roots(layout: dict[str, Path]) -> None:
    from cam_core.audit.paths import within_roots

    root = layout["root"]
    assert within_roots(root / "run1" / "images", [root])
    assert not within_roots(layout["outside"] / "passwd", [root])
    assert not within_roots(root / ".." / "secret", [root]) and not within_roots(None, [root])
    (root / "out").symlink_to(layout["outside"], target_is_directory=True)
    assert not within_roots(root / "out" / "passwd", [root])
