"""Do our maps equal the peer libraries' on the same input? One table per model, for every method they share.

Usage: python bench/peer_agreement.py [--models efficientnet_lite0,resnet18]   (needs requirements-bench.txt)
Same model, image (chelsea), class (the top one) and settings on both sides. "max |Δ|" is relative to the
peer's largest value; r is Pearson's correlation. Where a peer's pipeline differs by design (pytorch-grad-cam
min-max scales its maps), both sides go through that same last step and the row says so.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_methods import build  # noqa: E402

from cam_core import explain  # noqa: E402
from cam_core.layers import resolve_layer  # noqa: E402

PATCH, STRIDE = 32, 16  # strides that tile the 224×352 input exactly, as captum's windows need


def compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """(max |ours − theirs| / max |theirs|, Pearson r) of two maps of the same shape."""
    a, b = np.asarray(ours, dtype=np.float64).ravel(), np.asarray(theirs, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {np.shape(ours)} vs {np.shape(theirs)}")
    scale = max(float(np.abs(b).max()), 1e-30)
    r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return float(np.abs(a - b).max()) / scale, r


def minmax(m: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's last step: shift to 0 and scale to 1."""
    m = m - m.min()
    return m / (1e-7 + m.max())


def gradcam_pp_with_eps(activation: torch.Tensor, grad: torch.Tensor, eps: float) -> torch.Tensor:
    """Grad-CAM++ (eq. 19) by hand on captured K×u×v tensors, with ``eps`` added to the denominator."""
    a, g = activation.double(), grad.double()
    denominator = 2 * g ** 2 + a.sum(dim=(1, 2), keepdim=True) * g ** 3 + eps
    alpha = torch.where(denominator != 0, g ** 2 / denominator.where(denominator != 0, 1.0), 0.0)
    weights = (alpha * g.clamp(min=0)).sum(dim=(1, 2))
    return torch.relu((weights[:, None, None] * a).sum(dim=0)).float()


Row = tuple[str, str, Callable[[], tuple[np.ndarray, np.ndarray, str]], str]


def rows_for(name: str) -> list[Row]:
    from captum.attr import Deconvolution, GuidedBackprop, LayerGradCam, NoiseTunnel, Occlusion, Saliency
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, layer, x = build(name, torch.device("cpu"))
    _, module = resolve_layer(model, layer)
    with torch.no_grad():
        c = int(model(x).argmax())

    def ours(method: str, **params: object):
        return explain(model, x, method, target_layer=layer, target_class=c, **params)

    def gradcam_captum():
        theirs = LayerGradCam(model, module).attribute(x, target=c)  # signed, like our raw
        return ours("gradcam").raw, theirs[0, 0].detach().numpy(), ""

    def pgc_map(cls) -> np.ndarray:
        return cls(model=model, target_layers=[module])(input_tensor=x, targets=[ClassifierOutputTarget(c)])[0]

    def pgc(cls):
        def run():
            return minmax(ours("gradcam" if cls is GradCAM else "gradcam++").heatmap), pgc_map(cls), ""
        return run

    def pgc_pp_eps():
        kept = {}
        handle = module.register_forward_hook(lambda _m, _i, out: kept.setdefault("a", out))
        try:
            scores = model(x)
        finally:
            handle.remove()
        (grad,) = torch.autograd.grad(scores[0, c], kept["a"])
        g2 = float(grad.pow(2).median())
        by_hand = gradcam_pp_with_eps(kept["a"][0].detach(), grad[0], 1e-6)
        up = torch.nn.functional.interpolate(by_hand[None, None], size=x.shape[-2:], mode="bilinear",
                                             align_corners=False)[0, 0]
        return minmax(up.numpy()), pgc_map(GradCAMPlusPlus), f"; median G² here {g2:.1e}, against ε = 1e-6"

    def occlusion():
        theirs = Occlusion(lambda inp: model(inp).softmax(dim=1)).attribute(
            x, sliding_window_shapes=(3, PATCH, PATCH), strides=(3, STRIDE, STRIDE), target=c, baselines=0.0,
            perturbations_per_eval=32)
        return ours("occlusion", patch=PATCH, stride=STRIDE).raw, theirs[0, 0].numpy(), ""

    def pixel(method: str, peer):
        def run():
            theirs = peer.attribute(x.clone(), target=c)[0].detach()
            plain = Saliency(model).attribute(x.clone(), target=c, abs=False)[0]
            same = torch.equal(theirs, plain)
            note = "; the peer's result IS the plain gradient (its rule never ran)" if same else ""
            return ours(method).gradient, theirs.numpy(), note
        return run

    def saliency():
        theirs = Saliency(model).attribute(x.clone(), target=c, abs=True)[0].amax(dim=0)
        return ours("saliency").raw, theirs.numpy(), ""

    def smoothgrad():
        sigma = 0.15 * float(x.max() - x.min())
        torch.manual_seed(0)
        theirs = NoiseTunnel(Saliency(model)).attribute(x.clone(), nt_type="smoothgrad", nt_samples=50,
                                                       stdevs=sigma, target=c, nt_samples_batch_size=25, abs=False)
        return ours("smoothgrad", samples=50, noise=0.15).gradient, theirs[0].detach().numpy(), ""

    def smoothgrad_self():
        first = ours("smoothgrad", samples=50, noise=0.15, seed=0).gradient
        return first, ours("smoothgrad", samples=50, noise=0.15, seed=1000).gradient, ""

    out = [
        ("gradcam", "captum LayerGradCam", gradcam_captum, "signed raw map at the layer's resolution"),
        ("gradcam", "pytorch-grad-cam GradCAM", pgc(GradCAM), "at input size, both min-max scaled"),
        ("gradcam++", "pytorch-grad-cam GradCAMPlusPlus", pgc(GradCAMPlusPlus), "at input size, both min-max scaled"),
        ("gradcam++ by hand, ε = 1e-6", "pytorch-grad-cam GradCAMPlusPlus", pgc_pp_eps,
         "eq. 19 plus the ε pytorch-grad-cam adds to its denominator: the whole difference above"),
        ("occlusion", "captum Occlusion", occlusion, f"patch {PATCH}, stride {STRIDE}, fill 0, probability drop"),
        ("saliency", "captum Saliency(abs)", saliency, "max over channels of abs(∂y/∂x)"),
        ("guided_backprop", "captum GuidedBackprop", pixel("guided_backprop", GuidedBackprop(model)),
         "signed 3×H×W gradient"),
        ("deconvnet", "captum Deconvolution", pixel("deconvnet", Deconvolution(model)), "signed 3×H×W gradient"),
        ("smoothgrad", "captum NoiseTunnel(Saliency)", smoothgrad,
         "50 samples, σ = 0.15 of the range; other random noise, so r < 1"),
        ("smoothgrad", "ours, another seed", smoothgrad_self, "the same noise floor, for scale"),
    ]
    print(f"\n## {name} — layer {layer!r}, class {c}\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="efficientnet_lite0,resnet18")
    args = parser.parse_args()
    for name in args.models.split(","):
        rows = rows_for(name)
        print("| ours | peer | max \\|Δ\\| / peer max | r | compared |")
        print("| --- | --- | ---: | ---: | --- |")
        for method, peer, run, what in rows:
            try:
                a, b, note = run()
                delta, r = compare(a, b)
                print(f"| {method} | {peer} | {delta:.1e} | {r:.6f} | {what}{note} |", flush=True)
            except Exception as exc:  # a peer that refuses this model is a finding, not a crash
                print(f"| {method} | {peer} | – | – | peer failed: {type(exc).__name__}: {exc} |", flush=True)


if __name__ == "__main__":
    main()
