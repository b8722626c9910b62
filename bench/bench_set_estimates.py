"""The estimates that are not a method's (bench_estimates.py has those) against the time the work then takes:
deletion/insertion under Inspect's map, the top-patches pass over a set, and ``cam-explorer audit``.

Usage: python bench/bench_set_estimates.py [--size 112] [--models efficientnet_lite0,resnet18] [--images 24]
                                           [--audit-images 24] [--device cpu]

1. **Deletion and insertion** (Inspect's "Can I trust this map?"): what its button says (``ui.trust.curve_seconds``
   for ``model_runs``' count) against ``evaluate``'s time — the map's own curves (in the app they run by
   themselves first and time the model), then with the random maps, then a second map's (the random maps kept).
2. **Top patches** (Layers, over an audit's images): ``cam_core.top_patches.expected_seconds`` against
   ``collect``'s pass: the first from the batched forward's time (× ``PASS_FACTOR``), the second from the first
   pass's seconds an image (as the app keeps them); before any forward at the set's shape there is no number.
3. **cam-explorer audit --metrics deletion,insertion** in a fresh process (what a person sees): the announced
   "expected about" and each progress line's "about … left" against the time it really took.
ratio = estimate / measured; within 0.5–2 is the target. Two models for 1 and 2 (the embedded EfficientNet-Lite0,
a torchvision ResNet-18 with random weights); 3 on Lite0 (the CLI's default model).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import models  # noqa: E402
from bench.bench_audit import make_set  # noqa: E402
from bench.bench_estimates import IMAGENET, model_and_input  # noqa: E402
from cam_core import explain, evaluate  # noqa: E402
from cam_core.audit.inputs import read_inputs  # noqa: E402
from cam_core.audit.scan import prepare  # noqa: E402
from cam_core.metrics import Baseline, model_runs  # noqa: E402
from cam_core.metrics.settings import SETTINGS  # noqa: E402
from cam_core.top_patches import collect, expected_seconds  # noqa: E402
from models.preprocess import preprocess  # noqa: E402
from ui.trust import APP_BASELINE, METRICS, curve_seconds  # noqa: E402

WORST: list[float] = []


def _ratio(estimate: float | None, measured: float) -> str:
    if estimate is None:
        return "—"
    r = estimate / measured
    WORST.append(max(r, 1 / r))
    return f"{r:.2f}"


def _s(v: float | None) -> str:
    return "— (no number shown)" if v is None else f"{v:.2f}"


def _timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def curves(name: str, size: int, device: torch.device) -> None:
    model, x, layer = model_and_input(name, size, device)
    steps = int(SETTINGS["steps"].default)
    ctx = SimpleNamespace(backbone=SimpleNamespace(model=model), x=x)
    base = Baseline(APP_BASELINE)  # fresh: nothing kept, as for a new photo
    for i, method in enumerate(("gradcam", "gradcam++")):
        exp = explain(model, x, method, layer)
        own, extra = model_runs(model, x, METRICS, exp.class_idx, baseline=base, steps=steps)
        rounds = [("own curves", own, None)] if i == 0 else []
        rounds.append(("with random maps" if extra else "random maps kept", own + extra, base))
        for what, runs, ref in rounds:
            est = curve_seconds(ctx, runs)
            took = _timed(lambda: evaluate(model, x, exp, METRICS, exp.class_idx, steps=steps, baseline=ref))
            print(f"| {name} {tuple(x.shape[-2:])} | {method}: {what} | {runs} | {_s(est)} | {took:.2f} | "
                  f"{_ratio(est, took)} |", flush=True)


def patches(name: str, size: int, device: torch.device, root: Path) -> None:
    if name == "resnet18":
        model, _, layer = model_and_input(name, size, device)
        pre = functools.partial(preprocess, input_size=size, mean=IMAGENET[0], std=IMAGENET[1], device="cpu")
    else:
        backbone = models.load(name, device=device, input_size=size)
        model, layer, spec = backbone.model, backbone.spec.default_layer, backbone.spec
        pre = functools.partial(preprocess, input_size=size, mean=spec.mean, std=spec.std, device="cpu")
    categories = models.load("efficientnet_lite0").categories  # the 1000 ImageNet labels, as both models have
    items = read_inputs(root, categories).items
    x = prepare(0, items[0], pre).x.to(device)  # the set's input shape, as the Layers page takes it
    last = None  # the app keeps the last pass's seconds an image (ui.patch_jobs) and prefers it
    for i in range(2):
        est = expected_seconds(model, x, len(items), last)
        took = _timed(lambda: collect(model, items, categories, pre, layer))
        last = took / len(items)
        what = "first pass" if i == 0 else "second pass"
        print(f"| {name} | top patches, {what}, {len(items)} images, {layer} | {_s(est)} | {took:.2f} | "
              f"{_ratio(est, took)} |", flush=True)


def audit(root: Path, size: int, work: Path) -> None:
    """The CLI in a fresh process; each stderr line timestamped as it arrives."""
    out = work / "audit"
    cmd = [sys.executable, "-m", "cam_explorer", "audit", str(root), "--method", "gradcam", "--metrics",
           "deletion,insertion", "--input-size", str(size), "--out", str(out)]
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [(time.perf_counter() - began, line.rstrip()) for line in proc.stderr]  # type: ignore[union-attr]
    summary = proc.stdout.read()  # type: ignore[union-attr]
    proc.wait()
    end = time.perf_counter() - began
    started = next((t for t, line in lines if "expected about" in line), None)
    for t, line in lines:
        m = re.search(r"expected about ([0-9.]+ s|\d+ min \d+ s)", line)
        left = re.search(r"about ([0-9.]+ s|\d+ min \d+ s) left", line)
        if m:
            est = _seconds(m.group(1))
            print(f"| audit announced, {line.split(':')[0]} | {est:.1f} | {end - t:.1f} | {_ratio(est, end - t)} |")
        elif left and started is not None:
            est = _seconds(left.group(1))
            done = re.search(r"(\d+(?:\.\d)?)/(\d+) images", line)
            print(f"| progress at {done.group(0) if done else '?'} | {est:.1f} | {end - t:.1f} | "
                  f"{_ratio(est, end - t)} |")
    print(f"audit exit {proc.returncode}, {end:.1f} s in all (model load included); summary "
          f"{json.loads(summary.splitlines()[-1]) if summary.strip() else '—'}")


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+) min (\d+) s", text)
    return int(m.group(1)) * 60 + int(m.group(2)) if m else float(text.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--models", default="efficientnet_lite0,resnet18")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--audit-images", type=int, default=24)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, short side {args.size}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("\n| model | deletion and insertion | model runs | estimate s | measured s | ratio |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for name in args.models.split(","):
        curves(name, args.size, device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = make_set(work / "set", args.images, (160, 120))
        print("\n| model | pass | estimate s | measured s | ratio |\n| --- | --- | --- | --- | --- |")
        for name in args.models.split(","):
            patches(name, args.size, device, root)
        audit_root = make_set(work / "audit_set", args.audit_images, (160, 120))
        print("\n| efficientnet_lite0: cam-explorer audit --metrics deletion,insertion | estimate s | "
              "measured s (to the end) | ratio |\n| --- | --- | --- | --- |")
        audit(audit_root, args.size, work)
    print(f"worst factor between estimate and measured: {max(WORST, default=1):.2f}×; load average "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
