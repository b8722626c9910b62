"""Score every method at every candidate layer on real-photo composites with known boxes: defaults by measurement.

Usage: python bench/localization.py [--model efficientnet_lite0 ...] [--quick] [--count N] [--seed S]
       [--steps N] [--threads N] [--methods gradcam,layercam,...] [--input-size N] [--json FILE]

The set is ``bench/localization_set.py``: objects cut out of skimage / scikit-learn photos, scaled to 15–35 %
of the frame side and pasted at seeded positions on real textures. An object is kept only if the model names
its class in its top 5 on the cut-out alone; the class explained is the object's class (not the composite's
top class; how often the composite's top 1 is that class is reported too).

Metrics (``cam_core.evaluate``): pointing game (tolerance 15 px at the model's input), energy-in-box, deletion
AUC (lower is better), insertion AUC (higher is better), both divided by the clean probability (Σ/Σ over the
set). Gradient CAMs run at every candidate layer (the block outputs ``blocks.N``, ``conv_head``, ``bn2``) for
the two box metrics; deletion/insertion — 2·steps forward passes per map — run for Grad-CAM and Score-CAM at
``CURVE_LAYERS`` only, and for the pixel methods. Score-CAM (``max_channels=64``: approximate, the 64
channels of highest mean activation) runs at three layers; saliency, SmoothGrad (10 samples) and occlusion
(patch 32, stride 16) have no layer. Default 42 composites (every object on every texture); ``--quick``: 14
composites, fewer layers, no Score-CAM; ``--fraction lo,hi`` other object sizes; ``--input-size N`` the short
side the photo is resized to (default: the model's own, 224 for the embedded models). Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import localization_set as lset  # noqa: E402
import models  # noqa: E402
from cam_core import evaluate, explain, layers  # noqa: E402

GRADIENT_CAMS = ("gradcam", "gradcam++", "layercam", "xgradcam", "hirescam")
SLOW_LAYER_METHODS = {"scorecam": {"max_channels": 64}}
PIXEL_METHODS = {"saliency": {}, "smoothgrad": {"samples": 10}, "occlusion": {"patch": 32, "stride": 16}}
ON_REQUEST = {"rise": {"masks": 1000}}  # box metrics only, run when named in --methods (RISE: 1000 forwards a map)
CURVE_METHODS = ("gradcam", "scorecam")  # layer methods that also get deletion/insertion (at CURVE_LAYERS)
CURVE_LAYERS = ("blocks.4", "blocks.5", "bn2")
SCORECAM_LAYERS = ("blocks.4", "blocks.5", "bn2")
BOX_METRICS = ("pointing_game", "energy_in_box")
CURVE_METRICS = ("deletion", "insertion")


@dataclass
class Cell:
    """The scores of one (method, layer) over the set."""

    pointing: list[float] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    deletion: list[float] = field(default_factory=list)
    insertion: list[float] = field(default_factory=list)
    clean: list[float] = field(default_factory=list)  # the class's probability on the clean composite
    ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def mean(v: list[float]) -> float | None:
            return statistics.fmean(v) if v else None

        def relative(v: list[float]) -> float | None:  # Σ AUC / Σ clean probability: not ruled by tiny p's
            return sum(v) / sum(self.clean) if v and sum(self.clean) > 0 else None
        return {"n": len(self.pointing), "pointing": mean(self.pointing), "energy": mean(self.energy),
                "deletion": relative(self.deletion), "insertion": relative(self.insertion),
                "deletion_auc": mean(self.deletion), "insertion_auc": mean(self.insertion), "ms": mean(self.ms)}


def candidate_layers(model: torch.nn.Module, x: torch.Tensor) -> list[str]:
    """The block outputs ``blocks.N`` and ``conv_head`` / ``bn2``, in module order (from ``cam_core.layers``)."""
    names = [info.name for info in layers(model, x)]
    return [n for n in names if (n.startswith("blocks.") and n.count(".") == 1) or n in ("conv_head", "bn2")]


def box_in_input(box: tuple[int, int, int, int], image_size: tuple[int, int], x: torch.Tensor) -> tuple[float, ...]:
    """The composite's box in x's pixel coordinates (preprocessing resizes the whole image, no crop)."""
    sx, sy = x.shape[-1] / image_size[0], x.shape[-2] / image_size[1]
    x0, y0, x1, y1 = box
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def recognised(bb: models.Backbone) -> dict[str, tuple[int, int]]:
    """Objects whose class the model ranks in its top 5 on the cut-out alone: name → (class index, rank)."""
    index = {label: i for i, label in enumerate(bb.categories)}
    kept: dict[str, tuple[int, int]] = {}
    for source in lset.OBJECTS:
        top = [p.class_idx for p in bb.predict(lset.object_image(source.name), top=5)]
        cls = index[source.label]
        if cls in top:
            kept[source.name] = (cls, top.index(cls) + 1)
        else:
            print(f"  dropped {source.name}: {source.label!r} not in {bb.name}'s top 5 on the cut-out", file=sys.stderr)
    return kept


def run(model_name: str, count: int, seed: int, steps: int, quick: bool,
        methods: set[str] | None = None, fraction: tuple[float, float] = lset.FRACTION,
        input_size: int | None = None) -> dict[str, Any]:
    bb = models.load(model_name)
    if input_size:  # the same weights, another preprocessing size (the cached backbone is left as it is)
        bb = models.Backbone(dataclasses.replace(bb.spec, input_size=input_size), bb.model, bb.categories, bb.device)
    model = bb.model
    kept = recognised(bb)
    composites = [c for c in lset.build(count=count, seed=seed, fraction=fraction) if c.obj in kept]
    probe = bb.preprocess(composites[0].image)
    cand = candidate_layers(model, probe)
    if quick:
        cand = [n for n in cand if n in ("blocks.3", "blocks.4", "blocks.5", "blocks.6", "bn2")]
    jobs: list[tuple[str, str | None, dict[str, Any], bool]] = []  # method, layer, params, curves?
    for method in GRADIENT_CAMS:
        jobs += [(method, layer, {}, method in CURVE_METHODS and layer in CURVE_LAYERS) for layer in cand]
    if not quick:
        for method, params in SLOW_LAYER_METHODS.items():
            jobs += [(method, layer, params, layer in CURVE_LAYERS) for layer in SCORECAM_LAYERS if layer in cand]
    jobs += [(method, None, params, True) for method, params in PIXEL_METHODS.items()]
    if methods:
        jobs = [job for job in jobs if job[0] in methods]
        jobs += [(method, None, params, False) for method, params in ON_REQUEST.items() if method in methods]

    cells: dict[tuple[str, str], Cell] = defaultdict(Cell)
    top1_hits = top5_hits = 0
    started = time.perf_counter()
    for i, comp in enumerate(composites):
        x = bb.preprocess(comp.image)
        cls = kept[comp.obj][0]
        with torch.no_grad():
            top = model(x).topk(5, dim=1).indices[0].tolist()
        top1_hits += int(top[0] == cls)
        top5_hits += int(cls in top)
        box = box_in_input(comp.box, comp.image.size, x)
        for method, layer, params, curves in jobs:
            exp = explain(model, x, method, layer, cls, **params)
            names = BOX_METRICS + (CURVE_METRICS if curves else ())
            scores = evaluate(model, x, exp.heatmap, metrics=names, target_class=cls, box=box, steps=steps)
            cell = cells[(method, layer or "—")]
            cell.pointing.append(scores["pointing_game"].score)
            cell.energy.append(scores["energy_in_box"].score)
            if curves:
                cell.deletion.append(scores["deletion"].score)
                cell.insertion.append(scores["insertion"].score)
                cell.clean.append(scores["deletion"].details["clean_prob"])
            cell.ms.append(exp.elapsed_ms)
        done = time.perf_counter() - started
        print(f"  {model_name}: {i + 1}/{len(composites)} composites, {done:.0f} s", file=sys.stderr, flush=True)
    return {
        "model": model_name, "composites": len(composites), "seed": seed, "steps": steps, "fraction": fraction,
        "objects": {name: {"class": bb.categories[c], "index": c, "rank_on_cutout": r}
                    for name, (c, r) in kept.items()},
        "composite_top1": top1_hits / len(composites), "composite_top5": top5_hits / len(composites),
        "layers": cand, "default_layer": bb.spec.default_layer, "input_size": bb.spec.input_size,
        "cells": {f"{m}@{layer}": cell.summary() for (m, layer), cell in cells.items()},
        "seconds": time.perf_counter() - started,
    }


def fmt(v: float | None, percent: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.0f} %" if percent else f"{v:.3f}"


def best_layers(result: dict[str, Any]) -> dict[str, str]:
    """Per method, the layer with the highest pointing score (energy-in-box breaks ties)."""
    best: dict[str, tuple[float, float, str]] = {}
    for key, s in result["cells"].items():
        method, layer = key.split("@")
        rank = (s["pointing"], s["energy"], layer)
        if method not in best or rank[:2] > best[method][:2]:
            best[method] = rank
    return {m: r[2] for m, r in best.items()}


def markdown(result: dict[str, Any]) -> str:
    lo, hi = result["fraction"]
    lines = [f"### {result['model']} at input {result['input_size']}: {result['composites']} composites (seed "
             f"{result['seed']}, objects {100 * lo:.0f}–{100 * hi:.0f} % of the frame side), deletion/insertion at "
             f"steps={result['steps']}",
             "",
             "Objects (class explained; rank on the cut-out alone): " + ", ".join(
                 f"{n} → {o['class']} ({o['rank_on_cutout']})" for n, o in result["objects"].items()) + ".",
             f"The object's class is the composite's top 1 on {100 * result['composite_top1']:.0f} % of composites, "
             f"in its top 5 on {100 * result['composite_top5']:.0f} %.",
             "Deletion / insertion: Σ AUC / Σ clean probability of the class over the composites (the class is "
             "often far from the top on a composite, so raw AUCs are tiny).",
             "",
             "| method | layer | pointing | energy in box | deletion ↓ | insertion ↑ | ms / map |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    best = best_layers(result)
    for key, s in result["cells"].items():
        method, layer = key.split("@")
        mark = " **best**" if best.get(method) == layer and layer != "—" else ""
        lines.append(f"| {method} | {layer}{mark} | {fmt(s['pointing'], True)} | {fmt(s['energy'])} | "
                     f"{fmt(s['deletion'])} | {fmt(s['insertion'])} | {s['ms']:.0f} |")
    lines.append("")
    lines.append("Best layer per method (pointing, then energy): " + ", ".join(
        f"{m} → {layer}" for m, layer in best.items() if layer != "—") + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="backbone(s) to score (default: efficientnet_lite0)")
    parser.add_argument("--quick", action="store_true", help="14 composites, 5 layers, no Score-CAM")
    parser.add_argument("--count", type=int, default=None, help="composites before dropping (default 42; quick 14)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=10, help="deletion/insertion steps (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared machine)")
    parser.add_argument("--methods", default="", help="comma-separated subset of the methods (default: all)")
    parser.add_argument("--fraction", default="0.15,0.35", help="object side / frame side, lo,hi (default 0.15,0.35)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="short side of the model's input (default: the model's own)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    count = args.count or (14 if args.quick else 42)
    results = []
    for name in args.model or ["efficientnet_lite0"]:
        wanted = {m.strip() for m in args.methods.split(",") if m.strip()}
        lo, hi = (float(v) for v in args.fraction.split(","))
        result = run(name, count, args.seed, args.steps, args.quick, wanted or None, (lo, hi), args.input_size)
        results.append(result)
        print(markdown(result))
        print(f"\n({result['seconds']:.0f} s for {name})\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
