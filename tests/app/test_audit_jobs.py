"""Background audits' state read back from the disk alone: running (rate and time left from the manifest's
counts), failed (the run's last error line), stopped (a run nobody is waiting for and whose process is gone)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from cam_core.audit.store import read_manifest, write_json_atomic
from tests import audit_sample
from ui import audit_jobs


@pytest.fixture
def folder(tmp_path):
    return audit_sample.build(tmp_path / "run1")


def _job(folder, **fields) -> None:
    write_json_atomic(folder / audit_jobs.JOB, {"argv": ["x"], "state": "running", "message": None, **fields})


def test_running_rate_and_time_left(folder):
    manifest = read_manifest(folder)
    write_json_atomic(folder / "manifest.json", {**manifest, "finished": None, "inputs": 21})
    _job(folder, pid=os.getpid(), started=time.time() - 10.0, before=2)  # 7 done, 5 of them in this run's 10 s
    s = audit_jobs.status(folder)
    assert (s.state, s.done, s.total) == ("running", 7, 21)
    assert s.rate == pytest.approx(0.5, rel=0.05) and s.left_s == pytest.approx(14 / 0.5, rel=0.05)


def test_done_when_the_manifest_is_finished(folder):
    _job(folder, pid=os.getpid(), started=time.time(), before=0)
    assert audit_jobs.status(folder).state == "done"


def test_stopped_when_the_process_is_gone(folder):
    manifest = read_manifest(folder)
    write_json_atomic(folder / "manifest.json", {**manifest, "finished": None})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _job(folder, pid=gone.pid, started=time.time(), before=0)
    s = audit_jobs.status(folder)
    assert s.state == "stopped" and "resume it" in s.message


def test_a_failing_run_says_why(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('audit: 0/3 images\\rerror: no such model\\n'); "
                                  "sys.exit(2)"]
    audit_jobs.start(folder, argv)
    audit_jobs._WATCHERS[str(folder)].join(60)
    s = audit_jobs.status(folder)
    assert (s.state, s.message) == ("failed", "error: no such model")
    assert json.loads((folder / audit_jobs.JOB).read_text())["code"] == 2


def test_not_started_from_the_app(folder):
    assert audit_jobs.status(folder) is None


def test_resume_rebuilds_the_command_from_the_manifest(tmp_path, monkeypatch):
    """Resume never runs a command read from disk: it is rebuilt from the manifest (registered model, registry
    methods, images inside the audit folder), and refused otherwise."""
    import streamlit as st

    from ui import audit_start

    root = tmp_path / "audits"
    folder = audit_sample.build(root / "run1")
    monkeypatch.setenv("CAM_EXPLORER_AUDITS", str(root))
    started: list[list[str]] = []
    monkeypatch.setattr(audit_jobs, "start", lambda f, argv: started.append(argv))
    _job(folder, argv=["rm", "-rf", "/"], pid=0, started=time.time(), before=0)  # planted: never run
    audit_start.resume(folder)  # "tiny-net" is not a registered model
    assert started == [] and "cannot be resumed" in st.session_state[audit_start._ERROR]
    manifest = read_manifest(folder)
    write_json_atomic(folder / "manifest.json", {**manifest, "model": "efficientnet_lite0", "input_size": 224})
    audit_start.resume(folder)
    assert started == [[sys.executable, "-m", "cam_explorer", "audit", str(folder / "images"), "--method", "gradcam",
                        "--out", str(folder), "--model", "efficientnet_lite0", "--batch", "16", "--layer", "conv",
                        "--metrics", "deletion"]]
