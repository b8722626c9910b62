"""The Ray Data engine (``--engine ray``): the image indices still to do become a Ray dataset; model-holding
actors decode and audit their batches with the same ``Scanner`` as the local engine, so the rows are the same; the
driver writes each batch as one part as soon as it streams back.

Started in-process (no address), Ray gets ``num_cpus`` CPUs and, by default, **one** actor uses them all (torch
threads = its CPUs, decode in as many threads): one worker process importing torch and loading the model instead
of one per CPU, which is most of Ray's fixed cost on a small machine. The workers inherit the repository on
``PYTHONPATH`` and ``OMP_WAIT_POLICY=PASSIVE`` from the environment Ray starts with, so the worker Ray prestarts
can become the actor (a ``runtime_env`` would need a fresh process). With an address the packages travel as
``py_modules``. Images are read inside the actor from their path or URI (``scan.prepare``), so only
indices go in and rows come out through the object store.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
import ray.data
import torch
from torch import nn

from ..device import pick_device
from .engine_local import prepared_batches
from .job import AuditJob
from .rows import audit_schema
from .scan import Scanner

REPO = Path(__file__).resolve().parents[2]  # the folder holding cam_core/, models/, cam_explorer/
PACKAGES = ("cam_core", "models", "cam_explorer")
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
IN_PROCESS_CPUS = 2  # Ray started here gets at most this many CPUs unless told more
CLUSTER_ACTORS = 2  # actors on a cluster without GPUs unless told more

ModelLoader = Callable[[str], nn.Module]  # device name -> the model on it (picklable: runs in each actor)


class _AuditActor:
    """One Ray actor: loads the model once, then turns batches of indices into Arrow tables of rows, decoding in
    ``threads`` threads and running torch on as many. One batch at a time: two at once (one decoding while the
    other holds the model, Ray's threaded actor) took 2.3× the CPU a batch when profiled (1.7 s against 0.75 s for
    16 images), so no overlap here."""

    def __init__(self, job: AuditJob, load: ModelLoader, device: str, threads: int) -> None:
        self.job = job
        self.threads = max(1, threads)
        torch.set_num_threads(self.threads)
        self.model = load(str(pick_device(device)))
        self.scanner = Scanner(self.model, job.categories, job.settings)
        self.schema = audit_schema(list(self.scanner.methods), job.settings.metrics)

    def __call__(self, batch: dict[str, Any]) -> pa.Table:
        """``batch["indices"]``: one row per audit batch (Ray hands over one), each the image indices in it."""
        rows: list[dict[str, Any]] = []
        for chunk in batch["indices"]:
            indices = [int(i) for i in chunk]
            prepared = next(prepared_batches(self.job.items, indices, self.job.preprocess, len(indices),
                                             workers=self.threads, ahead=0))
            torch.set_num_threads(self.threads)  # per thread in some builds, and Ray calls from its own thread
            rows += self.scanner.rows(prepared)
        return pa.Table.from_pylist(rows, schema=self.schema)


def runtime_env(address: str | None) -> dict[str, Any]:
    """What Ray workers need beyond their inherited environment: nothing in-process (``_worker_environ`` is set
    while Ray starts), the packages uploaded (``py_modules``) and the worker settings on a cluster."""
    if address is None:
        return {}
    return {"env_vars": dict(WORKER_ENV), "py_modules": [str(REPO / name) for name in PACKAGES]}


@contextmanager
def _worker_environ() -> Iterator[None]:
    """This process's environment plus the repository on ``PYTHONPATH`` and ``WORKER_ENV``, while Ray starts
    here (its raylet and so every worker copies it then); restored afterwards."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    changed = {**WORKER_ENV, "PYTHONPATH": path}
    saved = {k: os.environ.get(k) for k in changed}
    os.environ.update(changed)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def plan(cpus: float, gpus: int, actors: int | None, in_process: bool) -> tuple[int, int, int]:
    """(actors, CPUs each, GPUs each) for a cluster with ``cpus`` and ``gpus``: one actor per GPU when there are
    GPUs; in-process one actor on all the CPUs by default; on a cluster ``CLUSTER_ACTORS`` of one CPU."""
    if gpus:
        count = min(actors or gpus, gpus)
        return count, max(1, int(cpus // count) if in_process else 1), 1
    if in_process:
        count = max(1, min(actors or 1, int(cpus)))
        return count, max(1, int(cpus) // count), 0
    return actors or CLUSTER_ACTORS, 1, 0


class RayEngine:
    """Rows batch by batch from a Ray Data pipeline of model-holding actors (``actors``: default as ``plan``)."""

    name = "ray"

    def __init__(self, load: ModelLoader, device: str | torch.device = "auto", address: str | None = None,
                 actors: int | None = None, num_cpus: int | None = None) -> None:
        self.load = load
        self.device = str(device)
        self.address = address
        self.actors = None if actors is None else max(1, int(actors))
        self.num_cpus = num_cpus

    def _start(self) -> bool:
        """Connect to (or start) Ray; True when this call started it (and must shut it down)."""
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"runtime_env": runtime_env(self.address), "include_dashboard": False,
                                   "log_to_driver": False, "configure_logging": False}
        if self.address is not None:
            ray.init(address=self.address, **options)
            return True
        options["num_cpus"] = self.num_cpus or max(self.actors or 1, min(os.cpu_count() or 1, IN_PROCESS_CPUS))
        with _worker_environ():
            ray.init(**options)
        return True

    def __call__(self, job: AuditJob, todo: Sequence[int], work: Any = None) -> Iterator[list[dict[str, Any]]]:
        """Rows batch by batch, each as soon as Ray hands it back; ``work`` is not called (the actors' work is in
        other processes: progress moves part by part)."""
        if not todo:
            return
        started = self._start()
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # stderr is for the audit's own progress line
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.execution_options.preserve_order = True  # parts in index order, as the local engine
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0)) if self.device != "cpu" else 0
            actors, cpus, gpu_each = plan(resources.get("CPU", 1), gpus, self.actors, self.address is None)
            device = self.device if gpus else "cpu"
            size = max(job.batch, 1)
            chunks = [[int(i) for i in todo[k:k + size]] for k in range(0, len(todo), size)]
            # One dataset row (and block) per audit batch: Ray Data would otherwise bundle blocks of rows into
            # its own batches, and a part would no longer be one batch.
            ds = ray.data.from_items([{"indices": c} for c in chunks], override_num_blocks=len(chunks))
            rows = ds.map_batches(_AuditActor, fn_constructor_kwargs={"job": job, "load": self.load,
                                                                      "device": device, "threads": cpus},
                                  batch_size=1, batch_format="numpy",
                                  compute=ray.data.ActorPoolStrategy(size=actors),
                                  num_cpus=cpus, num_gpus=gpu_each)
            for table in rows.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
                yield table.to_pylist()
        finally:
            if started:
                ray.shutdown()
