"""Time the faithfulness metrics against the bare forward pass: deletion + insertion for one map, at the defaults.

Usage: python bench/bench_metrics.py [--repeats N] [--device cpu|cuda] [--threads N] [--road]
The embedded EfficientNet-Lite0 on skimage's chelsea, the map from cam_core.explain(…, "gradcam"). Both times
come from one run, in interleaved rounds (one call of each per round) so that load from other processes falls
on both alike; the ratio is the figure to compare across machines (target: ≤ 60 forward-pass equivalents;
deletion + insertion at steps=28 run 57 images: the clean one and 28 of each curve, its two clean ends shared).
On a shared CPU, wall times swing with other processes' load; the CPU-time column (this process's, all threads)
is steadier with ``--threads 1`` (no OpenMP spin-waiting on a busy core).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from timing import interleaved_runs  # noqa: E402
from cam_core import evaluate, explain  # noqa: E402


def interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int,
                   device: torch.device) -> dict[str, tuple[float, float]]:
    """Median (wall ms, CPU ms) of each function (``timing.interleaved_runs``)."""
    return {name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
            for name, runs in interleaved_runs(fns, repeats, device).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--road", action="store_true", help="also time ROAD (18 sparse solves on the CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    backbone = models.load("efficientnet_lite0", device=device)
    model = backbone.model
    x = backbone.preprocess(Image.fromarray(data.chelsea())).to(device)
    exp = explain(model, x, "gradcam", target_layer=backbone.spec.default_layer)
    print(f"# torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"repeats {args.repeats}, THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE')}")
    print(f"# efficientnet_lite0, chelsea, input {tuple(x.shape)}, Grad-CAM map of class {exp.class_idx}")

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    fns: dict[str, Callable[[], object]] = {
        "forward (one image, no grad)": forward,
        "deletion + insertion (steps 28)": lambda: evaluate(model, x, exp, ("deletion", "insertion")),
    }
    rows = interleaved_ms(fns, args.repeats, device)
    if args.road:
        rows.update(interleaved_ms({"ROAD (9 fractions × MoRF, LeRF)": lambda: evaluate(model, x, exp, "road")},
                                   1, device))
    scores = evaluate(model, x, exp, ("deletion", "insertion"))
    fwd, fwd_cpu = rows["forward (one image, no grad)"]
    print("\n| what | median wall ms | × forward (wall) | median CPU ms | × forward (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for what, (ms, cpu) in rows.items():
        print(f"| {what} | {ms:.1f} | {ms / fwd:.1f} | {cpu:.1f} | {cpu / fwd_cpu:.1f} |")
    print(f"\ndeletion AUC {scores['deletion'].score:.3f}, insertion AUC {scores['insertion'].score:.3f}")


if __name__ == "__main__":
    main()
