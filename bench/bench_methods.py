"""Time every method against the bare forward pass, the forward+backward floor and the peer libraries.

Usage: python bench/bench_methods.py [--repeats N] [--models resnet18,efficientnet_lite0] [--device cpu|cuda]
                                    [--pretrained-resnet18]
All figures of one table come from one run on one machine; ratios are what to compare across machines.
The peers (pytorch-grad-cam, captum) are timed when installed: pip install -r requirements-bench.txt.
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
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from timing import interleaved_runs  # noqa: E402
from cam_core import explain  # noqa: E402
from cam_core.recorder import record  # noqa: E402
from cam_core.layers import resolve_layer  # noqa: E402

FLOOR = "forward+backward floor (grad everywhere, backward to layer)"
OCCLUSION = {"patch": 32, "stride": 16, "chunk": 32}
SMOOTHGRAD = {"samples": 25, "noise": 0.15, "chunk": 25}
IG = {"steps": 32}
RISE = {"masks": 500}
SLOW = {"smoothgrad": SMOOTHGRAD, "occlusion": OCCLUSION, "integrated_gradients": IG, "rise": RISE,
        "scorecam": {}, "ablationcam": {}}


def interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median wall time of each function (``timing.interleaved_runs``)."""
    return {name: statistics.median(w for w, _ in runs)
            for name, runs in interleaved_runs(fns, repeats, device).items()}


def build(name: str, device: torch.device, pretrained: bool = False) -> tuple[torch.nn.Module, str, torch.Tensor]:
    image = Image.fromarray(data.chelsea())
    if name == "resnet18" and not pretrained:  # timing only: random weights, the real architecture
        backbone_spec = models.SPECS["resnet18"]
        model = torchvision.models.resnet18().eval().to(device)
        layer = backbone_spec.default_layer
        x = models.load("efficientnet_lite0", device=device).preprocess(image)
    else:
        backbone = models.load(name, device=device)
        model, layer, x = backbone.model, backbone.spec.default_layer, backbone.preprocess(image)
    return model, layer, x.to(device)


def ours(model, layer, x):
    _, module = resolve_layer(model, layer)

    def floor() -> None:  # forward with autograd on everywhere, backward only to the target activation
        kept = {}
        handle = module.register_forward_hook(lambda _m, _i, out: kept.setdefault("a", out))
        with torch.enable_grad():
            y = model(x)
        handle.remove()
        torch.autograd.grad(y[0, 1], kept["a"])

    def our_floor() -> None:  # cam_core's recorder alone: grad only after the layer
        rec = record(model, x, [layer], grad_from=layer)
        torch.autograd.grad(rec.logits[0, 1], rec.activations[layer])

    def bare() -> None:
        with torch.no_grad():
            model(x)

    fast = {"forward (no grad)": bare, FLOOR: floor, "cam_core recorder (grad after layer only)": our_floor}
    slow: dict[str, Callable[[], object]] = {}
    for method in ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "cam", "saliency",
                   "guided_backprop", "deconvnet", "guided_gradcam", *SLOW):
        params = SLOW.get(method, {})
        run = (lambda m, p: lambda: explain(model, x, m, target_layer=layer, target_class=1, **p))(method, params)
        try:
            run()
        except Exception as exc:  # e.g. CAM on a head that is not GAP→FC
            print(f"  ours {method}: skipped ({exc})", file=sys.stderr)
            continue
        (slow if method in SLOW else fast)[f"ours: {method}"] = run
    return fast, slow


def peers(model, layer, x):
    fast: dict[str, Callable[[], object]] = {}
    slow: dict[str, Callable[[], object]] = {}
    _, module = resolve_layer(model, layer)
    try:
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        for name, kind, group in (("gradcam", "GradCAM", fast), ("gradcam++", "GradCAMPlusPlus", fast),
                                  ("xgradcam", "XGradCAM", fast), ("hirescam", "HiResCAM", fast),
                                  ("layercam", "LayerCAM", fast), ("eigencam", "EigenCAM", fast),
                                  ("scorecam", "ScoreCAM", slow), ("ablationcam", "AblationCAM", slow)):
            cam = getattr(pgc, kind)(model=model, target_layers=[module])
            group[f"pytorch-grad-cam: {name}"] = (
                lambda c: lambda: c(input_tensor=x, targets=[ClassifierOutputTarget(1)]))(cam)
    except ImportError:
        print("  pytorch-grad-cam not installed: pip install -r requirements-bench.txt", file=sys.stderr)
    try:
        from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion, Saliency

        layer_gc = LayerGradCam(model, module)
        fast["captum: LayerGradCam"] = lambda: layer_gc.attribute(x, target=1)
        probs = lambda inp: model(inp).softmax(dim=1)  # noqa: E731 - occlusion measures probability
        occlusion = Occlusion(probs)
        p, s = OCCLUSION["patch"], OCCLUSION["stride"]
        slow["captum: Occlusion"] = lambda: occlusion.attribute(
            x, sliding_window_shapes=(3, p, p), strides=(3, s, s), target=1, baselines=0.0,
            perturbations_per_eval=OCCLUSION["chunk"])
        sigma = SMOOTHGRAD["noise"] * float(x.max() - x.min())
        tunnel = NoiseTunnel(Saliency(model))
        slow["captum: NoiseTunnel(Saliency) smoothgrad"] = lambda: tunnel.attribute(
            x, nt_type="smoothgrad", nt_samples=SMOOTHGRAD["samples"], stdevs=sigma, target=1,
            nt_samples_batch_size=SMOOTHGRAD["chunk"])
        integrated = IntegratedGradients(model)
        slow["captum: IntegratedGradients (riemann_trapezoid)"] = lambda: integrated.attribute(
            x, baselines=0.0, target=1, n_steps=IG["steps"], method="riemann_trapezoid",
            internal_batch_size=IG["steps"])
    except ImportError:
        print("  captum not installed: pip install -r requirements-bench.txt", file=sys.stderr)
    return fast, slow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--slow-repeats", type=int, default=3, help="repeats of occlusion and SmoothGrad")
    parser.add_argument("--models", default="resnet18,efficientnet_lite0")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pretrained-resnet18", action="store_true",
                        help="ImageNet weights through torchvision (downloaded once; needs the network) instead of "
                             "random ones: trained layers have dead channels, which Score-CAM skips")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"# torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}, repeats {args.repeats}, "
          f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE')}")
    for name in args.models.split(","):
        model, layer, x = build(name, device, args.pretrained_resnet18)
        weights = "random weights" if name == "resnet18" and not args.pretrained_resnet18 else "pretrained"
        print(f"\n## {name} ({weights}) — input {tuple(x.shape)}, target layer {layer!r}, class 1\n")
        fast, slow = ours(model, layer, x)
        peer_fast, peer_slow = peers(model, layer, x)
        rows = interleaved_ms({**fast, **peer_fast}, args.repeats, device)
        rows.update(interleaved_ms({**slow, **peer_slow}, args.slow_repeats, device))
        model.zero_grad(set_to_none=True)  # the peers write parameter .grad; ours never does
        fwd, floor = rows["forward (no grad)"], rows[FLOOR]
        print("| what | median ms | × forward | × fwd+bwd floor |")
        print("| --- | ---: | ---: | ---: |")
        for what, ms in rows.items():
            print(f"| {what} | {ms:.1f} | {ms / fwd:.2f} | {ms / floor:.2f} |")


if __name__ == "__main__":
    main()
