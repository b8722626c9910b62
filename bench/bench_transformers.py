"""Time Grad-CAM, attention rollout and transformer attribution on ViT-B/16 against its bare forward pass.

Usage: python bench/bench_transformers.py [--repeats N] [--device cpu|cuda] [--size 224] [--threads N]
Random weights, the real architecture (registry's ``vit_b_16``: torchvision's ViT-B/16 as ``AnySizeViT``), so no
download is needed. Targets: Grad-CAM ≤ 1.15× the bare forward, attention rollout ≤ 1.2×.
All figures come from one run on one machine, each method timed in interleaved rounds with the forward;
the verdict uses the minimum of the rounds (the median is printed beside it).
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

import models  # noqa: E402
from timing import interleaved_runs  # noqa: E402
from cam_core import explain  # noqa: E402

TARGETS = {"gradcam": 1.15, "attention_rollout": 1.2}


def interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int,
                   device: torch.device) -> dict[str, tuple[float, float]]:
    """(median, minimum) wall ms of each function (``timing.interleaved_runs``); on a shared machine the
    minimum is the least disturbed figure."""
    return {name: (statistics.median(w for w, _ in runs), min(w for w, _ in runs))
            for name, runs in interleaved_runs(fns, repeats, device).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    spec = models.SPECS["vit_b_16"]
    model = spec.build().eval().to(device)
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision zero-initialises the head
    x = torch.randn(1, 3, *args.size, device=device)

    def bare() -> None:
        with torch.no_grad():
            model(x)

    fns: dict[str, Callable[[], object]] = {"bare forward": bare}
    for method in ("gradcam", "attention_rollout", "transformer_attribution"):
        layer = spec.default_layer if method == "gradcam" else None
        fns[method] = lambda method=method, layer=layer: explain(model, x, method, layer, target_class=1)
    ms = interleaved_ms(fns, args.repeats, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"ViT-B/16 (random weights), input {args.size[0]}×{args.size[1]}, {name}, torch {torch.__version__}, "
          f"median of {args.repeats}, THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE')}")
    print(f"{'method':<26}{'median ms':>11}{'× forward':>11}{'min ms':>9}{'× forward':>11}{'target':>9}")
    base_median, base_min = ms["bare forward"]
    for label, (median, low) in ms.items():
        target = TARGETS.get(label)
        verdict = "" if target is None else f"≤{target:.2f} {'ok' if low / base_min <= target else 'MISS'}"
        print(f"{label:<26}{median:>11.1f}{median / base_median:>11.3f}{low:>9.1f}{low / base_min:>11.3f}"
              f"{verdict:>9}")

if __name__ == "__main__":
    main()
