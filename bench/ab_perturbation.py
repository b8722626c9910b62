"""A/B of our occlusion and SmoothGrad against captum's at the same settings, round by round.

Usage: python bench/ab_perturbation.py [--model resnet18] [--rounds 6] [--stride 32] [--samples 25]
Each round runs ours and captum's once, alternating which goes first, and prints the per-round ratio:
on a noisy machine the spread of those ratios says how much a single median can be trusted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from bench_methods import build  # noqa: E402

from cam_core import explain  # noqa: E402


def ab(ours: Callable[[], object], theirs: Callable[[], object], rounds: int) -> tuple[list[float], list[float]]:
    """Seconds per call of each, alternating the order every round (after one warm-up call each)."""
    ours(), theirs()
    a, b = [], []
    for i in range(rounds):
        order = [(ours, a), (theirs, b)] if i % 2 == 0 else [(theirs, b), (ours, a)]
        for fn, out in order:
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--samples", type=int, default=25)
    args = parser.parse_args()
    from captum.attr import NoiseTunnel, Occlusion, Saliency

    model, _, x = build(args.model, torch.device("cpu"))
    p, s, n = args.patch, args.stride, args.samples
    occlusion = Occlusion(lambda inp: model(inp).softmax(dim=1))
    sigma = 0.15 * float(x.max() - x.min())
    tunnel = NoiseTunnel(Saliency(model))
    pairs = {
        f"occlusion patch {p} stride {s}": (
            lambda: explain(model, x, "occlusion", target_class=1, patch=p, stride=s, chunk=32),
            lambda: occlusion.attribute(x, sliding_window_shapes=(3, p, p), strides=(3, s, s), target=1,
                                        baselines=0.0, perturbations_per_eval=32)),
        f"smoothgrad {n} samples": (
            lambda: explain(model, x, "smoothgrad", target_class=1, samples=n, noise=0.15, chunk=n),
            lambda: tunnel.attribute(x, nt_type="smoothgrad", nt_samples=n, stdevs=sigma, target=1,
                                     nt_samples_batch_size=n)),
    }
    print(f"# {args.model}, input {tuple(x.shape)}, torch threads {torch.get_num_threads()}, {args.rounds} rounds, "
          f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE')}")
    for name, (ours, theirs) in pairs.items():
        a, b = ab(ours, theirs, args.rounds)
        ratios = [x / y for x, y in zip(a, b)]
        print(f"{name}: ours median {statistics.median(a):.2f} s, captum median {statistics.median(b):.2f} s, "
              f"ours/captum per round {', '.join(f'{r:.2f}' for r in ratios)} "
              f"(median {statistics.median(ratios):.2f})")
    model.zero_grad(set_to_none=True)


if __name__ == "__main__":
    main()
