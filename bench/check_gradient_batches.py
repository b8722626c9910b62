"""Integrated Gradients and SmoothGrad against captum, interleaved (3 rounds), on Lite0 (chelsea) and ResNet-18.

Usage: OMP_WAIT_POLICY=PASSIVE python bench/check_gradient_batches.py — gradient batches run in the default
memory layout (see cam_core/batching.py); this checks that they stay no slower than captum's at the same steps.
"""
import sys, time, statistics, torch, torchvision
sys.path.insert(0, "."); sys.path.insert(0, "bench")
import models
from skimage import data
from PIL import Image
from cam_core import explain
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
torch.manual_seed(0)
for name in ("efficientnet_lite0", "resnet18"):
    if name == "resnet18":
        model = torchvision.models.resnet18().eval(); x = torch.randn(1, 3, 224, 352)
    else:
        bb = models.load(name); model = bb.model; x = bb.preprocess(Image.fromarray(data.chelsea()))
    ig = IntegratedGradients(model)
    sigma = 0.15 * float(x.max() - x.min())
    tunnel = NoiseTunnel(Saliency(model))
    runs = {
      "ours IG32": lambda: explain(model, x, "integrated_gradients", None, 1, steps=32),
      "captum IG32": lambda: ig.attribute(x, baselines=0.0, target=1, n_steps=32, method="riemann_trapezoid", internal_batch_size=32),
      "ours SG25": lambda: explain(model, x, "smoothgrad", None, 1, samples=25),
      "captum SG25": lambda: tunnel.attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=sigma, target=1, nt_samples_batch_size=25),
    }
    for f in runs.values(): f()
    t = {k: [] for k in runs}
    for _ in range(3):
        for k, f in runs.items():
            s = time.perf_counter(); f(); t[k].append(time.perf_counter() - s)
    m = {k: statistics.median(v) for k, v in t.items()}
    print(name, {k: round(v, 2) for k, v in m.items()}, "IG captum/ours %.2f" % (m["captum IG32"]/m["ours IG32"]), "SG captum/ours %.2f" % (m["captum SG25"]/m["ours SG25"]))
