"""``cam-explorer explain``: heat maps per image × method × class, as files and one JSON line each."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cam_core import __version__, render
from cam_core.predict import predict as top_classes
from cam_core.registry import METHODS
from cam_core.report import build_report

from . import writers
from .commands import (Failures, class_targets, command, each_image, explain_one, item_record, label_of, map_record,
                       open_model)
from .parsing import UsageError, parse_methods


def _check_channel(args: argparse.Namespace, methods: list[str]) -> None:
    """``--channel`` (a feature-map target) needs a layer, no class, and methods that take such targets."""
    if args.channel is None:
        return
    if args.layer is None:
        raise UsageError("--channel needs --layer: the feature map is channel C of that layer")
    if args.target_class is not None or args.top is not None:
        raise UsageError("--channel explains one feature map, not a class: drop --class/--top")
    if args.channel < 0:
        raise UsageError(f"--channel {args.channel}: must be 0 or more")
    refusing = [m for m in methods if not METHODS[m].feature_target]
    if refusing:
        takers = [m for m, spec in METHODS.items() if spec.feature_target]
        raise UsageError(f"--channel: {', '.join(refusing)} explain classes only; "
                         f"feature-map targets work with {', '.join(takers)}")


def _report_html(args: argparse.Namespace, path: str, name: str, backbone: Any, img: Any, x: Any,
                 overlay: Any, exp: Any, categories: list[str] | None) -> str:
    """The app's HTML report (``cam_core.report``) for one map."""
    spec = METHODS[exp.method]
    return build_report(
        original=img, overlay=overlay, image_name=Path(path).name, model=name, method=spec.display,
        method_citation=spec.citation, layer=exp.layer, class_idx=exp.class_idx,
        class_label=label_of(categories, exp.class_idx),
        params={**exp.params, "alpha": args.alpha, "colormap": args.colormap},
        top=top_classes(backbone.model, x, categories, 5), score=exp.score, prob=exp.prob,
        elapsed_ms=exp.elapsed_ms, notes=exp.notes, version=__version__)


@command
def explain(args: argparse.Namespace) -> int:
    """Heat maps per image × method × class: files in ``--out`` and one JSON line each."""
    methods = parse_methods(args.method)
    _check_channel(args, methods)
    opened = open_model(args, methods)
    backbone = opened.backbone
    out = writers.OutputFolder(args.out)
    failures = Failures(args.debug)

    for path, img, x in each_image(args.images, backbone, failures):
        stem = out.stem_for(path)
        targets = failures.attempt(
            {"image": path}, lambda: class_targets(args, backbone, x, opened.categories, opened.fixed_class))
        if targets is None:
            continue

        for method in methods:
            layer = opened.layer_for(method, args.layer)
            for target in targets:
                if args.channel is not None:
                    suffix = f"_{writers.safe_name(str(layer))}_ch{args.channel}"
                elif args.top is not None or args.target_class is not None:
                    suffix = f"_c{target}"
                else:
                    suffix = ""
                base = f"{stem}_{writers.safe_name(method)}{suffix}"
                what = f"{Path(path).name} {method}" + (f" class {target}" if target is not None else "")
                with failures.guard(item_record(path, method, target)):
                    exp = explain_one(opened, what, x, method, layer, target, args.channel)
                    heat = render.heatmap_at_image_size(exp, img)
                    overlay = render.overlay(img, heat, args.alpha, args.colormap)
                    npy = out.heatmap(base, heat)
                    png = out.overlay(base, overlay)
                    del heat
                    record = map_record(opened, path, exp)
                    record["heatmap"] = str(npy)
                    record["overlay"] = str(png)
                    if exp.channel is not None:
                        record["channel"] = int(exp.channel)
                    if exp.gradient is not None:
                        record["gradient"] = str(out.gradient(base, exp.gradient, img.size))
                    if args.report:
                        html = _report_html(args, path, opened.name, backbone, img, x, overlay, exp,
                                            opened.categories)
                        record["report"] = str(out.report(base, html))
                    if exp.notes:
                        record["notes"] = list(exp.notes)
                    if exp.is_blank and not exp.notes:
                        record["notes"] = ["the map is blank: no positive evidence for this class"]
                    record["elapsed_ms"] = round(float(exp.elapsed_ms), 1)
                    writers.emit(record)
    return failures.exit_code
