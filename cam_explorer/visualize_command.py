"""``cam-explorer visualize``: what a channel (or a class) looks for, as a PNG (``cam_core.visualize``), no photo
needed. Its parser and its command live here together; importing this module registers both."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from PIL import Image

from cam_core.visualize import DEFAULT_SEED, DEFAULT_SIZE, DEFAULT_STEPS
from cam_core.visualize import visualize as feature_visualization

from . import writers
from .commands import command, load_backbone
from .parsing import UsageError, _model_args, positive_int, resolve_class, seed_value, subcommand


@subcommand
def _visualize(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("visualize", parents=[common], help="feature visualization: the image a channel looks for",
                       description="Activation maximisation (Lucid's recipe: Fourier-space image, decorrelated "
                                   "colours, random jitter/scale/rotate) of one channel of a layer, or of a class; "
                                   "writes a PNG and prints one JSON object. Progress on stderr.")
    _model_args(p)
    p.add_argument("--layer", default=None, help="layer of the channel, dotted name (see `layers`)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--channel", type=int, default=None, metavar="K", help="channel of --layer to maximise")
    target.add_argument("--class", dest="target_class", default=None, metavar="C",
                        help="class index or exact label whose logit to maximise")
    p.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS,
                   help=f"optimisation steps (default {DEFAULT_STEPS})")
    p.add_argument("--size", type=positive_int, default=DEFAULT_SIZE,
                   help=f"image side in pixels (default {DEFAULT_SIZE})")
    p.add_argument("--seed", type=seed_value, default=DEFAULT_SEED, help="random seed (same seed, same image)")
    p.add_argument("--out", required=True, help="PNG file to write")
    return p


@command
def visualize(args: argparse.Namespace) -> int:
    """Write the feature visualization PNG and print one JSON record (objective reached, curve, time)."""


    if args.channel is not None and not args.layer:
        raise UsageError("--channel needs --layer (list them with `cam-explorer layers`)")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {args.out!r}: give a .png file name")
    name, backbone = load_backbone(args.model, args.device, args.input_size)
    target = None if args.target_class is None else resolve_class(args.target_class, backbone.categories)
    what = f"visualize {args.layer}:{args.channel}" if target is None else f"visualize class {target}"
    progress = writers.Progress(what)
    try:
        result = feature_visualization(backbone.model, args.layer if target is None else None, args.channel,
                                       target, steps=args.steps, size=args.size, seed=args.seed, progress=progress,
                                       mean=backbone.spec.mean, std=backbone.spec.std)
    except BaseException:
        progress.interrupted()
        raise
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(result.image).save(out)
    writers.emit({"model": name, "layer": result.layer, "channel": result.channel, "class": result.class_idx,
                  "steps": result.steps, "size": result.size, "seed": result.seed,
                  "activation": writers.finite(result.activation), "first": writers.finite(result.curve[0]),
                  "seconds": round(result.elapsed_s, 3), "png": str(out)})
    return 0
