"""``cam-explorer predict``, ``methods`` and ``layers``: what a model predicts, which methods there are, which
layers a model has."""
from __future__ import annotations

import argparse
from typing import Any

from PIL import Image
from skimage import data as skimage_data

from cam_core.imaging import load_image
from cam_core.layers import layers as spatial_layers
from cam_core.registry import METHODS

from . import writers
from .commands import Failures, command, load_backbone


@command
def predict(args: argparse.Namespace) -> int:
    """Top-k classes per image: ``{"image", "model", "top": [{"class_idx", "label", "prob"}, ...]}``."""
    name, backbone = load_backbone(args.model, args.device, args.input_size)
    failures = Failures(args.debug)
    for path in args.images:
        with failures.guard({"image": path}):
            top = backbone.predict(load_image(path), top=args.top)
            writers.emit({"image": path, "model": name, "top": [p.to_dict() for p in top]})
    return failures.exit_code


def _method_records() -> list[dict[str, Any]]:
    records = []
    for name, spec in METHODS.items():
        params = {
            key: {
                "default": writers.jsonable(p.default),
                "type": getattr(p.type, "__name__", str(p.type)),
                "min": writers.jsonable(p.min),
                "max": writers.jsonable(p.max),
                "choices": writers.jsonable(p.choices),
                "help": p.help or "",
            }
            for key, p in spec.params.items()
        }
        records.append({
            "name": name,
            "display": spec.display,
            "kind": spec.kind,
            "citation": spec.citation,
            "summary": spec.summary or "",
            "params": params,
            "aliases": list(spec.aliases),
            "needs_layer": spec.needs_layer,
            "feature_target": spec.feature_target,
            "long_running": spec.long_running,
        })
    return records


@command
def methods(args: argparse.Namespace) -> int:
    """The registry as a table (or ``--json``: names, citations, parameters with ranges, flags)."""
    records = _method_records()
    if args.json:
        writers.emit_document(records)
        return 0
    w_name = max([len("METHOD")] + [len(r["name"]) for r in records])
    w_disp = max([len("NAME")] + [len(r["display"]) for r in records])
    w_kind = max([len("KIND")] + [len(r["kind"]) for r in records])
    lines = [f"{'METHOD':<{w_name}}  {'NAME':<{w_disp}}  {'KIND':<{w_kind}}  PARAMETERS (default)"]
    for r in records:
        params = ", ".join(f"{k}={v['default']!r}" for k, v in r["params"].items()) or "-"
        lines.append(f"{r['name']:<{w_name}}  {r['display']:<{w_disp}}  {r['kind']:<{w_kind}}  {params}")
        if r["citation"]:
            lines.append(f"{'':<{w_name}}  {r['citation']}")
    lines.append("")
    lines.append("Set a parameter with `explain --param key=value`; `methods --json` gives ranges and help.")
    writers.emit_text(lines)
    return 0


_SHORT_DEPTH = 2  # dotted-name depth shown without --all: "layer4.1", "blocks.6.0", "features.28"


_PASS_THROUGH = ("Identity", "Dropout", "Dropout2d", "Flatten")


def _sample_image() -> Any:
    """scikit-image's chelsea() (a cat photo that ships in the wheel), as a PIL image."""
    return Image.fromarray(skimage_data.chelsea()).convert("RGB")


@command
def layers(args: argparse.Namespace) -> int:
    """Candidate target layers with their output shapes; ``*`` (or ``"default": true``) marks the CAM layer."""
    name, backbone = load_backbone(args.model, args.device, args.input_size)
    img = load_image(args.image) if args.image else _sample_image()
    x = backbone.preprocess(img)
    infos = spatial_layers(backbone.model, x)
    default = getattr(getattr(backbone, "spec", None), "default_layer", None)
    total = len(infos)
    if not args.all:  # the readable view: blocks, not every BatchNorm inside them
        infos = [i for i in infos if i.name == default
                 or (i.name.count(".") <= _SHORT_DEPTH and i.kind not in _PASS_THROUGH)]
    if args.json:
        rows = [{"name": i.name, "kind": i.kind, "shape": list(i.shape), "default": i.name == default}
                for i in infos]
        writers.emit_document({"model": name, "input": list(x.shape[1:]), "default_layer": default,
                               "layers": rows})
        return 0

    def shape(s: Any) -> str:
        return "×".join(str(int(v)) for v in s)

    w_name = max([len("LAYER")] + [len(i.name) for i in infos])
    w_kind = max([len("KIND")] + [len(i.kind) for i in infos])
    src = args.image or "sample photo chelsea()"
    lines = [f"# {name}: input {shape(x.shape[1:])} from {src}; * marks the default CAM layer",
             f"  {'LAYER':<{w_name}}  {'KIND':<{w_kind}}  OUTPUT (C×H×W)"]
    for i in infos:
        mark = "*" if i.name == default else " "
        lines.append(f"{mark} {i.name:<{w_name}}  {i.kind:<{w_kind}}  {shape(i.shape)}")
    if default and default not in {i.name for i in infos}:
        lines.append(f"default layer: {default} (not a spatial output at this input size)")
    if len(infos) < total:
        lines.append(f"({total - len(infos)} nested layers hidden; `--all` lists all {total}; any listed or "
                     "hidden name works with `explain --layer`)")
    writers.emit_text(lines)
    return 0
