"""The top patches' background passes (ui/patch_jobs.py): one pass per key however many ask while it runs, its
progress and time left, its speed kept for the next estimate, a failure as one line."""
from __future__ import annotations

import threading

from ui import patch_jobs
from ui.engine import ENGINE_CALLS


def _wait(job) -> None:
    for _ in range(200):
        if job.finished:
            return
        threading.Event().wait(0.05)
    raise AssertionError("the pass did not end")


def test_one_pass_per_key_progress_and_speed():
    release = threading.Event()
    halfway = threading.Event()

    def work(progress):
        progress(2, 4)
        halfway.set()
        release.wait(10)
        progress(4, 4)
        return 4, 1

    key, speed = ("audit-a", "layer", "model", 64), ("model", 64, "cpu")
    before = ENGINE_CALLS["top_patches"]
    job = patch_jobs.start(key, 4, work, speed)
    assert halfway.wait(10)
    assert patch_jobs.start(key, 4, lambda p: (0, 0), speed) is job  # asked again while it runs: the same pass
    assert ENGINE_CALLS["top_patches"] == before + 1
    assert (job.done, job.total, job.finished) == (2, 4, False) and job.left_s is not None and job.left_s >= 0
    release.set()
    _wait(job)
    assert (job.passed, job.unread, job.error) == (4, 1, None) and job.left_s is None
    assert patch_jobs.seconds_per_image(speed) > 0
    patch_jobs.forget(key)
    assert patch_jobs.status(key) is None


def test_a_failure_is_one_line_and_a_new_click_starts_again():
    def work(progress):
        raise ValueError("layer 'x' has no spatial feature maps\nsecond line")

    key = ("audit-b", "x", "model", 64)
    job = patch_jobs.start(key, 3, work)
    _wait(job)
    assert job.error == "layer 'x' has no spatial feature maps"
    again = patch_jobs.start(key, 3, lambda p: (3, 0))
    assert again is not job
    _wait(again)
    assert again.error is None and again.passed == 3
