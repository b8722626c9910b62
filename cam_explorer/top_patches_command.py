"""``cam-explorer top-patches (DATA|AUDIT_DIR) --layer L``: each channel's top-activating patches over an image set
(Zeiler & Fergus fig. 2; ``cam_core.top_patches``), one pass, stored with the audit as ``patches/LAYER.parquet``
plus a PNG sheet (receptive-field crop beside its deconvnet projection). Its parser and its command live here
together; importing this module registers both."""
from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path
from typing import Any

from PIL import Image

from cam_core.audit.inputs import read_inputs
from cam_core.audit.scan import prepare
from cam_core.audit.store import inputs_fingerprint, read_manifest
from cam_core.errors import CamError
from cam_core.recorder import resolve_layer
from cam_core.top_patches import DEFAULT_K, collect, patch_file, patch_sheet, save_patches
from models import preprocess as model_preprocess

from . import writers
from .audit_command import imagenet_wnids
from .commands import command, load_backbone
from .parsing import UsageError, _model_args, positive_int, subcommand

SHEET_CHANNELS = 8  # channels drawn on the PNG sheet unless --channels names others


@subcommand
def _top_patches(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("top-patches", parents=[common], help="each channel's top-activating patches over a set",
                       description="One pass over an image set (a folder or CSV as for `audit`, or an audit "
                                   "folder: its images, model and layer) keeping the k highest activations per "
                                   "channel of --layer (one per image); writes patches/LAYER.parquet and "
                                   "patches/LAYER.png (receptive-field crop beside its deconvnet projection) and "
                                   "prints one JSON object.")
    p.add_argument("source", metavar="DATA|AUDIT_DIR", help="image folder, .csv list, or an audit folder")
    _model_args(p)
    p.add_argument("--layer", default=None, help="layer, dotted name (default: the audit's, or the model's own)")
    p.add_argument("--k", type=positive_int, default=DEFAULT_K, help=f"patches per channel (default {DEFAULT_K})")
    p.add_argument("--channels", default=None, metavar="C[,C-D]",
                   help="channels to keep, e.g. 0,5,10-12 (default: all)")
    p.add_argument("--sheet", type=int, default=SHEET_CHANNELS, metavar="N",
                   help=f"channels drawn on the PNG sheet: the --channels, else the first N (default "
                        f"{SHEET_CHANNELS}; 0: no sheet)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for patches/ (default: the audit folder; required for DATA)")
    p.add_argument("--batch", type=positive_int, default=16, help="images per model batch (default 16)")
    return p


def parse_channels(text: str | None) -> list[int] | None:
    """``"0,5,10-12"`` → [0, 5, 10, 11, 12]; None for all."""
    if not text:
        return None
    out: list[int] = []
    for part in (t.strip() for t in text.split(",")):
        lo, dash, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise UsageError(f"--channels {text!r}: give channel numbers like 0,5,10-12") from None
        if first < 0 or last < first:
            raise UsageError(f"--channels {part!r}: channels are 0 or more, ranges low-high")
        out += range(first, last + 1)
    return list(dict.fromkeys(out))


def _source(args: argparse.Namespace) -> tuple[dict[str, Any] | None, Path]:
    """The audit's manifest (when the source is an audit folder) and where patches/ goes."""
    manifest = read_manifest(args.source) if Path(args.source).is_dir() else None
    if manifest is not None:
        if args.model and args.model != manifest.get("model"):
            raise UsageError(f"{args.source!r} is an audit of {manifest.get('model')!r}; drop --model")
        return manifest, Path(args.out or args.source)
    if not args.out:
        raise UsageError("--out DIR is needed for an image folder or CSV (an audit folder keeps its own)")
    return None, Path(args.out)


@command
def top_patches(args: argparse.Namespace) -> int:
    """Keep each channel's top k patches over the set, write them with a sheet, print one JSON object."""
    channels = parse_channels(args.channels)
    manifest, out = _source(args)
    if manifest is not None:
        name, backbone = load_backbone(manifest.get("model"), args.device, manifest.get("input_size"))
        data = manifest["source"]
    else:
        name, backbone = load_backbone(args.model, args.device, args.input_size)
        data = args.source
    spec = backbone.spec
    layer = resolve_layer(backbone.model, args.layer or (manifest or {}).get("layer") or spec.default_layer)[0]
    patch_file(out, layer)  # a layer name that cannot be a file name: refused before the pass
    inputs = read_inputs(data, backbone.categories, imagenet_wnids(len(backbone.categories)))
    if manifest is not None and manifest.get("inputs_sha256") not in (None, inputs_fingerprint(
            i.name for i in inputs.items)):
        raise CamError(f"the images under {data} changed since the audit was made; its indices would not match")
    if not inputs.items:
        raise UsageError(f"{data!r}: no images found (JPEG, PNG, WebP, BMP, TIFF or GIF)")
    preprocess = functools.partial(model_preprocess.preprocess, input_size=spec.input_size, mean=spec.mean,
                                   std=spec.std, device="cpu")
    progress = writers.Progress(f"top-patches {layer}")
    started = time.perf_counter()
    try:
        top, errors = collect(backbone.model, inputs.items, backbone.categories, preprocess, layer, k=args.k,
                              channels=channels, batch=args.batch, progress=progress)
    except BaseException:
        progress.interrupted()
        raise
    for message in errors:
        writers.say(f"warning: {message}")
    path = save_patches(out, top, [i.name for i in inputs.items], model=name, input_size=spec.input_size,
                        source=str(data))
    sheet = None
    drawn = channels if channels is not None else (top.channels or [])[:max(args.sheet, 0)]
    if args.sheet > 0 and drawn:
        device = next(backbone.model.parameters()).device

        def x_of(index: int) -> Any:
            return prepare(index, inputs.items[index], preprocess).x.to(device)

        wanted = set(drawn)
        image = patch_sheet(backbone.model, layer, [p for p in top.patches() if p.channel in wanted], x_of,
                            spec.mean, spec.std)
        sheet = path.with_suffix(".png")
        Image.fromarray(image).save(sheet)
    writers.emit({"patches": str(path), "sheet": str(sheet) if sheet else None, "layer": layer, "k": args.k,
                  "channels": len(top.channels or []), "images": top.images, "errors": len(errors),
                  "seconds": round(time.perf_counter() - started, 2)})
    return 1 if errors else 0
