"""An audit run: what to compute on which images (``AuditJob``, picklable so Ray workers can receive it), and
the driver every engine shares — open (or resume) the folder, hand the engine what is not done yet, write each
batch of rows as one part, finish the manifest."""
from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from .inputs import InputItem
from .progress import Listener, RunState, Work
from .scan import Preprocess, ScanSettings
from .store import AuditWriter

#: Called with the run's :class:`RunState` as the work goes (often within a batch; ``part`` after each part).
RunProgress = Listener
VERSIONED = ("torch", "torchvision", "timm", "numpy", "pillow", "pyarrow", "duckdb", "ray")


@dataclass
class AuditJob:
    """The images, the model's labels, what the pass computes, how an image becomes ``x``, the batch size."""

    items: list[InputItem]
    categories: list[str]
    settings: ScanSettings
    preprocess: Preprocess
    batch: int = 16


class Engine(Protocol):
    name: str

    def __call__(self, job: AuditJob, todo: Sequence[int],
                 work: Callable[[float], None] | None = None) -> Iterator[list[dict[str, Any]]]: ...


def weights_sha256(model: nn.Module) -> str:
    """A hash of the model's state (names, dtypes, shapes, values): the same weights, the same hash."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def versions(**extra: str) -> dict[str, str]:
    """Python and the installed versions of the packages an audit's numbers depend on."""
    found = {"python": platform.python_version(), **extra}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def run_audit(folder: str | Path, job: AuditJob, manifest: Mapping[str, Any], engine: Engine,
              progress: RunProgress | None = None, per_image: float | None = None) -> dict[str, Any]:
    """Audit ``job`` into ``folder`` with ``engine``, resuming what a previous run left; the final manifest.

    ``per_image``: work units one image costs (``cost.image_cost(...).units``); with it, progress moves within
    a batch as the engine reports units, else part by part. The state also goes to ``folder/progress.json``."""
    with AuditWriter(folder, {**manifest, "engine": engine.name}) as writer:
        todo = [i for i in range(len(job.items)) if i not in writer.done]
        work = Work(len(todo), len(job.items) - len(todo), per_image, job.batch, folder, progress)
        if progress is not None:
            progress(work.state())
        for rows in engine(job, todo, work.add if per_image else None):
            work.rows(writer.write(rows))
        return writer.finish()
