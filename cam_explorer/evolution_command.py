"""``cam-explorer evolution --model ARCH --weights a.safetensors,b.safetensors IMAGE --layer L --channel K --out DIR``:
one channel across 2–5 weight files of one architecture (Zeiler & Fergus fig. 4; ``cam_core.evolution``). Weights are
read by ``models.load_own_weights`` (safetensors, or .pth/.pt with ``weights_only``; nothing unpickled). Writes
one PNG strip (feature maps on one scale above the visualizations) and prints one JSON object. Its parser and
its command live here together; importing this module registers both."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from PIL import Image

import models
from cam_core.device import pick_device
from cam_core.evolution import (DEFAULT_VISUALIZE_SIZE, DEFAULT_VISUALIZE_STEPS, MAX_STATES, MIN_STATES, strip)
from cam_core.evolution import evolution as channel_evolution
from cam_core.imaging import load_image
from cam_core.recorder import resolve_layer
from cam_core.visualize import DEFAULT_SEED
from models.preprocess import preprocess as model_preprocess

from . import writers
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
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG strip")
    return p


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
    progress = writers.Progress(f"evolution {layer}:{args.channel}")
    try:
        columns = channel_evolution([b.model for b in backbones], names, x, layer, args.channel,
                                    visualize_steps=args.steps, size=args.size, seed=args.seed,
                                    progress=progress if args.steps else None, mean=spec.mean, std=spec.std)
    except BaseException:
        progress.interrupted()
        raise
    out = Path(args.out) / f"evolution-{layer}-{args.channel}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip(columns)).save(out)
    writers.emit({"model": arch, "image": args.image, "layer": layer, "channel": args.channel,
                  "steps": args.steps, "size": args.size, "seed": args.seed, "png": str(out),
                  "states": [{"weights": c.name, "mean": writers.finite(c.mean),
                              "max": writers.finite(float(c.fmap.max())),
                              "visualization": None if c.visualization is None
                              else writers.finite(c.visualization.activation)} for c in columns]})
    return 0
