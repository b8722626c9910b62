"""The local engine: images decoded in worker threads a few batches ahead while the model runs the current
batch (on the GPU when the model is there). The workers leave torch's thread count alone: under OpenMP
``torch.set_num_threads`` in one thread reaches every thread that never set its own (the model's forward here,
and in the app every later script run), so a worker's "one thread for me" left them all on one thread."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from torch import nn

from .inputs import InputItem
from .job import AuditJob
from .scan import Consumer, Prepared, Preprocess, Scanner, prepare

DEFAULT_WORKERS = 2
AHEAD = 2  # batches being decoded while the model runs one


def prepared_batches(items: Sequence[InputItem], indices: Sequence[int], preprocess: Preprocess, batch: int,
                     workers: int = DEFAULT_WORKERS, ahead: int = AHEAD) -> Iterator[list[Prepared]]:
    """The images at ``indices``, decoded and preprocessed by ``workers`` threads, ``batch`` at a time in order;
    at most ``ahead + 1`` batches are in memory."""
    chunks = iter([list(indices[i:i + batch]) for i in range(0, len(indices), batch)])
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="audit-decode")
    pending: deque[list[Future[Prepared]]] = deque()

    def submit() -> None:
        chunk = next(chunks, None)
        if chunk is not None:
            pending.append([pool.submit(prepare, i, items[i], preprocess) for i in chunk])

    try:
        for _ in range(ahead + 1):
            submit()
        while pending:
            futures = pending.popleft()
            submit()
            yield [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class LocalEngine:
    """Rows batch by batch for the images still to do, with ``model`` in this process."""

    name = "local"

    def __init__(self, model: nn.Module, workers: int = DEFAULT_WORKERS, consumer: Consumer | None = None) -> None:
        self.model = model
        self.workers = workers
        self.consumer = consumer

    def __call__(self, job: AuditJob, todo: Sequence[int],
                 work: Callable[[float], None] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Rows batch by batch; ``work(units)`` as the pass does them (``cost.py``'s units)."""
        scanner = Scanner(self.model, job.categories, job.settings, self.consumer, work=work)
        for batch in prepared_batches(job.items, todo, job.preprocess, job.batch, self.workers):
            yield scanner.rows(batch)
