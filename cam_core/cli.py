"""Command line: ``python -m cam_core {predict,explain,methods,layers}``, the same calls the app makes.

Results go to stdout as one JSON object per line; progress and errors go to stderr. A failing image
gets an ``error`` object and the others still run; the exit code is 1 if anything failed, 2 for a
usage error. Heavy modules (torch, models) are imported only by the command that needs them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cam_core.errors import CamError

PROG = "python -m cam_core"
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_METHOD = "gradcam"


class UsageError(CamError):
    """A command line that cannot be run as given (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line: ``error: ...`` (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


# --------------------------------------------------------------------------- small helpers


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = " ".join(text.split())
    return text if isinstance(exc, CamError) else f"{type(exc).__name__}: {text}"


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1]")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _load_backbone(name: str | None, device_pref: str):
    """The registered model on the chosen device (models.load raises CamError for an unknown name)."""
    import models
    from cam_core.device import pick_device

    device = pick_device(device_pref)
    name = name or models.DEFAULT_MODEL
    known = list(models.available())
    if known and name not in known:
        raise UsageError(f"unknown model {name!r}; choose one of {', '.join(known)}")
    return name, models.load(name, device=device)


class _Progress:
    """``progress(done, total)`` for long methods: a live line on a terminal, a few lines otherwise."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.last_step = -1
        self.started = time.perf_counter()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        total = max(int(total), 1)
        if total == 1:  # one-shot work: nothing to watch
            return
        done = min(max(int(done), 0), total)
        pct = 100.0 * done / total
        if self.tty:
            sys.stderr.write(f"\r{self.what}: {done}/{total} ({pct:3.0f}%)")
            if done >= total:
                sys.stderr.write("\n")
        else:
            step = int(pct // 25)  # 0, 25, 50, 75, 100 %
            if step == self.last_step:
                return
            self.last_step = step
            sys.stderr.write(f"{self.what}: {done}/{total} ({pct:.0f}%)\n")
        self.shown = True
        sys.stderr.flush()


# --------------------------------------------------------------------------- predict


def cmd_predict(args: argparse.Namespace) -> int:
    from cam_core.imaging import load_image

    name, backbone = _load_backbone(args.model, args.device)
    failed = 0
    for path in args.images:
        try:
            img = load_image(path)
            top = backbone.predict(img, top=args.top)
            _emit({"image": path, "model": name, "top": [p.to_dict() for p in top]})
        except BrokenPipeError:
            raise
        except Exception as exc:  # one bad image must not stop the others
            failed += 1
            if args.debug:
                traceback.print_exc()
            _emit({"image": path, "error": _one_line(exc)})
    return 1 if failed else 0


# --------------------------------------------------------------------------- explain


def _parse_methods(values: Sequence[str] | None) -> list[str]:
    """``--method`` values (repeatable, comma-separated) -> registered method names, in order, once each."""
    from cam_core.registry import get_method

    wanted: list[str] = []
    for value in values or [DEFAULT_METHOD]:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                name = get_method(part).name
            except CamError as exc:
                raise UsageError(str(exc)) from None
            if name not in wanted:
                wanted.append(name)
    if not wanted:
        raise UsageError("--method: no method given")
    return wanted


_TYPE_NAMES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


def _convert(key: str, text: str, spec: Any) -> Any:
    """Convert ``text`` to the parameter's declared type and check its choices and range."""
    kind = getattr(spec, "type", None)
    if isinstance(kind, str):
        kind = _TYPE_NAMES.get(kind.lower(), None)
    choices = getattr(spec, "choices", None)
    if choices and text in [str(c) for c in choices]:
        return next(c for c in choices if str(c) == text)
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind in (int, float, str):
            value = kind(text)
        elif kind is not None and kind is not object and callable(kind):
            value = kind(text)
        elif "," in text:  # a list of numbers, e.g. an occlusion fill per channel
            value = [float(v) for v in text.split(",")]
        else:  # free-form: the most specific of int, float, text
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    value = text
    except (TypeError, ValueError):
        type_name = getattr(kind, "__name__", str(kind))
        raise UsageError(f"--param {key}={text}: expected {type_name}") from None
    if choices and value not in choices:
        raise UsageError(f"--param {key}={text}: choose one of {', '.join(map(str, choices))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = getattr(spec, "min", None), getattr(spec, "max", None)
        if (low is not None and value < low) or (high is not None and value > high):
            raise UsageError(f"--param {key}={text}: must lie in [{low}, {high}]")
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"--param {key}={text}: must be a finite number")
    return value


def _parse_params(pairs: Sequence[str] | None, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``key=value`` strings -> per-method keyword arguments (a key goes to the methods that declare it)."""
    from cam_core.registry import METHODS

    per_method: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: write it as key=value, e.g. --param stride=16")
        takers = [m for m in methods if key in (METHODS[m].params or {})]
        if not takers:
            known = sorted({p for m in methods for p in (METHODS[m].params or {})})
            hint = f"; parameters of {', '.join(methods)}: {', '.join(known)}" if known else ""
            raise UsageError(f"--param {key}: no chosen method takes it{hint}")
        for m in takers:
            per_method[m][key] = _convert(key, text.strip(), METHODS[m].params[key])
    return per_method


def _resolve_class(value: str, categories: Sequence[str] | None) -> int:
    """A class index from ``--class``: a number, or an exact label (case-insensitive if unambiguous)."""
    text = value.strip()
    n = len(categories) if categories is not None else None
    if re.fullmatch(r"[+-]?\d+", text):
        idx = int(text)
        if idx < 0 or (n is not None and idx >= n):
            raise UsageError(f"--class {value}: out of range 0..{(n or 1) - 1}")
        return idx
    if categories:
        if text in categories:
            return list(categories).index(text)
        folded = [i for i, label in enumerate(categories) if label.lower() == text.lower()]
        if len(folded) == 1:
            return folded[0]
        near = [label for label in categories if text.lower() in label.lower()][:5]
        hint = f"; did you mean {', '.join(repr(s) for s in near)}?" if near else ""
        raise UsageError(f"--class {value!r}: no class with that label{hint}")
    raise UsageError(f"--class {value!r}: this model has no labels; give a class index")


_COLOURS = {"black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "grey": (128, 128, 128)}


def _fill_value(text: str, backbone: Any) -> Any:
    """Occlusion ``fill`` given as a colour name or ``#rrggbb``: the model's normalized value of that colour."""
    low = text.strip().lower()
    if low == "mean":
        return 0.0
    if low in _COLOURS:
        return backbone.fill_value(_COLOURS[low])
    if re.fullmatch(r"#[0-9a-f]{6}", low):
        return backbone.fill_value(tuple(int(low[i:i + 2], 16) for i in (1, 3, 5)))
    raise UsageError(f"--param fill={text}: give a number (normalized input space, 0 = dataset mean), "
                     "three comma-separated numbers, mean, black, gray, white or #rrggbb")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "image"


def _needs_layer(method: str) -> bool:
    from cam_core.registry import METHODS

    spec = METHODS[method]
    return bool(getattr(spec, "needs_layer", spec.kind == "cam"))


def cmd_explain(args: argparse.Namespace) -> int:
    from PIL import Image

    from cam_core import render
    from cam_core.explain import explain
    from cam_core.imaging import load_image
    from cam_core.predict import predict

    from cam_core.layers import resolve_layer
    from cam_core.registry import METHODS

    methods = _parse_methods(args.method)
    params = _parse_params(args.param, methods)
    if args.channel is not None:
        if args.layer is None:
            raise UsageError("--channel needs --layer: the feature map is channel C of that layer")
        if args.target_class is not None or args.top is not None:
            raise UsageError("--channel explains one feature map, not a class: drop --class/--top")
        if args.channel < 0:
            raise UsageError(f"--channel {args.channel}: must be 0 or more")
        refusing = [m for m in methods if not getattr(METHODS[m], "feature_target", False)]
        if refusing:
            takers = [m for m, spec in METHODS.items() if getattr(spec, "feature_target", False)]
            raise UsageError(f"--channel: {', '.join(refusing)} explain classes only; "
                             f"feature-map targets work with {', '.join(takers)}")
    name, backbone = _load_backbone(args.model, args.device)
    if args.layer is not None:
        resolve_layer(backbone.model, args.layer)  # a wrong name fails once, not once per image
    categories = list(backbone.categories) if backbone.categories is not None else None
    fixed_class = _resolve_class(args.target_class, categories) if args.target_class is not None else None
    default_layer = getattr(getattr(backbone, "spec", None), "default_layer", None)
    for kwargs in params.values():
        if isinstance(kwargs.get("fill"), str):
            kwargs["fill"] = _fill_value(kwargs["fill"], backbone)
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CamError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from None

    failed = 0
    used_stems: dict[str, int] = {}
    for path in args.images:
        stem = _safe(Path(path).stem)
        used_stems[stem] = used_stems.get(stem, 0) + 1
        if used_stems[stem] > 1:  # two inputs named alike (a/cat.jpg, b/cat.jpg) must not overwrite each other
            stem = f"{stem}_{used_stems[stem]}"
        try:
            img = load_image(path)
            x = backbone.preprocess(img)
            if args.top is not None:
                targets: list[int | None] = [p.class_idx for p in predict(backbone.model, x, categories, args.top)]
            else:
                targets = [fixed_class]
        except BrokenPipeError:
            raise
        except Exception as exc:
            failed += 1
            if args.debug:
                traceback.print_exc()
            _emit({"image": path, "error": _one_line(exc)})
            continue

        for method in methods:
            layer = args.layer
            if layer is None and _needs_layer(method):
                layer = default_layer  # the backbone's registered CAM layer (else the engine picks one)
            for target in targets:
                if args.channel is not None:
                    suffix = f"_{_safe(str(layer))}_ch{args.channel}"
                elif args.top is not None or args.target_class is not None:
                    suffix = f"_c{target}"
                else:
                    suffix = ""
                base = f"{stem}_{_safe(method)}{suffix}"
                progress = _Progress(f"{Path(path).name} {method}" + (f" class {target}" if target is not None else ""))
                try:
                    exp = explain(
                        backbone.model,
                        x,
                        method,
                        target_layer=layer,
                        target_class=target,
                        target_channel=args.channel,
                        progress=progress,
                        **params[method],
                    )
                    heat = render.heatmap_at_image_size(exp, img)
                    npy = render.save_npy(heat, out_dir / f"{base}_heatmap.npy")
                    png = render.save_png(render.overlay(img, heat, args.alpha, args.colormap),
                                          out_dir / f"{base}_overlay.png")
                    del heat
                    cls = exp.class_idx
                    record: dict[str, Any] = {
                        "image": path,
                        "model": name,
                        "method": method,
                        "layer": exp.layer,
                        "class_idx": None if cls is None else int(cls),
                        "label": (categories[int(cls)] if categories is not None and cls is not None
                                  and 0 <= int(cls) < len(categories) else None),
                        "prob": None if exp.prob is None else float(exp.prob),
                        "heatmap": str(npy),
                        "overlay": str(png),
                    }
                    if exp.channel is not None:
                        record["channel"] = int(exp.channel)
                    if exp.gradient is not None:
                        grad = render.gradient_image(exp.gradient)
                        grad_img = Image.fromarray(grad, "RGB").resize(img.size, Image.BILINEAR)
                        record["gradient"] = str(render.save_png(grad_img, out_dir / f"{base}_gradient.png"))
                    if exp.notes:
                        record["notes"] = list(exp.notes)
                    if exp.is_blank and not exp.notes:
                        record["notes"] = ["the map is blank: no positive evidence for this class"]
                    record["elapsed_ms"] = round(float(exp.elapsed_ms), 1)
                    _emit(record)
                except BrokenPipeError:
                    raise
                except Exception as exc:
                    failed += 1
                    if progress.shown and progress.tty:
                        sys.stderr.write("\n")
                    if args.debug:
                        traceback.print_exc()
                    err: dict[str, Any] = {"image": path, "method": method}
                    if target is not None:
                        err["class_idx"] = target
                    err["error"] = _one_line(exc)
                    _emit(err)
    return 1 if failed else 0


# --------------------------------------------------------------------------- methods


def _type_name(kind: Any) -> str | None:
    if kind is None:
        return None
    return kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _method_records() -> list[dict[str, Any]]:
    from cam_core.registry import METHODS

    records = []
    for name, spec in METHODS.items():
        params = {}
        for key, p in (spec.params or {}).items():
            params[key] = {
                "default": _jsonable(getattr(p, "default", None)),
                "type": _type_name(getattr(p, "type", None)),
                "min": _jsonable(getattr(p, "min", None)),
                "max": _jsonable(getattr(p, "max", None)),
                "choices": _jsonable(getattr(p, "choices", None)),
                "help": getattr(p, "help", "") or "",
            }
        records.append({
            "name": name,
            "display": spec.display,
            "kind": spec.kind,
            "citation": spec.citation,
            "summary": getattr(spec, "summary", "") or "",
            "params": params,
        })
    return records


def cmd_methods(args: argparse.Namespace) -> int:
    records = _method_records()
    if args.json:
        sys.stdout.write(json.dumps(records, ensure_ascii=False, indent=2) + "\n")
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
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


# --------------------------------------------------------------------------- layers


_SHORT_DEPTH = 2  # dotted-name depth shown without --all: "layer4.1", "blocks.6.0", "features.28"
_PASS_THROUGH = ("Identity", "Dropout", "Dropout2d", "Flatten")


def _sample_image():
    """scikit-image's chelsea() (a cat photo that ships in the wheel), as a PIL image."""
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.chelsea()).convert("RGB")


def cmd_layers(args: argparse.Namespace) -> int:
    from cam_core.imaging import load_image
    from cam_core.layers import layers

    name, backbone = _load_backbone(args.model, args.device)
    img = load_image(args.image) if args.image else _sample_image()
    x = backbone.preprocess(img)
    infos = layers(backbone.model, x)
    default = getattr(getattr(backbone, "spec", None), "default_layer", None)
    total = len(infos)
    if not args.all:  # the readable view: blocks, not every BatchNorm inside them
        infos = [i for i in infos if i.name == default
                 or (i.name.count(".") <= _SHORT_DEPTH and i.kind not in _PASS_THROUGH)]
    if args.json:
        rows = [{"name": i.name, "kind": i.kind, "shape": list(i.shape), "default": i.name == default}
                for i in infos]
        sys.stdout.write(json.dumps({"model": name, "input": list(x.shape[1:]), "default_layer": default,
                                     "layers": rows}, indent=2) + "\n")
        return 0
    shape = lambda s: "×".join(str(int(v)) for v in s)  # noqa: E731
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
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


# --------------------------------------------------------------------------- parser and entry point


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (method and model names are checked after parsing, against the registries)."""
    from cam_core.render import COLORMAPS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks instead of one-line errors")

    def model_args(p: argparse.ArgumentParser, required: bool = False) -> None:
        p.add_argument("--model", required=required, default=None,
                       help="registered model name (default: the embedded EfficientNet-Lite0)")
        p.add_argument("--device", choices=DEVICES, default="auto",
                       help="where the model runs (auto: CUDA, then MPS, then CPU)")

    parser = _Parser(prog=PROG, description="CAM Explorer: classify images and explain the decisions.")
    parser.add_argument("--debug", action="store_true", default=False, help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="{predict,explain,methods,layers}")
    sub.required = True

    p = sub.add_parser("predict", parents=[common], help="top-k classes per image, one JSON line each",
                       description="Classify images; one JSON object per image on stdout.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    model_args(p)
    p.add_argument("--top", type=_positive_int, default=5, help="how many classes (default 5)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", parents=[common], help="heat maps: overlay PNG + .npy per image and method",
                       description="Explain images; writes <stem>_<method>[_c<class>]_overlay.png and "
                                   "_heatmap.npy (the image's own height × width) and prints one JSON "
                                   "object per image and method.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    model_args(p)
    p.add_argument("--method", action="append", metavar="M",
                   help=f"method name, repeatable or comma-separated (default {DEFAULT_METHOD}; "
                        f"see `{PROG} methods`)")
    p.add_argument("--layer", default=None, help="target layer, dotted name (default: the model's CAM layer)")
    p.add_argument("--channel", type=int, default=None,
                   help="with --layer, a feature-map target for pixel methods (Zeiler & Fergus projection)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--class", dest="target_class", default=None, metavar="C",
                        help="class index or exact label (default: the top class)")
    target.add_argument("--top", type=_positive_int, default=None, metavar="K",
                        help="explain each of the top-K classes")
    p.add_argument("--alpha", type=_unit_interval, default=0.5, help="heat-map opacity in [0, 1] (default 0.5)")
    p.add_argument("--colormap", choices=list(COLORMAPS), default="jet", help="(default jet)")
    p.add_argument("--out", default="out", help="output folder (default ./out)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="method parameter, repeatable, e.g. --param patch=32 --param stride=16")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("methods", parents=[common], help="the explanation methods and their parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("layers", parents=[common], help="candidate target layers with output shapes")
    model_args(p)
    p.add_argument("--image", default=None, help="image that sets the input size (default: a sample photo)")
    p.add_argument("--all", action="store_true", help="list every spatial module, not only the blocks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_layers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 something failed, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    args.debug = debug
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return 2
    except CamError as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:  # `... | head`: the reader went away; silence the flush at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except Exception as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {_one_line(exc)} (rerun with --debug for the traceback)\n")
        return 1
