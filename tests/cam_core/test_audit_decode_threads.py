"""The audit's decode workers leave torch's thread count alone. ``torch.set_num_threads(1)`` in a worker was meant
for that thread only, but under OpenMP it reached threads that never set a count: the model's forward in
``cam-explorer audit``, and in the app every later script run of every session (the sidebar then read "CPU (1
thread)")."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cam_core.audit.engine_local import prepared_batches
from cam_core.audit.inputs import InputItem


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)


def _in_a_new_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a fresh thread that never set a thread count (as Streamlit's script threads)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def test_decoding_in_workers_keeps_every_threads_count(tmp_path):
    threads = _in_a_new_thread(torch.get_num_threads)
    if threads < 2:
        pytest.skip("torch runs on one thread here: nothing could drop")
    rng = np.random.default_rng(0)
    items = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
        items.append(InputItem(str(path), path.name))

    def audit_pass() -> list[int]:
        seen = []
        for batch in prepared_batches(items, range(4), _to_tensor, batch=2, workers=2):
            assert all(p.x is not None and p.x.shape == (3, 16, 16) for p in batch)
            seen.append(torch.get_num_threads())  # what the model's forward runs on
        return seen

    assert _in_a_new_thread(audit_pass) == [threads, threads]
    assert _in_a_new_thread(torch.get_num_threads) == threads  # a later script run
