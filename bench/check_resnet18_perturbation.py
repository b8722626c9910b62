"""A quick interleaved check on ResNet-18 (random weights, 224×352, CPU): SmoothGrad against captum's NoiseTunnel,
occlusion against captum's Occlusion, Score-CAM against pytorch-grad-cam's, after one warm-up call of each."""
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torchvision  # noqa: E402
from captum.attr import NoiseTunnel, Occlusion, Saliency  # noqa: E402
from pytorch_grad_cam import ScoreCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from cam_core import explain  # noqa: E402

torch.manual_seed(0)
model = torchvision.models.resnet18().eval()
x = torch.randn(1, 3, 224, 352)
sigma = 0.15 * float(x.max() - x.min())
tunnel = NoiseTunnel(Saliency(model))
occlusion = Occlusion(lambda inp: model(inp).softmax(1))
score_cam = ScoreCAM(model=model, target_layers=[model.layer4])
fns = {
    "ours: smoothgrad": lambda: explain(model, x, "smoothgrad", target_class=1, samples=25),
    "captum: NoiseTunnel(Saliency)": lambda: tunnel.attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=sigma,
                                                               target=1, nt_samples_batch_size=25),
    "ours: occlusion": lambda: explain(model, x, "occlusion", target_class=1, patch=32, stride=16),
    "captum: Occlusion": lambda: occlusion.attribute(x, sliding_window_shapes=(3, 32, 32), strides=(3, 16, 16),
                                                     target=1, baselines=0.0, perturbations_per_eval=16),
    "ours: scorecam": lambda: explain(model, x, "scorecam", target_layer="layer4", target_class=1),
    "pytorch-grad-cam: scorecam": lambda: score_cam(input_tensor=x, targets=[ClassifierOutputTarget(1)]),
}
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
for fn in fns.values():
    fn()
times = {name: [] for name in fns}
for _ in range(rounds):
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - start)
for name, values in times.items():
    print(f"{name:<32} {statistics.median(values):8.2f} s")
