"""Time the model-randomization sanity check (cam_core.sanity_check) on the embedded EfficientNet-Lite0.

Usage: python bench/bench_sanity.py [--method gradcam] [--mode cascading] [--threads 2] [--repeats 3]
Pin the cores too for a figure "on 2 CPU cores": taskset -c 0,1 python bench/bench_sanity.py
On a machine shared with other busy processes, OMP_WAIT_POLICY=PASSIVE stops PyTorch's OpenMP threads from
spinning while their partner waits for a core (the default spin can multiply the wall time several-fold there).
Prints the stages, each stage's ρ/SSIM, the verdict, and the median wall time of the whole check
(the deep copy, the stage search, every map and every comparison included) after one warm-up run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from cam_core import explain, sanity_check  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--mode", default="cascading", choices=("cascading", "independent"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone = models.load(args.model)
    x = backbone.preprocess(Image.fromarray(data.chelsea()))
    model = backbone.model

    def one_map() -> float:
        start = time.perf_counter()
        explain(model, x, args.method)
        return time.perf_counter() - start

    result = sanity_check(model, x, args.method, mode=args.mode)  # warm-up
    times, cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = sanity_check(model, x, args.method, mode=args.mode)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    single = statistics.median(one_map() for _ in range(3))
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"# {args.model}, {args.method}, {args.mode}, input {tuple(x.shape[1:])}, torch threads {args.threads}, "
          f"usable cores {affinity}, torch {torch.__version__}")
    print(f"{'stage':<18} {'rho':>7} {'ssim':>7}")
    for stage in result.stages:
        print(f"{stage.stage:<18} {stage.rho:7.3f} {stage.ssim:7.3f}")
    print(result.summary())
    print(f"stages: {len(result.stages)}   maps computed: {len(result.stages) + 2}")
    print(f"one explain: {single:.3f} s")
    print(f"sanity check: {statistics.median(times):.2f} s median of {args.repeats} "
          f"(min {min(times):.2f}, max {max(times):.2f}); process CPU time {statistics.median(cpu):.2f} s "
          "(all threads; OpenMP threads spinning while their partner waits for a shared core count too)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average during the run: {load:.1f}")


if __name__ == "__main__":
    main()
