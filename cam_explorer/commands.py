"""The commands: one function per command, ``(args) -> exit code`` (0 ok, 1 something failed; a
``UsageError`` raised here becomes exit code 2 in ``cli.main``).

Each command calls the same ``cam_core`` functions the app calls, and decides what to do from the
registry's flags (``needs_layer``, ``long_running``, ``feature_target``), never from a method's name.
A failing image gets an ``error`` record and the other images still run.

Adding a command: an ``@command`` function here named like its ``@subcommand`` parser in ``parsing.py`` (or
both in a module of its own, imported by ``cli.py``, which registers every command).
The commands that draw maps (``explain``, ``evaluate``, ``sanity``) share their set-up (``open_model``), their
image loop (``each_image``) and the run of one method with progress (``explain_one``).
"""
from __future__ import annotations

import argparse
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from skimage import data as skimage_data

import models
from cam_core import __version__, render
from cam_core.device import pick_device
from cam_core.explain import explain as run_method
from cam_core.imaging import load_image
from cam_core.layers import layers as spatial_layers, resolve_layer
from cam_core.metrics import METRICS, evaluate as score, with_pixel_std
from cam_core.predict import predict as top_classes
from cam_core.registry import METHODS
from cam_core.report import build_report
from cam_core.sanity import sanity_check

from . import writers
from .parsing import (UsageError, apply_colours, colours_in, parse_methods, parse_metrics, parse_one_method,
                      parse_params, parse_settings, resolve_class)

Command = Callable[[argparse.Namespace], int]
T = TypeVar("T")
COMMANDS: dict[str, Command] = {}


def command(fn: Command) -> Command:
    """Register ``fn`` as the command named like it (``_`` → ``-``)."""
    COMMANDS[fn.__name__.replace("_", "-")] = fn
    return fn


def load_backbone(name: str | None, device_pref: str, input_size: int | None = None) -> tuple[str, Any]:
    """The registered model on the chosen device, and its name (an unknown name or an input size out of range
    is a usage error)."""
    device = pick_device(device_pref)
    name = name or models.DEFAULT_MODEL
    known = list(models.available())
    if known and name not in known:
        raise UsageError(f"unknown model {name!r}; choose one of {', '.join(known)}")
    why = models.input_size_error(input_size) if input_size is not None else None
    if why:
        raise UsageError(f"--input-size {input_size}: {why}")
    return name, models.load(name, device=device, input_size=input_size)


class Failures:
    """The failed items of one command: each reported as a JSON line with a one-line ``error`` (the traceback
    only with ``--debug``), the others going on; ``exit_code`` is 1 once anything failed."""

    def __init__(self, debug: bool) -> None:
        self.debug = debug
        self.count = 0

    def report(self, record: dict[str, Any], exc: BaseException) -> None:
        self.count += 1
        if self.debug:
            traceback.print_exc()
        record["error"] = writers.one_line(exc)
        writers.emit(record)

    @contextmanager
    def guard(self, record: dict[str, Any]) -> Iterator[None]:
        """One item: its failure becomes its error line (``record`` plus ``error``) and the command goes on;
        a closed output pipe still stops it."""
        try:
            yield
        except BrokenPipeError:
            raise
        except Exception as exc:  # one bad item must not stop the others
            self.report(record, exc)

    def attempt(self, record: dict[str, Any], compute: Callable[[], T]) -> T | None:
        """``compute()``, or ``None`` once its failure became ``record``'s error line (as ``guard``)."""
        with self.guard(record):
            return compute()
        return None

    @property
    def exit_code(self) -> int:
        return 1 if self.count else 0


def _item(path: str, method: str, target: int | None) -> dict[str, Any]:
    """What names one map in an error line: the image, the method and, when one was asked for, the class."""
    return {"image": path, "method": method} | ({} if target is None else {"class_idx": target})


@dataclass
class Opened:
    """What a map command sets up once, before its images: the model, its classes, the fixed ``--class``,
    the default CAM layer, and each method's parameters (colours already in the model's input space)."""

    name: str
    backbone: Any
    categories: list[str] | None
    fixed_class: int | None
    default_layer: str | None
    params: dict[str, dict[str, Any]]

    def layer_for(self, method: str, given: str | None) -> str | None:
        """``--layer``, else the backbone's registered CAM layer for methods that need one (else the engine's)."""
        if given is None and METHODS[method].needs_layer:
            return self.default_layer
        return given

    def label(self, cls: int | None) -> str | None:
        return _label(self.categories, cls)


def open_model(args: argparse.Namespace, methods: list[str]) -> Opened:
    """Parse ``--param`` for ``methods``, load ``--model`` on ``--device``, check ``--layer`` and ``--class``:
    every mistake fails here once, not once per image."""
    params = parse_params(args.param, methods)
    name, backbone = load_backbone(args.model, args.device, args.input_size)
    if args.layer is not None:
        resolve_layer(backbone.model, args.layer)
    categories = list(backbone.categories) if backbone.categories is not None else None
    fixed_class = resolve_class(args.target_class, categories) if args.target_class is not None else None
    default_layer = getattr(getattr(backbone, "spec", None), "default_layer", None)
    apply_colours(params, backbone)
    return Opened(name, backbone, categories, fixed_class, default_layer, params)


def each_image(paths: list[str], backbone: Any, failures: Failures) -> Iterator[tuple[str, Any, Any]]:
    """``(path, image, x)`` for each file that loads; a file that does not is reported and skipped."""
    def load(path: str) -> tuple[Any, Any]:
        img = load_image(path)
        return img, backbone.preprocess(img)

    for path in paths:
        loaded = failures.attempt({"image": path}, lambda: load(path))  # one bad image must not stop the others
        if loaded is not None:
            yield path, *loaded


# --------------------------------------------------------------------------- predict


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


# --------------------------------------------------------------------------- explain


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


def _class_targets(args: argparse.Namespace, backbone: Any, x: Any, categories: list[str] | None,
                   fixed_class: int | None) -> list[int | None]:
    """The classes to explain for one image: ``--top K`` predicted, else ``--class`` (``None``: the top one)."""
    if args.top is None:
        return [fixed_class]

    return [p.class_idx for p in top_classes(backbone.model, x, categories, args.top)]


def _label(categories: list[str] | None, cls: int | None) -> str | None:
    """The label of class ``cls``, or ``None`` (no labels, no class, out of range)."""
    if categories is None or cls is None or not 0 <= int(cls) < len(categories):
        return None
    return categories[int(cls)]


def _report_html(args: argparse.Namespace, path: str, name: str, backbone: Any, img: Any, x: Any,
                 overlay: Any, exp: Any, categories: list[str] | None) -> str:
    """The app's HTML report (``cam_core.report``) for one map."""
    spec = METHODS[exp.method]
    return build_report(
        original=img, overlay=overlay, image_name=Path(path).name, model=name, method=spec.display,
        method_citation=spec.citation, layer=exp.layer, class_idx=exp.class_idx,
        class_label=_label(categories, exp.class_idx),
        params={**exp.params, "alpha": args.alpha, "colormap": args.colormap},
        top=top_classes(backbone.model, x, categories, 5), score=exp.score, prob=exp.prob,
        elapsed_ms=exp.elapsed_ms, notes=exp.notes, version=__version__)


def explain_one(opened: Opened, what: str, x: Any, method: str, layer: str | None, target: int | None,
                channel: int | None = None) -> Any:
    """``cam_core.explain`` for one (image, method, class); a long method announces its expected time
    (``MethodSpec.expected_seconds``, as the app does) and draws progress on stderr (``what`` names the run)."""
    params = opened.params[method]
    spec = METHODS[method]
    progress = writers.Progress(what) if spec.long_running else None
    if progress is not None:
        writers.announce(what, spec.expected_seconds(opened.backbone.model, x, params, layer))
    try:
        exp = run_method(opened.backbone.model, x, method, target_layer=layer, target_class=target,
                         target_channel=channel, progress=progress, **params)
    except BaseException:
        if progress is not None:
            progress.interrupted()
        raise
    return exp


def _map_record(opened: Opened, path: str, exp: Any) -> dict[str, Any]:
    """The fields every per-map JSON line starts with: which image, model, method, layer and class."""
    cls = exp.class_idx
    return {
        "image": path,
        "model": opened.name,
        "method": exp.method,
        "layer": exp.layer,
        "class_idx": None if cls is None else int(cls),
        "label": opened.label(cls),
        "prob": None if exp.prob is None else float(exp.prob),
    }


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
            {"image": path}, lambda: _class_targets(args, backbone, x, opened.categories, opened.fixed_class))
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
                with failures.guard(_item(path, method, target)):
                    exp = explain_one(opened, what, x, method, layer, target, args.channel)
                    heat = render.heatmap_at_image_size(exp, img)
                    overlay = render.overlay(img, heat, args.alpha, args.colormap)
                    npy = out.heatmap(base, heat)
                    png = out.overlay(base, overlay)
                    del heat
                    record = _map_record(opened, path, exp)
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


# --------------------------------------------------------------------------- evaluate


def box_in_input(box: tuple[float, float, float, float], img: Any, x: Any) -> tuple[float, ...]:
    """A box in the image file's pixels, in x's pixels: preprocessing resizes the whole image (no crop) to
    x's height × width, so each axis scales by its own factor (``models/preprocess.py``)."""
    sx = x.shape[-1] / img.width
    sy = x.shape[-2] / img.height
    x0, y0, x1, y1 = box
    return x0 * sx, y0 * sy, x1 * sx, y1 * sy


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
            _class_targets(args, backbone, x, opened.categories, opened.fixed_class),
            {"box": box_in_input(args.box, img, x)} if args.box is not None else {}))
        if resolved is None:
            continue
        targets, box = resolved
        for method in methods:
            layer = opened.layer_for(method, args.layer)
            for target in targets:
                what = f"{Path(path).name} {method}" + (f" class {target}" if target is not None else "")
                with failures.guard(_item(path, method, target)):
                    exp = explain_one(opened, what, x, method, layer, target)
                    progress = writers.Progress(f"{what} {'+'.join(metrics)}")
                    try:
                        results = score(backbone.model, x, exp, metrics, exp.class_idx, progress=progress,
                                        baseline=args.baseline, **settings, **box)
                    except BaseException:
                        progress.interrupted()
                        raise
                    record = _map_record(opened, path, exp)
                    record["metrics"] = {name: writers.metric_record(r) for name, r in results.items()}
                    record["elapsed_ms"] = round(float(exp.elapsed_ms), 1)
                    writers.emit(record)
                    for name, r in results.items():
                        writers.say(f"{what} {name} {r.score:.4g}" + (f": {r.verdict}" if r.verdict else ""))
    return failures.exit_code


# --------------------------------------------------------------------------- sanity


@command
def sanity(args: argparse.Namespace) -> int:
    """The model-randomization check per image: ``SanityResult.as_dict()`` plus the image, model and label."""
    method = parse_one_method(args.method, "sanity")
    opened = open_model(args, [method])
    backbone = opened.backbone
    layer = opened.layer_for(method, args.layer)
    out = writers.OutputFolder(args.out) if args.out is not None else None
    failures = Failures(args.debug)

    for path, img, x in each_image(args.images, backbone, failures):
        progress = writers.Progress(f"{Path(path).name} sanity {method} ({args.mode})")
        try:
            result = sanity_check(backbone.model, x, method, opened.fixed_class, target_layer=layer,
                                  mode=args.mode, seed=args.seed, progress=progress,
                                  categories=opened.categories, **opened.params[method])
            record: dict[str, Any] = {"image": path, "model": opened.name, **result.as_dict(),
                                      "class_idx": result.class_idx, "label": opened.label(result.class_idx)}
            if out is not None:
                base = f"{out.stem_for(path)}_{writers.safe_name(method)}_sanity"
                record.update(out.sanity_thumbnails(base, img, result, args.alpha, args.colormap))
                for entry, thumb in zip(record["stages"], record.pop("stage_thumbnails")):
                    entry["thumbnail"] = thumb
            writers.emit(record)
            writers.say(f"{Path(path).name} {result.summary()}")
        except BrokenPipeError:
            raise
        except Exception as exc:
            progress.interrupted()
            failures.report({"image": path, "method": method}, exc)
    return failures.exit_code


# --------------------------------------------------------------------------- methods


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


# --------------------------------------------------------------------------- layers


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
