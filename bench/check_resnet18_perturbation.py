"""A quick interleaved check of SmoothGrad and occlusion on ResNet-18 (random weights) against captum: 3 rounds."""
import time, statistics, torch, torchvision, os
from cam_core import explain
from captum.attr import NoiseTunnel, Saliency, Occlusion
import cam_core.batching as b
torch.manual_seed(0)
m = torchvision.models.resnet18().eval()
x = torch.randn(1, 3, 224, 352)
sigma = 0.15 * float(x.max() - x.min())
tunnel = NoiseTunnel(Saliency(m)); occ = Occlusion(lambda i: m(i).softmax(1))
fns = {
 "ours sg": lambda: explain(m, x, "smoothgrad", target_class=1, samples=25, chunk=25),
 "captum sg": lambda: tunnel.attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=sigma, target=1, nt_samples_batch_size=25),
 "ours occ": lambda: explain(m, x, "occlusion", target_class=1, patch=32, stride=16),
 "captum occ": lambda: occ.attribute(x, sliding_window_shapes=(3,32,32), strides=(3,16,16), target=1, baselines=0.0, perturbations_per_eval=16),
}
for f in fns.values(): f()
print({k: (v.chunk, v.channels_last) for k, v in b._learned.items()})
t = {k: [] for k in fns}
for _ in range(3):
    for k, f in fns.items():
        s = time.perf_counter(); f(); t[k].append(time.perf_counter() - s)
print({k: round(statistics.median(v), 2) for k, v in t.items()})
