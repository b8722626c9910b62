"""What huge pages buy: a batched forward and an occlusion run with THP_MEM_ALLOC_ENABLE=0 vs 1 (cam_core's default).

Usage: python bench/huge_pages.py [--model resnet18] [--batch 32] [--repeats 8] [--pairs 3]
Each setting runs in its own interpreter (PyTorch reads the switch once, at its first allocation), in
alternating pairs so that a slow spell on a shared machine falls on both; each line gives minor page faults
and median wall time per call, and the last lines the median ratio over the pairs, measured in this one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(model_name: str, batch: int, repeats: int) -> dict[str, float]:
    """In this interpreter: faults and median seconds of a no-grad forward at ``batch`` and of one occlusion."""
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    import torch
    from bench_methods import build

    from cam_core import explain

    model, _, x = build(model_name, torch.device("cpu"))
    big = x.repeat(batch, 1, 1, 1)

    def forward() -> None:
        with torch.no_grad():
            model(big)

    def occlusion() -> None:
        explain(model, x, "occlusion", target_class=1, patch=32, stride=32, chunk=batch)

    out: dict[str, float] = {}
    for name, fn in (("forward", forward), ("occlusion", occlusion)):
        fn()
        faults, seconds = [], []
        for _ in range(repeats if name == "forward" else max(2, repeats // 3)):
            f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t0)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        out[f"{name} s"], out[f"{name} faults"] = statistics.median(seconds), statistics.median(faults)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model, args.batch, args.repeats)))
        return
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--batch", str(args.batch),
           "--repeats", str(args.repeats)]
    ratios: dict[str, list[float]] = {"forward": [], "occlusion": []}
    for pair in range(args.pairs):
        results = {}
        for value in ("0", "1") if pair % 2 == 0 else ("1", "0"):
            env = {**os.environ, "THP_MEM_ALLOC_ENABLE": value}
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            results[value] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"THP_MEM_ALLOC_ENABLE={value}: " + ", ".join(f"{k} {v:.3g}" for k, v in results[value].items()))
        for what, values in ratios.items():
            values.append(results["1"][f"{what} s"] / results["0"][f"{what} s"])
    for what, values in ratios.items():
        print(f"{what} ({args.model}, batch {args.batch}): huge pages / small pages = "
              f"{statistics.median(values):.2f} (pairs: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
