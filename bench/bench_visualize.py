"""Time feature visualization (cam_core.visualize) of one channel of the embedded EfficientNet-Lite0, beside
torch-lucent's ``render_vis`` on the same channel, steps and image size (when torch-lucent is installed).

Usage: OMP_WAIT_POLICY=PASSIVE taskset -c 0,1 python bench/bench_visualize.py [--layer blocks.3] [--channel 7]
       [--steps 256] [--size 128] [--threads 2] [--repeats 1] [--no-lucent]
Prints ours with a progress line, lucent as it runs by default (the 128-px image upsampled to 224 before the model)
and at the same 128 px as ours, each one's wall time, the activation it reached on the untransformed image,
and the ratios, all measured in one interleaved run (after one warm-up call of each, so the run takes about twice
the figures). Lucent normalises with ImageNet's mean/std (Lite0's is 0.5/0.5): its activation is measured as it
fed the model.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import models  # noqa: E402
from bench.timing import interleaved_runs  # noqa: E402
from cam_core import visualize as viz  # noqa: E402


def _lucent_run(model, layer: str, channel: int, steps: int, size: int, upsample: bool):
    """One ``render_vis`` call; lucent names layers with ``_`` for ``.``."""
    from lucent.optvis import param, render

    def run():
        return render.render_vis(model, f"{layer.replace('.', '_')}:{channel}", lambda: param.image(size),
                                 thresholds=(steps,), show_image=False, progress=False, preprocess=True,
                                 fixed_image_size=None if upsample else size)
    return run


IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # what lucent's preprocess=True normalises with


def _activation(model, layer: str, channel: int, image, mean, std) -> float:
    """The channel's mean on ``image`` normalised as its own pipeline fed it (a plain hook, no upsampling)."""
    x = torch.as_tensor(image, dtype=torch.float32)
    if x.dim() == 4:  # lucent: 1×H×W×3 in [0, 1]
        x = x[0]
    else:
        x = x / 255.0
    x = x.permute(2, 0, 1)[None]
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    kept = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: kept.setdefault("out", out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return float(kept["out"][0, channel].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="blocks.3")
    parser.add_argument("--channel", type=int, default=7)
    parser.add_argument("--steps", type=int, default=viz.DEFAULT_STEPS)
    parser.add_argument("--size", type=int, default=viz.DEFAULT_SIZE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-lucent", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone = models.load("efficientnet_lite0")
    model = backbone.model
    last: dict[str, object] = {}

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 8) == 0:
            print(f"  ours: step {done}/{total}", flush=True)

    def ours():
        last["ours"] = viz.visualize(model, args.layer, args.channel, steps=args.steps, size=args.size, seed=0,
                                     progress=progress, mean=backbone.spec.mean, std=backbone.spec.std)

    fns = {"ours": ours}
    if not args.no_lucent:
        try:
            import lucent  # noqa: F401
        except ImportError as err:
            print(f"torch-lucent not importable ({err}); timing ours only")
        else:
            for name, upsample in (("lucent (224 upsample)", True), ("lucent (same size)", False)):
                run = _lucent_run(model, args.layer, args.channel, args.steps, args.size, upsample)
                fns[name] = (lambda run=run, name=name: last.__setitem__(name, run()[-1]))
    times = {name: [wall / 1000 for wall, _ in runs]
             for name, runs in interleaved_runs(fns, args.repeats, torch.device("cpu")).items()}
    ours_s = statistics.median(times["ours"])
    print(f"layer {args.layer} channel {args.channel}, {args.steps} steps, {args.size} px, "
          f"{args.threads} threads, median of {args.repeats}")
    result = last["ours"]
    print(f"ours: {ours_s:.1f} s, activation reached {result.activation:.2f}")
    for name in fns:
        if name == "ours":
            continue
        seconds = statistics.median(times[name])
        reached = _activation(model, args.layer, args.channel, last[name], *IMAGENET)
        print(f"{name}: {seconds:.1f} s ({seconds / ours_s:.2f}× ours), activation reached {reached:.2f}")


if __name__ == "__main__":
    main()
