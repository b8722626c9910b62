"""``cam-explorer evaluate``: faithfulness and localization scores of each method's map (``cam_core.evaluate``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cam_core.audit.rows import box_in_input
from cam_core.metrics import METRICS, evaluate as score, with_pixel_std

from . import writers
from .commands import Failures, class_targets, command, each_image, explain_one, item_record, map_record, open_model
from .parsing import UsageError, colours_in, parse_methods, parse_metrics, parse_settings


def check_box(args: argparse.Namespace, metrics: list[str]) -> None:
    """``--box`` is given exactly when a chosen metric reads a box."""
    needs_box = [m for m in metrics if METRICS[m].needs_box]
    if needs_box and args.box is None:
        raise UsageError(f"--box x0,y0,x1,y1: {', '.join(needs_box)} need the object's box")
    if args.box is not None and not needs_box:
        raise UsageError("--box: no chosen metric uses a box (pointing_game and energy_in_box do)")


def with_model_settings(settings: dict[str, Any], metrics: list[str], backbone: Any) -> dict[str, Any]:
    """``--setting`` values with colours in the model's input space (``deletion_fill=gray``) and ROAD's
    ``pixel_std`` taken from the model's normalization unless given (``cam_core.metrics.with_pixel_std``)."""
    settings = dict(settings)
    colours_in(settings, backbone, "--setting")
    return with_pixel_std(settings, metrics, getattr(getattr(backbone, "spec", None), "std", None))


@command
def evaluate(args: argparse.Namespace) -> int:
    """Metric scores per image × method × class: ``{…, "metrics": {name: {"score", "curve", …}}}`` per line."""
    methods = parse_methods(args.method)
    metrics = parse_metrics(args.metrics)
    settings = parse_settings(args.setting, metrics)
    check_box(args, metrics)
    opened = open_model(args, methods)
    backbone = opened.backbone
    settings = with_model_settings(settings, metrics, backbone)
    failures = Failures(args.debug)

    for path, img, x in each_image(args.images, backbone, failures):
        resolved = failures.attempt({"image": path}, lambda: (
            class_targets(args, backbone, x, opened.categories, opened.fixed_class),
            {"box": box_in_input(args.box, img.width, img.height, x.shape)} if args.box is not None else {}))
        if resolved is None:
            continue
        targets, box = resolved
        for method in methods:
            layer = opened.layer_for(method, args.layer)
            for target in targets:
                what = f"{Path(path).name} {method}" + (f" class {target}" if target is not None else "")
                with failures.guard(item_record(path, method, target)):
                    exp = explain_one(opened, what, x, method, layer, target)
                    progress = writers.Progress(f"{what} {'+'.join(metrics)}")
                    try:
                        results = score(backbone.model, x, exp, metrics, exp.class_idx, progress=progress,
                                        baseline=args.baseline, **settings, **box)
                    except BaseException:
                        progress.interrupted()
                        raise
                    record = map_record(opened, path, exp)
                    record["metrics"] = {name: writers.metric_record(r) for name, r in results.items()}
                    record["elapsed_ms"] = round(float(exp.elapsed_ms), 1)
                    writers.emit(record)
                    for name, r in results.items():
                        writers.say(f"{what} {name} {r.score:.4g}" + (f": {r.verdict}" if r.verdict else ""))
    return failures.exit_code
