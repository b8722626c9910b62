"""Importing cam_core puts large CPU tensors on transparent huge pages (PyTorch's THP_MEM_ALLOC_ENABLE), unless
the caller opted out. Checked in a fresh interpreter, by the kernel's own count of huge pages in use."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
_PROBE = """
import cam_core, torch
t = torch.ones(1 << 24)  # 64 MiB, touched
print(sum(int(line.split()[1]) for line in open('/proc/self/smaps_rollup') if line.startswith('AnonHugePages')))
"""

pytestmark = pytest.mark.skipif(not _MODE.exists() or "[madvise]" not in _MODE.read_text(),
                                reason="needs Linux with transparent huge pages in 'madvise' mode")


def _huge_kib(env_value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if env_value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = env_value
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=root, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return int(out.stdout.split()[-1])


def test_large_tensors_land_on_huge_pages_after_importing_cam_core() -> None:
    assert _huge_kib(None) >= 32 * 1024  # at least half of the 64 MiB tensor


def test_a_caller_who_opted_out_keeps_small_pages() -> None:
    assert _huge_kib("0") == 0
