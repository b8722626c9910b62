"""Integrated Gradients' completeness gap and time: our rules against captum's at equal gradient evaluations.

Usage: OMP_WAIT_POLICY=PASSIVE python bench/bench_ig.py [--steps 64] [--photos chelsea,coffee,...]
       [--rules adaptive,gauss_legendre,trapezoid] [--no-captum] [--threads 2]
On the embedded EfficientNet-Lite0 at its own input size, for each sample photo (ui/samples.py's five) and its
top class, baseline 0 (the dataset mean): the gap |Σ attr − (y(x) − y(x'))| / |y(x) − y(x')| and the wall time
of each rule with ``steps`` gradient evaluations, and of captum's IntegratedGradients (its default
Gauss–Legendre, ``n_steps=steps``, 16 per batch). Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from cam_core import explain  # noqa: E402

PHOTOS = ("chelsea", "astronaut", "coffee", "stereo_motorcycle", "rocket")


def photo(name: str) -> Image.Image:
    array = getattr(data, name)()
    return Image.fromarray(array[0] if name == "stereo_motorcycle" else array).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--photos", default=",".join(PHOTOS))
    parser.add_argument("--rules", default="adaptive,gauss_legendre,trapezoid")
    parser.add_argument("--no-captum", action="store_true")
    parser.add_argument("--captum-batch", type=int, default=16, help="captum's internal_batch_size (0: one batch)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone = models.load(args.model, device="cpu")
    model = backbone.model
    rules = [r for r in args.rules.split(",") if r]
    columns = rules + ([] if args.no_captum else ["captum"])
    print(f"{args.model}, {args.steps} gradient evaluations, baseline 0; gap % of y(x) − y(x') (seconds)")
    print("photo".ljust(20) + "".join(c.ljust(22) for c in columns))
    worst = dict.fromkeys(columns, 0.0)
    seconds = dict.fromkeys(columns, 0.0)
    for name in args.photos.split(","):
        x = backbone.preprocess(photo(name))
        with torch.no_grad():
            logits = model(torch.cat([x, torch.zeros_like(x)]))
        cls = int(logits[0].argmax())
        difference = float(logits[0, cls] - logits[1, cls])
        explain(model, x, "saliency", target_class=cls)  # warm-up
        row = name.ljust(20)
        for column in columns:
            began = time.perf_counter()
            if column == "captum":
                from captum.attr import IntegratedGradients  # bench-only peer

                attr = IntegratedGradients(model).attribute(x, baselines=0.0, target=cls, n_steps=args.steps,
                                                            internal_batch_size=args.captum_batch or None)
                total = float(attr.detach().double().sum())
            else:
                exp = explain(model, x, "integrated_gradients", target_class=cls, steps=args.steps, rule=column)
                total = float(exp.gradient.astype("float64").sum())
            took = time.perf_counter() - began
            gap = abs(total - difference) / abs(difference)
            worst[column] = max(worst[column], gap)
            seconds[column] += took
            row += f"{100 * gap:5.1f} % ({took:5.1f} s)".ljust(22)
        print(row, flush=True)
    print("worst".ljust(20) + "".join(f"{100 * worst[c]:5.1f} % ({seconds[c]:5.1f} s)".ljust(22) for c in columns))


if __name__ == "__main__":
    main()
