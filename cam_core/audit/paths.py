"""Where audits may live: names resolved under the configured audits folders, and nothing outside them read.

The folders come from ``CAM_EXPLORER_AUDITS`` (several separated by ``os.pathsep``; default ``./audits``). A name a
person types or a URL carries is a relative path (``run1`` or ``team/run1``); absolute paths, ``..``, and
symlinks whose target leaves the folder are refused with a one-line message, so the app never reads elsewhere.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import CamError

ENV = "CAM_EXPLORER_AUDITS"
DEFAULT = "audits"
MANIFEST = "manifest.json"
#: An audit started from the app has this before its manifest is written (ui/audit_jobs.py).
JOB = "job.json"
# A new audit's name: letters, digits, '.', '_', '-' (one folder, no leading dot).
NEW_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


class AuditPathError(CamError):
    """An audit name that would reach outside the configured audits folders, or that names no audit."""


def audit_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The configured audits folders, resolved (symlinks followed once, here), in the order given; duplicates once."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV, "") or DEFAULT
    roots: list[Path] = []
    for part in raw.split(os.pathsep):
        part = part.strip()
        if not part:
            continue
        root = Path(part).expanduser().resolve()
        if root not in roots:
            roots.append(root)
    return roots or [Path(DEFAULT).resolve()]


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _check_name(name: str) -> tuple[str, ...]:
    """The parts of a relative audit name, or an AuditPathError saying why it is refused."""
    if not isinstance(name, str) or not name.strip():
        raise AuditPathError("audit name is empty: pick one of the audits listed")
    if "\x00" in name:
        raise AuditPathError(f"audit {name!r}: the name contains a NUL character")
    if (PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive
            or name.startswith("~")):
        raise AuditPathError(f"audit {name!r}: absolute paths are not allowed; give a name inside the audits folder")
    parts = tuple(p for p in re.split(r"[\\/]", name) if p not in ("", "."))
    if ".." in parts:
        raise AuditPathError(f"audit {name!r}: '..' is not allowed; give a name inside the audits folder")
    if not parts:
        raise AuditPathError(f"audit {name!r}: give the name of an audit folder, not the audits folder itself")
    return parts


def _roots(roots: Sequence[Path] | None) -> list[Path]:
    return [Path(r).resolve() for r in roots] if roots is not None else audit_roots()


def _where(roots: Sequence[Path]) -> str:
    return os.pathsep.join(str(r) for r in roots)


def resolve_audit(name: str, roots: Sequence[Path] | None = None) -> Path:
    """The audit folder ``name`` names in the first audits folder that has it (resolved, checked to stay inside).

    Refuses absolute names, ``..``, symlinks leading out, and folders with no ``manifest.json``; every file the
    folder holds (manifest, part files) must also resolve inside the same audits folder (see ``check_contents``).
    """
    parts = _check_name(name)
    roots = _roots(roots)
    for root in roots:
        candidate = root.joinpath(*parts)
        if not os.path.lexists(candidate):
            continue
        real = candidate.resolve()
        if not _inside(real, root):
            raise AuditPathError(f"audit {name!r}: it leads outside the audits folder {root} (a symlink?); refused")
        if not real.is_dir():
            raise AuditPathError(f"audit {name!r}: not a folder")
        if not _is_audit(real):
            raise AuditPathError(f"audit {name!r}: no {MANIFEST} in it, so it is not an audit folder")
        check_contents(real, root)
        return real
    raise AuditPathError(f"audit {name!r}: no such audit in {_where(roots)}")


def _is_audit(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or (folder / JOB).is_file()


def check_contents(folder: Path, root: Path) -> None:
    """Refuse an audit folder any of whose entries (walked without following links) resolves outside ``root``."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for entry in (*dirnames, *filenames):
            path = Path(dirpath) / entry
            if path.is_symlink() and not _inside(path.resolve(), root):
                rel = path.relative_to(folder)
                raise AuditPathError(f"audit {folder.name!r}: {rel} leads outside the audits folder {root}; refused")


def list_audits(roots: Sequence[Path] | None = None) -> list[str]:
    """The audits found in the configured folders (names as ``resolve_audit`` takes them), sorted; the first
    folder wins a name that appears in several. Looks two levels deep and never follows a link out."""
    found: dict[str, None] = {}
    for root in _roots(roots):
        if not root.is_dir():
            continue
        for name in _candidates(root):
            try:
                resolve_audit(name, [root])
            except AuditPathError:
                continue
            found.setdefault(name, None)
    return sorted(found)


def _candidates(root: Path) -> Iterable[str]:
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if _is_audit(child):
            yield child.name
        elif child.is_dir() and not child.is_symlink():
            for grand in sorted(child.iterdir()):
                if not grand.name.startswith(".") and _is_audit(grand):
                    yield f"{child.name}/{grand.name}"


def new_audit_dir(name: str, roots: Sequence[Path] | None = None) -> Path:
    """A fresh folder for a new audit called ``name`` in the first audits folder (created); refuses odd names
    and names already taken."""
    if not isinstance(name, str) or not NEW_NAME.match(name):
        raise AuditPathError(f"audit name {name!r}: use letters, digits, '.', '_' or '-' (at most 100, no '/')")
    root = _roots(roots)[0]
    folder = root / name
    if os.path.lexists(folder):
        raise AuditPathError(f"audit {name!r} already exists in {root}; pick another name")
    root.mkdir(parents=True, exist_ok=True)
    folder.mkdir()
    if not _inside(folder.resolve(), root):  # a race with someone planting a link: refuse rather than write there
        raise AuditPathError(f"audit {name!r}: it leads outside the audits folder {root}; refused")
    return folder


def within_roots(path: Path | None, roots: Sequence[Path] | None = None) -> bool:
    """True when ``path`` (resolved) lies inside one of the audits folders: the app reads nothing else."""
    if path is None:
        return False
    real = Path(path).resolve()
    return any(_inside(real, root) for root in _roots(roots))
