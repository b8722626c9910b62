"""``cam-explorer walkthrough IMAGE``: the Walkthrough page from the command line (``cam_core.walkthrough``).
Without ``--stage`` it lists every stage (one JSON line each); with a stage and a position it prints one JSON
document: the receptive field, each step back to the convolution with its real numbers, then the softmax at a
temperature. Its parser and its command live here together; importing this module registers both."""
from __future__ import annotations

import argparse
from typing import Any

from cam_core.errors import CamError
from cam_core.imaging import load_image
from cam_core.walkthrough import (TEMPERATURES, Box, Walkthrough, WeightedSum, activation_step, classifier,
                                  conv_step, linear_step, norm_step, pooling_step, softmax, walk)
from cam_core.walkthrough.recording import Stage, check_position

from . import writers
from .commands import command, load_backbone
from .parsing import UsageError, _model_args, number, subcommand

TOP_TERMS = 8  # products written out one by one; the others are summed into "rest"
TOP_CLASSES = 5


temperature = number(float, *TEMPERATURES, f"{{text}} is outside {TEMPERATURES[0]}–{TEMPERATURES[1]}",
                     "A finite number in ``TEMPERATURES`` (``--temperature``).")


@subcommand
def _walkthrough(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("walkthrough", parents=[common], help="from pixels to prediction, with the real numbers",
                       description="One forward pass of a CNN keeping every stage. Without --stage: one JSON line "
                                   "per stage (index, kind, name, shape). With --stage and --row/--col: one JSON "
                                   "document with the receptive field (input and file pixels), each step back to "
                                   "the convolution (weighted sum: top terms, rest, bias, and the model's value; "
                                   "batch norm; activation; pooling), and softmax(logits / T) with the top-5.")
    p.add_argument("image", metavar="IMAGE")
    _model_args(p)
    p.add_argument("--stage", default=None, metavar="S",
                   help="stage number as listed (1 = the first), or its name")
    p.add_argument("--channel", type=int, default=0, metavar="K", help="channel of the stage's map (default 0)")
    p.add_argument("--row", type=int, default=None, metavar="R", help="row on the stage's map")
    p.add_argument("--col", type=int, default=None, metavar="C", help="column on the stage's map")
    p.add_argument("--temperature", type=temperature, default=1.0, metavar="T",
                   help=f"softmax temperature, {TEMPERATURES[0]}–{TEMPERATURES[1]} (default 1: the model's own)")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold the batch norm into the kernel and bias: the sum then equals the norm's output")
    return p


def stage_record(stage: Stage) -> dict[str, Any]:
    """One stage as listed: its number (1-based, as ``--stage`` takes it), kind, name, module and shape."""
    return {"index": stage.index + 1, "kind": stage.kind, "name": stage.name, "module": type(stage.module).__name__,
            "shape": list(stage.shape)}


def _pick_stage(wt: Walkthrough, text: str) -> Stage:
    """``--stage``: a listed number or a stage name; anything else is a usage error."""
    by_name = {s.name: s for s in wt.stages}
    if text in by_name:
        return by_name[text]
    try:
        number = int(text)
    except ValueError:
        raise UsageError(f"--stage {text!r}: give a stage number or name (list them without --stage)") from None
    try:
        return wt.stage(number - 1)
    except CamError as exc:
        raise UsageError(f"--stage {text}: {exc}") from None


def _box(box: Box) -> dict[str, int]:
    return {"top": box.top, "left": box.left, "bottom": box.bottom, "right": box.right, "height": box.height,
            "width": box.width}


def _sum(total: WeightedSum) -> dict[str, Any]:
    return {"terms": [{"where": t.where, "weight": t.weight, "value": t.value, "product": t.product}
                      for t in total.terms],
            "rest": total.rest, "rest_count": total.rest_count, "bias": total.bias, "sum": total.total,
            "model_value": total.recorded, "text": total.text()}


def _step(wt: Walkthrough, i: int, c: int, row: int, col: int, fold: bool) -> dict[str, Any]:
    """One step of the chain, as the page shows it."""
    stage = wt.stages[i]
    head = {"stage": i + 1, "kind": stage.kind, "name": stage.name}
    if stage.kind == "conv":
        step = conv_step(wt, i, c, row, col, fold_bn=fold, top=TOP_TERMS)
        return {**head, "folded": step.folded, "input_channels": list(step.channels), "stride": list(step.stride),
                "dilation": list(step.dilation), "groups": step.groups, **_sum(step.sum)}
    if stage.kind == "norm":
        n = norm_step(wt, i, c, row, col)
        return {**head, "z": n.z, "mean": n.mean, "var": n.var, "eps": n.eps, "gamma": n.gamma, "beta": n.beta,
                "value": n.value, "model_value": n.recorded, "text": n.text()}
    if stage.kind == "activation":
        a = activation_step(wt, i, c, row, col)
        return {**head, "function": a.function, "x": a.x, "y": a.y}
    p = pooling_step(wt, i, c, row, col)
    return {**head, "op": p.op, "rows": list(p.rows), "cols": list(p.cols), "window": writers.finite(p.values),
            "divisor": p.divisor, "value": p.result, "model_value": p.recorded}


@command
def walkthrough(args: argparse.Namespace) -> int:
    """List the stages, or print one position's walkthrough as one JSON document."""
    name, backbone = load_backbone(args.model, args.device, args.input_size)
    image = load_image(args.image)
    wt = walk(backbone.model, backbone.preprocess(image))
    if args.stage is None:
        if args.row is not None or args.col is not None:
            raise UsageError("--row/--col need --stage (list the stages without them)")
        for stage in wt.stages:
            writers.emit(stage_record(stage))
        return 0
    stage = _pick_stage(wt, args.stage)
    if not stage.is_map:
        raise UsageError(f"--stage {args.stage}: {stage.name} outputs a vector; pick a stage with a map (the "
                         f"classifier's sum is in every document's softmax part)")
    if args.row is None or args.col is None:
        raise UsageError(f"--stage {args.stage}: give --row and --col on its {'×'.join(map(str, stage.shape))} map")
    try:
        check_position(stage, args.channel, args.row, args.col)
    except CamError as exc:
        raise UsageError(str(exc)) from None
    c, row, col = args.channel, args.row, args.col
    box = wt.receptive_field(stage.index, row, col)
    probs = softmax(wt.logits, args.temperature, k=TOP_CLASSES)
    labels = backbone.categories
    head = classifier(wt)
    top_class = probs.top[0][0]
    writers.emit_document({
        "model": name, "image": args.image, "file_size": list(image.size), "input_size": list(wt.x.shape[-2:]),
        "stage": stage_record(stage), "position": {"channel": c, "row": row, "col": col},
        "receptive_field": {"input": _box(box), "file": _box(box.in_file(tuple(wt.x.shape[-2:]), image.size))},
        "steps": [_step(wt, i, c, row, col, args.fold_bn) for i in wt.chain(stage.index)],
        "softmax": {"temperature": probs.temperature,
                    "top": [{"class": k, "label": labels[k] if k < len(labels) else str(k), "probability": p,
                             "logit": float(wt.logits[k])} for k, p in probs.top]},
        "classifier": {"stage": head.index + 1, "name": head.name, "class": top_class,
                       **_sum(linear_step(wt, head.index, top_class, top=TOP_CLASSES))},
    })
    return 0
