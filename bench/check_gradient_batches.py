"""Integrated Gradients and SmoothGrad against captum, interleaved (3 rounds), on Lite0 (chelsea) and ResNet-18.

Usage: OMP_WAIT_POLICY=PASSIVE python bench/check_gradient_batches.py — gradient batches run in the default
memory layout (see cam_core/batching.py); this checks that they stay no slower than captum's at the same steps.
"""
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torchvision  # noqa: E402
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from cam_core import explain  # noqa: E402
from timing import interleaved_runs  # noqa: E402

torch.manual_seed(0)
for name in ("efficientnet_lite0", "resnet18"):
    if name == "resnet18":  # random weights (ImageNet's need the network), the real architecture
        model, x = torchvision.models.resnet18().eval(), torch.randn(1, 3, 224, 352)
    else:
        backbone = models.load(name)
        model, x = backbone.model, backbone.preprocess(Image.fromarray(data.chelsea()))
    integrated = IntegratedGradients(model)
    tunnel = NoiseTunnel(Saliency(model))
    sigma = 0.15 * float(x.max() - x.min())
    runs = {
        "ours IG32": lambda: explain(model, x, "integrated_gradients", None, 1, steps=32),
        "captum IG32": lambda: integrated.attribute(x, baselines=0.0, target=1, n_steps=32,
                                                    method="riemann_trapezoid", internal_batch_size=32),
        "ours SG25": lambda: explain(model, x, "smoothgrad", None, 1, samples=25),
        "captum SG25": lambda: tunnel.attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=sigma, target=1,
                                                nt_samples_batch_size=25),
    }
    s = {k: statistics.median(w for w, _ in v) / 1000 for k, v in interleaved_runs(runs, 3, x.device).items()}
    model.zero_grad(set_to_none=True)  # captum writes parameter .grad; ours never does
    print(name, {k: round(v, 2) for k, v in s.items()}, f"IG captum/ours {s['captum IG32'] / s['ours IG32']:.2f}",
          f"SG captum/ours {s['captum SG25'] / s['ours SG25']:.2f}", flush=True)
