"""A background audit's status takes its rate and time left from the run's progress.json (work units, moving
within a batch) when this run wrote it, and falls back to the manifest's part counts otherwise."""
from __future__ import annotations

import os
import time

from cam_core.audit.progress import PROGRESS
from cam_core.audit.store import write_json_atomic
from ui import audit_jobs


def test_status_reads_the_runs_work_units(tmp_path):
    started = time.time() - 100
    write_json_atomic(tmp_path / "manifest.json", {"inputs": 10, "counts": {"done": 0}, "finished": None})
    write_json_atomic(tmp_path / audit_jobs.JOB, {"pid": os.getpid(), "started": started, "before": 0,
                                                  "state": "running"})
    now = audit_jobs.status(tmp_path)
    assert now.state == "running" and now.rate is None  # no part yet, no progress.json: nothing known
    write_json_atomic(tmp_path / PROGRESS, {"rate": 0.02, "left_s": 450.0, "updated": time.time()})
    now = audit_jobs.status(tmp_path)
    assert (now.rate, now.left_s) == (0.02, 450.0)
    write_json_atomic(tmp_path / PROGRESS, {"rate": 0.02, "left_s": 450.0, "updated": started - 5})  # older run
    assert audit_jobs.status(tmp_path).rate is None
