"""Background passes for the top patches over an audit's images: one thread per (audit, layer, model, input size),
shared by every session, so a long pass survives a click elsewhere, a page switch or a reload, and two people
asking at once start it once. Its progress (images done, rate, time left) is read by the page's live fragment;
the result is the patch file it writes into the audit folder, so nothing is returned here."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .engine import ENGINE_CALLS

Key = tuple[Any, ...]
#: A pass's work: called with ``progress(done, total)``; returns (images passed, images that could not be read).
Work = Callable[[Callable[[int, int], None]], tuple[int, int]]


@dataclass
class Job:
    """One pass: images ``done`` of ``total``, when it started, and once ``finished`` either ``error`` (one line)
    or how many images were ``passed`` and how many could not be read (``unread``)."""

    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: bool = False
    error: str | None = None
    passed: int = 0
    unread: int = 0

    @property
    def left_s(self) -> float | None:
        """Seconds left at the rate so far (None before the first batch is done)."""
        if not self.done or self.finished:
            return None
        return (time.monotonic() - self.started) / self.done * (self.total - self.done)


_lock = threading.Lock()
_jobs: dict[Key, Job] = {}
_rates: dict[Any, float] = {}  # seconds an image of the last finished pass, by what its speed depends on


def seconds_per_image(speed_key: Any) -> float | None:
    """Seconds an image took in the last pass finished with ``speed_key`` (model, input size, device), or None."""
    with _lock:
        return _rates.get(speed_key)


def status(key: Key) -> Job | None:
    """The pass for ``key`` (running or finished in this server process), or None."""
    with _lock:
        return _jobs.get(key)


def start(key: Key, total: int, work: Work, speed_key: Any = None) -> Job:
    """Run ``work`` in a thread for ``key`` unless one is running already; the job either way.
    ``ENGINE_CALLS["top_patches"]`` counts the passes started; a pass that ends well records its seconds an image
    under ``speed_key`` (``seconds_per_image``)."""
    with _lock:
        job = _jobs.get(key)
        if job is not None and not job.finished:
            return job
        job = _jobs[key] = Job(total)
        ENGINE_CALLS["top_patches"] += 1

    def progress(done: int, total_: int) -> None:
        job.done, job.total = done, total_

    def run() -> None:
        try:
            job.passed, job.unread = work(progress)
            if speed_key is not None and job.done:
                with _lock:
                    _rates[speed_key] = (time.monotonic() - job.started) / job.done
        except Exception as exc:  # shown on the page as one line; the pass is over either way
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            job.error = first[:300]
        finally:
            job.finished = True

    threading.Thread(target=run, name="top-patches", daemon=True).start()
    return job


def forget(key: Key) -> None:
    """Drop a finished job (its message has been shown)."""
    with _lock:
        job = _jobs.get(key)
        if job is not None and job.finished:
            del _jobs[key]
