"""Our occlusion (all classes in one pass, exact incremental engine) beside captum's ``Occlusion``.

Usage: python bench/bench_occlusion.py [--models resnet18,efficientnet_lite0,vgg16] [--settings 32/16,16/8]
                                        [--ppe 4,16,64] [--threads N]
For each model: captum's ``perturbations_per_eval`` candidates are probed on a 49-window run (patch 32,
stride 32) and the fastest is used for captum's timed runs; ours runs the same 49 windows once (its
warm-up: tracing, chunk-size learning). Each setting then runs once for each side:
ours = ``occlusion_windows`` + ``occlusion_map``;
captum = ``Occlusion(softmax∘model).attribute`` with the same windows and fill 0. The maps must agree
(max |ours − captum| / max |captum|). "first map" is the time to the coarse map of ``progressive_occlusion``.
Timing only: ResNet-18 and VGG-16 have random weights; Lite0 is the embedded model with its weights.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import models  # noqa: E402
from cam_core.incremental import summary  # noqa: E402
from cam_core.methods.occlusion import occlusion_map, occlusion_windows  # noqa: E402
from cam_core.progressive import progressive_occlusion  # noqa: E402


def build(name: str, x_lite: torch.Tensor) -> torch.nn.Module:
    if name == "efficientnet_lite0":
        return models.load("efficientnet_lite0", device="cpu").model.eval()
    builder = {"resnet18": torchvision.models.resnet18, "vgg16": torchvision.models.vgg16}[name]
    torch.manual_seed(0)
    return builder(weights=None).eval()


def seconds(fn) -> tuple[float, object]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def timed(fn, rounds: int) -> tuple[float, float, object]:
    """Best wall and best CPU seconds (this process, all threads) of ``rounds`` calls, and the last result.

    On a machine shared with other jobs the wall time swings with their load; the CPU time this process
    spent is steadier, and is what the ratios are given for beside the wall ones.
    """
    wall, cpu, out = [], [], None
    for _ in range(rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu), out


def captum_map(model, x, cls, patch, stride, ppe):
    from captum.attr import Occlusion

    occ = Occlusion(lambda inp: model(inp).softmax(dim=1))
    with torch.no_grad():
        attr = occ.attribute(x, sliding_window_shapes=(3, patch, patch), strides=(3, stride, stride),
                             target=cls, baselines=0.0, perturbations_per_eval=ppe)
    return attr[0, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,efficientnet_lite0,vgg16")
    parser.add_argument("--settings", default="32/16,16/8", help="patch/stride pairs")
    parser.add_argument("--ppe", default="", help="captum perturbations_per_eval candidates (default per model)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="timed runs per side and setting (best kept)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = Image.fromarray(data.chelsea())
    x = models.load("efficientnet_lite0", device="cpu").preprocess(image)
    x = x.reshape(1, *x.shape[-3:])
    top, left = (x.shape[-2] - 224) // 2, (x.shape[-1] - 224) // 2
    x = x[..., top:top + 224, left:left + 224].contiguous()  # 224² centre
    settings = [tuple(int(v) for v in s.split("/")) for s in args.settings.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start; input {tuple(x.shape)}")
    rows = []
    for name in args.models.split(","):
        model = build(name, x)
        with torch.no_grad():
            cls = int(model(x).argmax())
        candidates = [int(v) for v in args.ppe.split(",")] if args.ppe else \
            ([8, 32] if name == "vgg16" else [4, 16, 64])
        probe = {ppe: seconds(lambda: captum_map(model, x, cls, 32, 32, ppe))[0] for ppe in candidates}
        best = min(probe, key=probe.get)
        warm, _ = seconds(lambda: occlusion_windows(model, x, 32, 32))  # ours' warm-up: tracing, chunk learning
        print(f"\n{name}: captum probe (49 windows) " + ", ".join(f"ppe {k}: {v:.2f}s" for k, v in probe.items())
              + f" -> ppe {best}; ours {warm:.2f}s (cold); incremental plan {summary(model, x, 32)}", flush=True)
        for patch, stride in settings:
            t_first, _ = seconds(lambda: next(iter(progressive_occlusion(model, x, patch, stride))))
            t_ours, c_ours, grid = timed(lambda: occlusion_windows(model, x, patch, stride), args.rounds)
            ours = occlusion_map(grid, cls)
            t_class, _ = seconds(lambda: occlusion_map(grid, (cls + 1) % grid.probs.shape[1]))
            t_theirs, c_theirs, theirs = timed(lambda: captum_map(model, x, cls, patch, stride, best), args.rounds)
            err = float((ours - theirs).abs().max() / theirs.abs().max().clamp(min=1e-30))
            windows = len(grid.rows) * len(grid.cols)
            rows.append((name, patch, stride, windows, t_ours, t_theirs, c_ours, c_theirs, t_first, err))
            print(f"  patch {patch:2d} stride {stride:2d} ({windows} windows): ours {t_ours:6.2f}s (cpu {c_ours:6.2f}s)"
                  f"  captum {t_theirs:6.2f}s (cpu {c_theirs:6.2f}s)  ratio wall {t_theirs / t_ours:4.2f}x "
                  f"cpu {c_theirs / c_ours:4.2f}x  first map {t_first:5.2f}s  class change {t_class * 1000:.1f}ms"
                  f"  map diff {err:.1e}", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    print("model               patch/stride  ours[s]  captum[s]  ratio(wall)  ratio(cpu)  first map[s]  max rel diff")
    for name, patch, stride, _w, t_ours, t_theirs, c_ours, c_theirs, t_first, err in rows:
        print(f"{name:20s}{patch:5d}/{stride:<7d}{t_ours:8.2f}{t_theirs:11.2f}{t_theirs / t_ours:12.2f}x"
              f"{c_theirs / c_ours:11.2f}x{t_first:13.2f}{err:14.1e}")

if __name__ == "__main__":
    main()
