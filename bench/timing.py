"""One timing loop for the bench scripts: functions run in interleaved rounds, so that load from other processes
falls on all of them alike (ratios measured in one run are what the benchmarks report)."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch


def interleaved_runs(fns: dict[str, Callable[[], object]], repeats: int,
                     device: torch.device) -> dict[str, list[tuple[float, float]]]:
    """(wall ms, this process's CPU ms) of each call of each function over ``repeats`` rounds, after one
    warm-up call of each (which also lets ``batched_forward`` learn its chunk size)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(((time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000))
    return times
