"""Starting an audit from the Audit page: the buttons' callbacks (a fresh folder in the first audits folder, the
uploaded ZIP unpacked there with the Batch caps, ``cam-explorer audit`` started in the background), resuming a
run the server lost, and the one-line reason when either cannot be done."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import streamlit as st

from cam_core.audit.paths import audit_roots, new_audit_dir, within_roots
from cam_core.audit.store import read_manifest
from cam_core.audit.upload import IMAGES, unpack_zip
from cam_core.errors import CamError
from cam_explorer.writers import duration  # noqa: F401 - re-exported for the page (one home for the format)
import models
from cam_core.registry import METHODS

from . import audit_jobs, state

_ERROR = "_audit_start_error"
OWN_PREFIX = "own:"


def default_name() -> str:
    """``upload-20261203-1405``: a new audit's suggested name."""
    return "upload-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def start_error() -> str | None:
    """Why the last Start or Resume could not be done (shown under the button), if it could not."""
    return st.session_state.get(_ERROR)


def _registry_model(model_key: str) -> tuple[str, int | None]:
    """The registry name and input size of the sidebar's model (an own-weights model cannot be audited here)."""
    if model_key.startswith(OWN_PREFIX) or model_key == "none":
        raise CamError("an audit started here uses one of the registered models; choose one in the sidebar "
                       "(or run `cam-explorer audit` for your own weights)")
    name, _, size = model_key.partition("@")
    return name, int(size) if size else None


def start_from_upload(model_key: str) -> None:
    """(Start button.) A new audit on the uploaded ZIP with the chosen methods, opened on the page at once."""
    ss = st.session_state
    ss[_ERROR] = None
    upload = ss.get("w_audit_new_zip")
    methods = list(ss.get("w_audit_new_methods") or [])
    name = str(ss.get("w_audit_new_name") or "").strip()
    folder: Path | None = None
    try:
        if upload is None:
            raise CamError("choose a ZIP of images first")
        if not methods:
            raise CamError("choose at least one method")
        model, size = _registry_model(model_key)
        folder = new_audit_dir(name)
        data = unpack_zip(upload.getvalue(), folder, upload.name)
        audit_jobs.start(folder, audit_jobs.command(folder, data, model, methods, input_size=size))
    except CamError as exc:
        if folder is not None and not (folder / audit_jobs.JOB).exists():
            shutil.rmtree(folder, ignore_errors=True)  # the fresh folder made just now, nothing else
        ss[_ERROR] = str(exc)
        return
    _open(name)


def resume(folder: Path) -> None:
    """(Resume button.) Run the same audit again on the same folder: the store goes on where it stopped. The
    command is rebuilt from the manifest (a command line read from disk is never run)."""
    ss = st.session_state
    ss[_ERROR] = None

    manifest = read_manifest(folder) or {}
    data = folder / IMAGES
    model = manifest.get("model")
    methods = list(manifest.get("methods") or {})
    if (not within_roots(folder, audit_roots()) or not data.is_dir() or model not in models.SPECS
            or not methods or any(m not in METHODS for m in methods)):
        ss[_ERROR] = "this audit cannot be resumed from the app; run its command (in the report) again instead"
        return
    size = manifest.get("input_size")
    own = models.SPECS[model].input_size
    audit_jobs.start(folder, audit_jobs.command(folder, data, model, methods,
                                                input_size=size if size and size != own else None,
                                                layer=manifest.get("layer"), metrics=manifest.get("metrics") or ()))


def _open(name: str) -> None:
    """Show the audit ``name`` on the page (the picker and the typed name follow)."""
    state.remember("audit", name)
    st.session_state["w_audit_typed"] = ""
    st.session_state["w_audit_pick"] = name
