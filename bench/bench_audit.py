"""Throughput and memory of ``cam-explorer audit`` on the embedded EfficientNet-Lite0.

Usage: OMP_WAIT_POLICY=PASSIVE python bench/bench_audit.py [--images 48] [--batch 16] [--repeats 2]
       [--memory 100,2000] [--memory-size 64] [--ray [--actors N]] [--actor-alone] [--no-peer] [--no-throughput]
       [--device cpu]

In one interleaved run over the same image files (decoded by the same worker threads in every case):
- ``bare``: the batched forward alone (no grad) — the ceiling for anything that runs the model;
- ``audit``: a Grad-CAM audit (one recorded forward + one partial backward per batch, rows written to Parquet);
- ``pytorch-grad-cam``: grad-cam 1.5.7's ``GradCAM`` called on the same batches (its maps at the input size).
Then (``--memory``) the peak resident memory of a whole audit process at each image count (small photos, the
model at ``--memory-size`` px so that thousands of images stay a short run): flat means it does not grow with the
set. ``--ray``: the same audit on Ray Data (2 CPUs, started in-process) beside the local engine; ``--actor-alone``:
the Ray engine's actor called here without Ray, beside the local engine (the actor's own cost).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from bench.timing import interleaved_runs  # noqa: E402
from cam_core.audit.engine_local import LocalEngine, prepared_batches  # noqa: E402
from cam_core.audit.inputs import read_inputs  # noqa: E402
from cam_core.audit.job import AuditJob, run_audit  # noqa: E402
from cam_core.audit.scan import ScanSettings  # noqa: E402
from cam_core.audit.store import open_audit  # noqa: E402
from models import preprocess as model_preprocess  # noqa: E402

PHOTOS = (data.astronaut, data.chelsea, data.coffee, data.rocket)


def make_set(root: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` JPEGs of ``size`` (w, h): shifted crops of four skimage photos, one ImageFolder class."""
    folder = root / "Egyptian cat"
    folder.mkdir(parents=True, exist_ok=True)
    photos = [np.asarray(Image.fromarray(p()).resize((size[0] + 40, size[1] + 40))) for p in PHOTOS]
    for i in range(count):
        p = photos[i % len(photos)]
        dx, dy = (7 * i) % 40, (11 * i) % 40
        Image.fromarray(p[dy:dy + size[1], dx:dx + size[0]]).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def job_for(backbone, root: Path, batch: int) -> AuditJob:
    spec = backbone.spec
    pre = functools.partial(model_preprocess.preprocess, input_size=spec.input_size, mean=spec.mean,
                            std=spec.std, device="cpu")
    items = read_inputs(root, backbone.categories).items
    return AuditJob(items, backbone.categories, ScanSettings(spec.default_layer, {"gradcam": {}}), pre, batch)


MANIFEST = {"model": "efficientnet_lite0", "weights_sha256": "bench", "metrics": [], "baseline": 0,
            "methods": {"gradcam": {}}}


def throughput(args: argparse.Namespace, work: Path, backbone, job: AuditJob) -> None:
    model, device = backbone.model, backbone.device
    todo = list(range(len(job.items)))

    def bare() -> None:
        with torch.no_grad():
            for batch in prepared_batches(job.items, todo, job.preprocess, job.batch):
                model(torch.cat([p.x for p in batch]).to(device))

    runs = iter(range(10_000))

    def audit() -> None:
        folder = work / f"audit-{next(runs)}"
        run_audit(folder, job, {**MANIFEST, "layer": job.settings.layer}, LocalEngine(model))
        shutil.rmtree(folder)

    fns = {"bare forward": bare, "audit (Grad-CAM)": audit}
    if not args.no_peer:
        from pytorch_grad_cam import GradCAM

        layer = model.get_submodule(job.settings.layer)

        def peer() -> None:
            with GradCAM(model, [layer]) as cam:  # its hooks live only inside this call, not during ours
                for batch in prepared_batches(job.items, todo, job.preprocess, job.batch):
                    cam(torch.cat([p.x for p in batch]).to(device), None)  # None: each image's top class

        fns["pytorch-grad-cam loop"] = peer
    times = interleaved_runs(fns, args.repeats, device)
    rate = {name: len(todo) / (statistics.median(w for w, _ in t) / 1000) for name, t in times.items()}
    print(f"{len(todo)} photos 320×240 → 224×288, batch {job.batch}, device {device}, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} interleaved rounds (median)")
    for name, r in rate.items():
        print(f"  {name:24s} {r:7.1f} images/s")
    print(f"  audit / bare forward      {rate['audit (Grad-CAM)'] / rate['bare forward']:.2f}×")
    if "pytorch-grad-cam loop" in rate:
        print(f"  audit / pytorch-grad-cam  {rate['audit (Grad-CAM)'] / rate['pytorch-grad-cam loop']:.2f}×")


def _cpu_seconds(psutil) -> float:
    """CPU time used so far by this process and everything it started (Ray's processes are its children)."""
    total = 0.0
    me = psutil.Process()
    for proc in (me, *me.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += times.user + times.system
    return total


def ray_vs_local(backbone, job: AuditJob, work: Path, actors: int | None) -> None:
    """Both engines on the same set, one run each (local before and after Ray, as the machine's load moves), rows
    compared: the time in all (Ray: importing and starting it, its actor loading the model), the time to the first
    part, the steady rate from the first part to the last, and the CPU seconds per image in that stretch (all
    processes: what the engine costs, whatever else the machine runs)."""
    t0 = time.perf_counter()
    import psutil  # requirements-bench.txt

    from cam_core.audit.engine_ray import RayEngine  # Ray's import is part of its cost
    from cam_explorer.audit_command import load_model

    import_s = time.perf_counter() - t0
    local = LocalEngine(backbone.model)
    engines = {"local": local,
               "ray": RayEngine(functools.partial(load_model, "efficientnet_lite0", None), "cpu", actors=actors,
                                num_cpus=2),
               "local again": local}
    print(f"engines on {len(job.items)} photos, batch {job.batch}, one run each (Ray in-process on 2 CPUs, "
          f"{actors or 1} actor(s)); load average {os.getloadavg()[0]:.1f} before:")
    seconds, steady, cpu = {}, {}, {}
    for name, engine in engines.items():
        folder = work / f"engine-{name.replace(' ', '-')}"
        parts: list[tuple[int, float, float]] = []

        def part(st) -> None:
            if st.part and st.written:
                parts.append((st.written, st.seconds, _cpu_seconds(psutil)))

        start = time.perf_counter()
        run_audit(folder, job, {**MANIFEST, "layer": job.settings.layer}, engine, part)
        extra = import_s if name == "ray" else 0.0
        seconds[name] = time.perf_counter() - start + extra
        (n0, t0, c0), (n1, t1, c1) = parts[0], parts[-1]
        steady[name] = (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")
        cpu[name] = (c1 - c0) / (n1 - n0) if n1 > n0 else float("nan")
        print(f"  {name:11s} {seconds[name]:6.1f} s in all, first part after {t0 + extra:5.1f} s, "
              f"{steady[name]:5.1f} images/s and {1000 * cpu[name]:4.0f} ms CPU an image from the first part "
              f"to the last ({len(parts)} parts)")
    query = 'SELECT * EXCLUDE ("gradcam__seconds") FROM rows ORDER BY "index"'
    with open_audit(work / "engine-local") as a, open_audit(work / "engine-ray") as b:
        ra, rb = a.sql(query).to_pylist(), b.sql(query).to_pylist()
    maps = [(np.asarray(x["gradcam__map"]), np.asarray(y["gradcam__map"])) for x, y in zip(ra, rb)
            if x["gradcam__map"] is not None]
    gap = max((float(np.abs(p - q).max() / max(np.abs(p).max(), 1e-12)) for p, q in maps), default=0.0)
    drop = ("gradcam__map", "confidence", "top5_prob")
    same = len(ra) == len(rb) and all({k: v for k, v in x.items() if k not in drop}
                                      == {k: v for k, v in y.items() if k not in drop} for x, y in zip(ra, rb))
    mean = lambda d: (d["local"] + d["local again"]) / 2  # noqa: E731
    print(f"  ray / local (the mean of its two runs): {seconds['ray'] / mean(seconds):.2f}× the time in all "
          f"(Ray's import {import_s:.1f} s included); after the first part {mean(steady) / steady['ray']:.2f}× "
          f"the time and {cpu['ray'] / mean(cpu):.2f}× the CPU per image; rows {'the same' if same else 'DIFFERENT'}"
          f" (maps within {gap:.1e} of their scale)")
    print(f"  load average {os.getloadavg()[0]:.1f} after")


def actor_alone(backbone, job: AuditJob, work: Path, repeats: int) -> None:
    """The Ray engine's actor called in this process without Ray, against the local engine, ``repeats`` rounds:
    what the actor's own work costs, so that Ray's overhead is the rest of ``--ray``'s difference."""
    import psutil  # noqa: PLC0415 - requirements-bench.txt

    from cam_core.audit.engine_ray import _AuditActor  # noqa: PLC0415 - Ray's import only for this run
    from cam_explorer.audit_command import load_model  # noqa: PLC0415

    actor = _AuditActor(job, functools.partial(load_model, "efficientnet_lite0", None), "cpu", 2)
    n = len(job.items)
    chunks = [list(range(k, min(k + job.batch, n))) for k in range(0, n, job.batch)]
    print(f"the Ray actor's work without Ray against the local engine, {n} photos, batch {job.batch}:")
    for r in range(repeats):
        for name in ("actor alone", "local"):
            c0, t0 = _cpu_seconds(psutil), time.perf_counter()
            if name == "local":
                run_audit(work / f"alone-{r}", job, {**MANIFEST, "layer": job.settings.layer},
                          LocalEngine(backbone.model))
            else:
                for chunk in chunks:
                    actor({"indices": [chunk]})
            wall, used = time.perf_counter() - t0, _cpu_seconds(psutil) - c0
            print(f"  round {r + 1} {name:11s} {1000 * wall / n:5.1f} ms wall, {1000 * used / n:5.1f} ms CPU an image")


def memory_child(count: int, size: int, work: Path) -> None:
    """One whole audit of the ``count``-image set in this process; prints its peak resident memory (MiB)."""
    backbone = models.load("efficientnet_lite0", device="cpu", input_size=size)
    job = job_for(backbone, work / f"set-{count}", 32)
    start = time.perf_counter()
    final = run_audit(work / f"audit-{count}", job, {**MANIFEST, "layer": job.settings.layer},
                      LocalEngine(backbone.model))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": final["counts"]["done"], "peak_mib": round(peak, 1),
                      "seconds": round(time.perf_counter() - start, 1)}))


def memory(args: argparse.Namespace, work: Path) -> None:
    print(f"peak resident memory of one audit process (photos 96×72, model at {args.memory_size} px, batch 32):")
    for count in (int(c) for c in args.memory.split(",")):
        make_set(work / f"set-{count}", count, (96, 72))  # here, so the child's peak is the audit's own
        out = subprocess.run([sys.executable, __file__, "--child-memory", str(count), "--memory-size",
                              str(args.memory_size), "--work", str(work)], capture_output=True, text=True,
                             check=True)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {got['images']:5d} images: {got['peak_mib']:7.1f} MiB peak ({got['seconds']} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--memory", default="", help="image counts for the memory runs, e.g. 100,2000")
    p.add_argument("--memory-size", type=int, default=64)
    p.add_argument("--ray", action="store_true")
    p.add_argument("--actors", type=int, default=None, help="Ray actors (default: the engine's)")
    p.add_argument("--actor-alone", action="store_true", help="the Ray actor's work in this process, no Ray")
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--no-throughput", action="store_true")
    p.add_argument("--child-memory", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_memory:
        memory_child(args.child_memory, args.memory_size, Path(args.work))
        return
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        work = Path(tmp)
        if not args.no_throughput or args.ray or args.actor_alone:
            backbone = models.load("efficientnet_lite0", device=args.device)
            job = job_for(backbone, make_set(work / "set", args.images, (320, 240)), args.batch)
            if not args.no_throughput:
                throughput(args, work, backbone, job)
            if args.ray:
                ray_vs_local(backbone, job, work, args.actors)
            if args.actor_alone:
                actor_alone(backbone, job, work, args.repeats)
        if args.memory:
            memory(args, work)

if __name__ == "__main__":
    main()
