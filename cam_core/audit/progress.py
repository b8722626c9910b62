"""An audit run's progress in work units (model runs, ``cost.py``), not batches: the pass reports units as it
does them (per image, per method, per chunk of deletion/insertion), each written part re-anchors the count to
the rows on disk. The state goes to the listener and, at most once a second, to ``progress.json`` in the audit
folder (so another process — the Audit page — shows the same figures)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from . import location
from .location import is_uri
from .store import write_json_atomic

PROGRESS = "progress.json"
#: Seconds between two writes of progress.json (parts always write it).
WRITE_EVERY = 1.0


@dataclass(frozen=True)
class RunState:
    """Where a run stands: rows ``written`` by this run, ``images`` done counting the part of a batch in flight
    (fractional), of ``todo``; ``before`` done by earlier runs; ``seconds`` since it started; images/s and the
    seconds left from the work units (None until known); ``part``: this call follows a written part."""

    written: int
    images: float
    todo: int
    before: int
    seconds: float
    rate: float | None
    left_s: float | None
    units: float
    units_total: float | None
    part: bool = False
    updated: float = 0.0  # time.time() of this state


Listener = Callable[[RunState], None]


class Work:
    """Tallies the units of one run; ``add(units)`` from the pass, ``rows(n)`` after each part."""

    def __init__(self, todo: int, before: int, per_image: float | None, batch: int, folder: str | Path | None = None,
                 listener: Listener | None = None) -> None:
        self.todo, self.before, self.batch = todo, before, max(1, batch)
        self.per_image = per_image if per_image and per_image > 0 else None
        self.folder = folder
        self.listener = listener
        self.started = time.perf_counter()
        self.written = 0
        self.in_flight = 0.0  # units of the batch being computed
        self._written_at = 0.0

    def images(self) -> float:
        if self.per_image is None:
            return float(self.written)
        ahead = min(self.in_flight / self.per_image, self.batch - 0.01, self.todo - self.written)
        return self.written + max(0.0, ahead)

    def state(self, part: bool = False) -> RunState:
        seconds = time.perf_counter() - self.started
        images = self.images()
        rate = images / seconds if images > 0 and seconds > 0 else None
        left = (self.todo - images) / rate if rate else None
        total = self.per_image * self.todo if self.per_image else None
        units = images * self.per_image if self.per_image else float(self.written)
        return RunState(self.written, images, self.todo, self.before, seconds, rate, left, units, total, part,
                        time.time())

    def add(self, units: float) -> None:
        """Units done in the batch in flight (called from the pass, often)."""
        self.in_flight += units
        self._emit(part=False)

    def rows(self, count: int) -> None:
        """A part of ``count`` rows was written: the tally is the rows on disk again."""
        self.written += count
        self.in_flight = 0.0
        self._emit(part=True)

    def _emit(self, part: bool) -> None:
        if self.listener is None and self.folder is None:
            return
        state = self.state(part)
        if self.listener is not None:
            self.listener(state)
        if self.folder is not None and (part or time.monotonic() - self._written_at >= WRITE_EVERY):
            self._written_at = time.monotonic()
            folder = str(self.folder)
            where = location.join(folder, PROGRESS) if is_uri(folder) else Path(folder) / PROGRESS
            write_json_atomic(where, asdict(state))


__all__ = ["PROGRESS", "RunState", "Work"]
