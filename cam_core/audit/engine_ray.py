"""The Ray Data engine (``--engine ray``): the image indices still to do become a Ray dataset; a pool of actors,
each holding the model (one GPU each when the cluster has them), decodes and audits its batches with the same
``Scanner`` as the local engine, so the rows are the same; the driver writes each returned batch as one part.

Without an address Ray starts inside this process (``num_cpus`` CPUs) and its workers get the repository on
``PYTHONPATH``; with an address the packages travel as ``py_modules``. Workers run with
``OMP_WAIT_POLICY=PASSIVE`` so idle OpenMP threads sleep instead of spinning on cores other workers need.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
import ray.data
import torch
from torch import nn

from ..device import pick_device
from .job import AuditJob
from .rows import audit_schema
from .scan import Scanner, prepare

REPO = Path(__file__).resolve().parents[2]  # the folder holding cam_core/, models/, cam_explorer/
PACKAGES = ("cam_core", "models", "cam_explorer")
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

ModelLoader = Callable[[str], nn.Module]  # device name -> the model on it (picklable: runs in each actor)


class _AuditActor:
    """One Ray actor: loads the model once, then turns batches of indices into Arrow tables of rows."""

    def __init__(self, job: AuditJob, load: ModelLoader, device: str) -> None:
        self.job = job
        self.model = load(str(pick_device(device)))
        self.scanner = Scanner(self.model, job.categories, job.settings)
        self.schema = audit_schema(list(self.scanner.methods), job.settings.metrics)

    def __call__(self, batch: dict[str, Any]) -> pa.Table:
        prepared = [prepare(int(i), self.job.items[int(i)], self.job.preprocess) for i in batch["index"]]
        return pa.Table.from_pylist(self.scanner.rows(prepared), schema=self.schema)


def runtime_env(address: str | None) -> dict[str, Any]:
    """What Ray workers need to import this code: the repository on PYTHONPATH in-process, the packages
    uploaded (``py_modules``) to a cluster."""
    if address is None:
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        return {"env_vars": {**WORKER_ENV, "PYTHONPATH": path}}
    return {"env_vars": dict(WORKER_ENV), "py_modules": [str(REPO / name) for name in PACKAGES]}


class RayEngine:
    """Rows batch by batch from a Ray Data pipeline with ``actors`` model-holding actors."""

    name = "ray"

    def __init__(self, load: ModelLoader, device: str | torch.device = "auto", address: str | None = None,
                 actors: int = 2, num_cpus: int | None = None) -> None:
        self.load = load
        self.device = str(device)
        self.address = address
        self.actors = max(1, int(actors))
        self.num_cpus = num_cpus

    def _start(self) -> bool:
        """Connect to (or start) Ray; True when this call started it (and must shut it down)."""
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"runtime_env": runtime_env(self.address), "include_dashboard": False,
                                   "log_to_driver": False, "configure_logging": False}
        if self.address is None:
            options["num_cpus"] = self.num_cpus or max(self.actors, min(os.cpu_count() or 1, 2))
        ray.init(address=self.address, **options)
        return True

    def __call__(self, job: AuditJob, todo: Sequence[int], work: Any = None) -> Iterator[list[dict[str, Any]]]:
        """Rows batch by batch; ``work`` is not called (the actors' work is in other processes: progress moves
        part by part)."""
        if not todo:
            return
        started = self._start()
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # stderr is for the audit's own progress line
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.execution_options.preserve_order = True  # parts in index order, as the local engine
            gpus = int(ray.cluster_resources().get("GPU", 0)) if self.device != "cpu" else 0
            actors = min(self.actors, gpus) if gpus else self.actors
            device = self.device if gpus else "cpu"
            blocks = max(1, min(len(todo) // max(job.batch, 1), 64))
            ds = ray.data.from_items([{"index": int(i)} for i in todo], override_num_blocks=blocks)
            rows = ds.map_batches(_AuditActor, fn_constructor_kwargs={"job": job, "load": self.load,
                                                                      "device": device},
                                  batch_size=job.batch, batch_format="numpy",
                                  compute=ray.data.ActorPoolStrategy(size=actors),
                                  num_cpus=1, num_gpus=1 if gpus else 0)
            for table in rows.iter_batches(batch_size=job.batch, batch_format="pyarrow"):
                yield table.to_pylist()
        finally:
            if started:
                ray.shutdown()
