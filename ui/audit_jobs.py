"""Audits started from the app: ``cam-explorer audit`` run in the background (its own process, so the server's
sessions stay responsive), with its state on disk in the audit folder — ``job.json`` (command, process id,
start, outcome) beside the audit's own manifest, whose counts grow part by part — so progress survives a page
reload, and a run the server lost can be resumed with the same command (the store resumes where it stopped).
A thread per run waits for the process and writes its outcome. No Streamlit here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cam_core.audit.progress import PROGRESS
from cam_core.audit.store import read_manifest, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
JOB = "job.json"
LOG = "run.log"
SUMMARY = "summary.json"
#: torch threads the background run may use (it shares the machine with the app's sessions).
THREADS = max(1, (os.cpu_count() or 2) // 2)
#: The runs this server process started and still waits for (folder -> its watcher thread).
_WATCHERS: dict[str, threading.Thread] = {}


def command(folder: Path, data: Path, model: str, methods: Sequence[str], *, input_size: int | None = None,
            layer: str | None = None, metrics: Sequence[str] = (), batch: int = 16) -> list[str]:
    """The ``cam-explorer audit`` command line that audits ``data`` into ``folder``."""
    argv = [sys.executable, "-m", "cam_explorer", "audit", str(data), "--method", ",".join(methods),
            "--out", str(folder), "--model", model, "--batch", str(batch)]
    if input_size:
        argv += ["--input-size", str(input_size)]
    if layer:
        argv += ["--layer", layer]
    if metrics:
        argv += ["--metrics", ",".join(metrics)]
    return argv


def start(folder: Path, argv: list[str]) -> None:
    """Run ``argv`` in the background for the audit in ``folder``; its state goes to ``folder/job.json``."""
    manifest = read_manifest(folder) or {}
    before = int((manifest.get("counts") or {}).get("done") or 0)
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    with open(folder / LOG, "ab") as log, open(folder / SUMMARY, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    write_json_atomic(folder / JOB, {"argv": argv, "pid": proc.pid, "started": time.time(), "before": before,
                                     "state": "running", "message": None})
    watcher = threading.Thread(target=_watch, args=(folder, proc), name=f"audit-{folder.name}", daemon=True)
    _WATCHERS[str(folder)] = watcher
    watcher.start()


def _last_error(folder: Path) -> str | None:
    try:
        text = (folder / LOG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = [ln.strip() for chunk in text.splitlines() for ln in chunk.split("\r") if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or [None])[-1]


def _watch(folder: Path, proc: subprocess.Popen) -> None:
    """Wait for the run and record how it ended (exit 1 with a finished manifest: some images failed)."""
    code = proc.wait()
    job = read_job(folder) or {}
    manifest = read_manifest(folder) or {}
    finished = bool(manifest.get("finished"))
    job.update(state="done" if finished else "failed", code=code, ended=time.time(),
               message=None if finished else (_last_error(folder) or f"the audit stopped (exit code {code})"))
    write_json_atomic(folder / JOB, job)


def read_job(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / JOB).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _watched(folder: Path) -> bool:
    """True while this server's watcher still waits for the run (it records the outcome when the run ends)."""
    watcher = _WATCHERS.get(str(folder))
    return watcher is not None and watcher.is_alive()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _work(folder: Path, job: dict[str, Any]) -> tuple[float, float] | None:
    """Images per second and seconds left from the run's ``progress.json`` (cam_core.audit.progress), when this
    run wrote it."""
    try:
        saved = json.loads((folder / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if float(saved.get("updated") or 0) < float(job.get("started") or 0) or not saved.get("rate"):
        return None
    return float(saved["rate"]), float(saved.get("left_s") or 0.0)


@dataclass(frozen=True)
class Status:
    """Where a background audit stands: ``state`` running / done / failed / stopped (the server lost it), images
    done of ``total``, this run's images per second and the seconds left (None until known), the message."""

    state: str
    done: int
    total: int
    rate: float | None = None
    left_s: float | None = None
    message: str | None = None
    argv: tuple[str, ...] = ()


def status(folder: Path) -> Status | None:
    """The background run's state, from the disk only (any session, after any reload); None when the audit was
    not started from the app."""
    job = read_job(folder)
    if job is None:
        return None
    manifest = read_manifest(folder) or {}
    done = int((manifest.get("counts") or {}).get("done") or 0)
    total = int(manifest.get("inputs") or 0)
    state = job.get("state", "running")
    if state == "running" and manifest.get("finished"):
        state = "done"
    elif state == "running" and not _watched(folder) and not _alive(int(job.get("pid") or 0)):
        state = "stopped"  # neither this server nor the process is there: the run was lost
    rate = left = None
    elapsed = time.time() - float(job.get("started") or time.time())
    fresh = done - int(job.get("before") or 0)
    if state == "running" and fresh > 0 and elapsed > 0:
        rate = fresh / elapsed
        left = max(0.0, (total - done) / rate) if total else None
    live = _work(folder, job) if state == "running" else None
    if live is not None:  # the run's own figures from its work units: they move within a batch
        rate, left = live
    message = job.get("message")
    if state == "stopped":
        message = "the run stopped without finishing (the server restarted?); resume it to go on where it stopped"
    return Status(state, done, total, rate, left, message, tuple(job.get("argv") or ()))
