"""Every long method's time estimate (``MethodSpec.expected_seconds``, what the app shows before a run) against
the time the run then takes, on two models: the embedded EfficientNet-Lite0 and a torchvision ResNet-18 with
random weights.

Usage: python bench/bench_estimates.py [--size 224] [--models efficientnet_lite0,resnet18] [--methods a,b]
                                       [--device cpu|cuda] [--repeat 1]
Per model, every long method runs once first ("first" columns: the estimate shown before it — which times
the model at this input when nothing was measured yet — the seconds that estimate itself took, and the run's
wall time, which includes learning the chunk size); then each is estimated and run again ("then" columns).
ratio = estimate / measured; within 0.5–2 is the target. The load average is printed before and after.
``--repeat R`` runs the "then" round R times: the then columns show the median ratio's run, "then ratios" all
of them, and "spread" the slowest / fastest of the method's runs (first included): how much the same work's
time moved on this machine while the bench ran, which no estimate made before a run can follow.
The methods' defaults from the registry; ``--size`` is the short side of the input (the app's is the model's).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from cam_core import explain  # noqa: E402
from cam_core.registry import METHODS  # noqa: E402
from models.preprocess import preprocess  # noqa: E402

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def model_and_input(name: str, size: int, device: torch.device) -> tuple[torch.nn.Module, torch.Tensor, str]:
    """(model in eval mode, chelsea preprocessed at ``size`` on the short side, default layer)."""
    photo = Image.fromarray(data.chelsea())
    if name == "resnet18":
        torch.manual_seed(0)
        net = torchvision.models.resnet18(weights=None).eval().to(device)
        return net, preprocess(photo, size, *IMAGENET, device), "layer4"
    backbone = models.load(name, device=device, input_size=size)
    return backbone.model, backbone.preprocess(photo), backbone.spec.default_layer


def timed(model: torch.nn.Module, x: torch.Tensor, method: str, layer: str | None, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    explain(model, x, method, layer)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - began


def estimate(model: torch.nn.Module, x: torch.Tensor, method: str, layer: str | None) -> float | None:
    return METHODS[method].expected_seconds(model, x, {}, layer)


def timed_estimate(model: torch.nn.Module, x: torch.Tensor, method: str, layer: str | None,
                   ) -> tuple[float | None, float]:
    """(the estimate, the seconds it took to make: a calibration when nothing was measured yet)."""
    began = time.perf_counter()
    est = estimate(model, x, method, layer)
    return est, time.perf_counter() - began


def _load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--models", default="efficientnet_lite0,resnet18")
    ap.add_argument("--methods", default=",".join(m for m, s in METHODS.items() if s.long_running))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    device = torch.device(args.device)
    methods = [m for m in args.methods.split(",") if m]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, short side {args.size}, "
          f"load average {_load()}")
    print("| model | method | first: estimate s (took s) | first: measured s | first ratio | then: estimate s | "
          "then: measured s | then ratio | then ratios | spread |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    worst, worst_first = 1.0, 1.0
    for name in args.models.split(","):
        model, x, default_layer = model_and_input(name, args.size, device)
        layers = {m: default_layer if METHODS[m].needs_layer else None for m in methods}
        first = {}
        for m in methods:
            est, cost = timed_estimate(model, x, m, layers[m])
            first[m] = (est, cost, timed(model, x, m, layers[m], device))
        rounds: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
        for _ in range(max(1, args.repeat)):
            for m in methods:
                est = estimate(model, x, m, layers[m])
                rounds[m].append((est, timed(model, x, m, layers[m], device)))
        for m in methods:
            runs = sorted(rounds[m], key=lambda r: r[0] / r[1])
            est, took = runs[len(runs) // 2]
            ratio = est / took
            ratios = " ".join(f"{e / t:.2f}" for e, t in rounds[m])
            times = [t for _, t in rounds[m]] + [first[m][2]]
            first_est, cost, first_took = first[m]
            first_ratio = None if first_est is None else first_est / first_took
            if ratio is not None:
                worst = max(worst, ratio, 1 / ratio)
            if first_ratio is not None:
                worst_first = max(worst_first, first_ratio, 1 / first_ratio)
            print(f"| {name} {tuple(x.shape[-2:])} | {m} | {_s(first_est)} ({cost:.2f}) | {first_took:.2f} | "
                  f"{_s(first_ratio)} | {_s(est)} | {took:.2f} | {_s(ratio)} | {ratios} | "
                  f"{max(times) / min(times):.1f}× |", flush=True)
    print(f"worst factor between estimate and measured: first runs {worst_first:.2f}×, then (median) {worst:.2f}×; "
          f"load average {_load()}")


if __name__ == "__main__":
    main()
