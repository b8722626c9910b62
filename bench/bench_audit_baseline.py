"""How many random maps an audit's deletion/insertion verdicts need: agreement with a larger reference, and cost.

Usage: OMP_WAIT_POLICY=PASSIVE python bench/bench_audit_baseline.py [--photos 6] [--size 64] [--reference 16]

On skimage photos with the embedded Lite0, Grad-CAM and Grad-CAM++ maps of each photo's top class are scored
(deletion, insertion) against ``--reference`` seeded random maps once; map i of a draw does not depend on the
draw's size (``random_maps``), so the verdict with n maps is the first n of the reference's scores. Printed per
n: how often the standing (better / unclear / no better) equals the reference's, the chance that a random map
itself comes out "better" (1/(n+1)), and the model runs per photo (``ImageCost``, the audit's own estimate).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from cam_core import evaluate, explain  # noqa: E402
from cam_core.audit.cost import image_cost  # noqa: E402
from cam_core.audit.scan import ScanSettings  # noqa: E402
from cam_core.metrics.baseline import Baseline, BaselineScores, standing  # noqa: E402

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "cat", "immunohistochemistry", "hubble_deep_field", "logo")
METRICS = ("deletion", "insertion")
METHODS = ("gradcam", "gradcam++")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--reference", type=int, default=16)
    args = ap.parse_args()
    backbone = models.load("efficientnet_lite0", device="cpu", input_size=args.size)
    model, spec = backbone.model, backbone.spec
    ns = [n for n in (2, 4, 8, 12) if n < args.reference] + [args.reference]
    same = {n: 0 for n in ns}
    total = 0
    started = time.perf_counter()
    for name in PHOTOS[:args.photos]:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        x = models.preprocess.preprocess(image, input_size=spec.input_size, mean=spec.mean, std=spec.std,
                                         device="cpu")
        base = Baseline(args.reference)
        for method in METHODS:
            e = explain(model, x, method, spec.default_layer)
            got = evaluate(model, x, e, list(METRICS), baseline=base)
            for metric, r in got.items():
                ref = standing(r.score, r.baseline, r.higher_is_better)
                for n in ns:
                    sub = BaselineScores(r.baseline.scores[:n], r.baseline.seed)
                    same[n] += standing(r.score, sub, r.higher_is_better) == ref
                total += 1
    seconds = time.perf_counter() - started
    print(f"{args.photos} photos × {len(METHODS)} methods × {len(METRICS)} curves = {total} verdicts, Lite0 at "
          f"{args.size} px, reference {args.reference} random maps ({seconds:.0f} s in all)")
    for n in ns:
        cost = image_cost(model, x, ScanSettings(spec.default_layer, {m: {} for m in METHODS}, METRICS, n),
                          shared=set(METHODS))
        print(f"  n={n:3d}: same standing as n={args.reference} in {same[n]}/{total} ({100 * same[n] / total:.0f} %), "
              f"a random map 'better' by chance {100 / (n + 1):.0f} %, {cost.units:.0f} model runs per photo")


if __name__ == "__main__":
    main()
