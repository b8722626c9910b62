"""``cam-explorer evolution --model ARCH --weights a.safetensors,b.safetensors IMAGE --layer L --channel K --out DIR``:
one channel across 2–5 weight files of one architecture (Zeiler & Fergus fig. 4; ``cam_core.evolution``). Weights are
read by ``models.load_own_weights`` (safetensors, or .pth/.pt with ``weights_only``; nothing unpickled). With
``--images DIR`` each file's top ``--top`` patches over that image set are added. Writes one PNG strip (feature maps
on one scale, the visualizations, the patches) and prints one JSON object. Its parser and
its command live here together; importing this module registers both."""
from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path
from typing import Any

from PIL import Image

import models
from cam_core.audit.inputs import read_inputs
from cam_core.device import pick_device
from cam_core.evolution import (DEFAULT_VISUALIZE_SIZE, DEFAULT_VISUALIZE_STEPS, MAX_STATES, MIN_STATES, strip)
from cam_core.evolution import evolution as channel_evolution
from cam_core.imaging import load_image
from cam_core.recorder import resolve_layer
from cam_core.top_patches import DEFAULT_K
from cam_core.visualize import DEFAULT_SEED
from models.preprocess import preprocess as model_preprocess

from . import writers
from .audit_command import imagenet_wnids
from .commands import command
from .parsing import UsageError, _model_args, positive_int, seed_value, subcommand


def _steps(text: str) -> int:
    """0 (no visualization) or a positive step count."""
    return 0 if text.strip() == "0" else positive_int(text)


@subcommand
def _evolution(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("evolution", parents=[common], help="one channel across 2–5 weight files (Z&F fig. 4)",
                       description="The same channel's feature map on IMAGE and its feature visualization for each "
                                   "of 2–5 weight files of --model (e.g. checkpoints of a training run), side by "
                                   "side; writes DIR/evolution-LAYER-K.png and prints one JSON object.")
    p.add_argument("image", metavar="IMAGE")
    _model_args(p)
    p.add_argument("--weights", required=True, metavar="A,B[,…]",
                   help=f"{MIN_STATES}–{MAX_STATES} comma-separated weight files (.safetensors, .pth, .pt) of --model")
    p.add_argument("--layer", required=True, help="layer of the channel, dotted name (see `layers`)")
    p.add_argument("--channel", type=int, required=True, metavar="K", help="channel of --layer")
    p.add_argument("--steps", type=_steps, default=DEFAULT_VISUALIZE_STEPS,
                   help=f"visualization steps per file (default {DEFAULT_VISUALIZE_STEPS}; 0: maps only)")
    p.add_argument("--size", type=positive_int, default=DEFAULT_VISUALIZE_SIZE,
                   help=f"visualization side in pixels (default {DEFAULT_VISUALIZE_SIZE})")
    p.add_argument("--seed", type=seed_value, default=DEFAULT_SEED, help="random seed, the same for every file")
    p.add_argument("--images", default=None, metavar="DATA",
                   help="an image folder or .csv list (as for `audit`): add each file's top patches over it")
    p.add_argument("--top", type=positive_int, default=DEFAULT_K, metavar="K",
                   help=f"top patches per file with --images (default {DEFAULT_K})")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG strip")
    return p


def _patches(column: Any) -> list[dict[str, Any]] | None:
    """A column's top patches for the JSON record (image, value, position, receptive-field box)."""
    if column.patches is None:
        return None
    return [{"image": p.name, "value": writers.finite(p.patch.value), "row": p.patch.row, "col": p.patch.col,
             "box": [p.patch.box.top, p.patch.box.left, p.patch.box.bottom, p.patch.box.right]}
            for p in column.patches]


@command
def evolution(args: argparse.Namespace) -> int:
    """Load each weight file, run ``cam_core.evolution``, write the strip and one JSON record."""
    files = [f.strip() for f in args.weights.split(",") if f.strip()]
    if not MIN_STATES <= len(files) <= MAX_STATES:
        raise UsageError(f"--weights: give {MIN_STATES} to {MAX_STATES} comma-separated files, got {len(files)}")
    arch = args.model or models.DEFAULT_MODEL
    if arch not in models.SPECS:
        raise UsageError(f"unknown model {arch!r}; choose one of {', '.join(models.SPECS)}")
    if args.input_size is not None and (why := models.input_size_error(args.input_size)):
        raise UsageError(f"--input-size {args.input_size}: {why}")
    device = pick_device(args.device)
    backbones = [models.load_own_weights(arch, f, device=device) for f in files]
    spec = backbones[0].spec
    layer, _ = resolve_layer(backbones[0].model, args.layer)
    image = load_image(args.image)
    x = model_preprocess(image, args.input_size or spec.input_size, spec.mean, spec.std, device)
    names = [os.path.basename(f) for f in files]
    items = None
    if args.images is not None:
        categories = backbones[0].categories
        items = read_inputs(args.images, categories, imagenet_wnids(len(categories))).items
        if not items:
            raise UsageError(f"--images {args.images!r}: no images found (JPEG, PNG, WebP, BMP, TIFF or GIF)")
    preprocess = functools.partial(model_preprocess, input_size=args.input_size or spec.input_size, mean=spec.mean,
                                   std=spec.std, device="cpu")
    progress = writers.Progress(f"evolution {layer}:{args.channel}")
    try:
        columns = channel_evolution([b.model for b in backbones], names, x, layer, args.channel,
                                    visualize_steps=args.steps, size=args.size, seed=args.seed,
                                    progress=progress if args.steps or items else None, mean=spec.mean,
                                    std=spec.std, items=items, preprocess=preprocess,
                                    categories=backbones[0].categories, k=args.top)
    except BaseException:
        progress.interrupted()
        raise
    out = Path(args.out) / f"evolution-{layer}-{args.channel}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip(columns)).save(out)
    for message in dict.fromkeys(e for c in columns for e in c.errors):
        writers.say(f"warning: {message}")
    writers.emit({"model": arch, "image": args.image, "layer": layer, "channel": args.channel,
                  "steps": args.steps, "size": args.size, "seed": args.seed, "png": str(out),
                  "states": [{"weights": c.name, "mean": writers.finite(c.mean),
                              "max": writers.finite(float(c.fmap.max())),
                              "visualization": None if c.visualization is None
                              else writers.finite(c.visualization.activation),
                              "patches": _patches(c)} for c in columns]})
    return 1 if any(c.errors for c in columns) else 0
