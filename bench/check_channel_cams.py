"""Score-CAM and Ablation-CAM on the embedded model against pytorch-grad-cam's on real photos, at the model's
default layer, class 1: how many channels ours ran (Score-CAM: constant channels skipped, channels with the same
normalised map sharing one forward; Ablation-CAM: channels zero everywhere skipped) and the median time of
each, interleaved, after one warm-up call of each.

Usage: python bench/check_channel_cams.py [ROUNDS]
"""
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from PIL import Image  # noqa: E402
from pytorch_grad_cam import AblationCAM, ScoreCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from cam_core import explain  # noqa: E402
from cam_core.layers import resolve_layer  # noqa: E402
from cam_core.methods.ablation_cam import live_channels  # noqa: E402
from cam_core.methods.layer_cam import layer_map  # noqa: E402
from cam_core.methods.score_cam import plan_channels  # noqa: E402
from timing import interleaved_runs  # noqa: E402

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
backbone = models.load("efficientnet_lite0")
model, layer = backbone.model, backbone.spec.default_layer
module = resolve_layer(model, layer)[1]
for photo in ("chelsea", "coffee", "astronaut"):
    x = backbone.preprocess(Image.fromarray(getattr(data, photo)()).convert("RGB"))
    a = layer_map(model, x, layer)
    runs = {"scorecam": int(plan_channels(a, 0).run.numel()), "ablationcam": int(live_channels(a).numel())}
    for method, peer_class in (("scorecam", ScoreCAM), ("ablationcam", AblationCAM)):
        peer = peer_class(model=model, target_layers=[module])
        fns = {"ours": lambda: explain(model, x, method, target_layer=layer, target_class=1),
               "pytorch-grad-cam": lambda: peer(input_tensor=x, targets=[ClassifierOutputTarget(1)])}
        times = interleaved_runs(fns, rounds, x.device)
        mine, theirs = (statistics.median(w for w, _ in times[name]) / 1000 for name in fns)
        print(f"{photo} {tuple(x.shape[-2:])} {method} at {layer}: {runs[method]} of {a.shape[0]} channels run · "
              f"ours {mine:.2f} s · pytorch-grad-cam {theirs:.2f} s · {theirs / mine:.2f}×", flush=True)
        model.zero_grad(set_to_none=True)  # the peer writes parameter .grad; ours never does
