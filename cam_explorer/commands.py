"""What every command shares: the table (``@command``, ``COMMANDS``) and the set-up of the map commands.

A command is one function ``(args) -> exit code`` (0 ok, 1 something failed; a ``UsageError`` becomes exit
code 2 in ``cli.main``) in a module per command group — ``info_commands`` (predict, methods, layers),
``explain_command``, ``evaluate_command``, ``sanity_command``, ``visualize_command``, ``audit_command``,
``audit_report_command``, ``top_patches_command``, ``walkthrough_command``, ``evolution_command`` — each
registered by ``cli.py`` importing it. Each calls the same ``cam_core`` functions the app calls, and decides
what to do from the registry's flags (``needs_layer``, ``long_running``, ``feature_target``), never from a
method's name. A failing image gets an ``error`` record and the other images still run.

Adding a command: an ``@command`` function named like its ``@subcommand`` parser (``parsing.py``, or beside it
in the command's own module), and its module imported in ``cli.py``. The map commands (explain, evaluate,
sanity) share their set-up (``open_model``), their image loop (``each_image``) and the run of one method with
progress (``explain_one``), all here.
"""
from __future__ import annotations

import argparse
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import models
from cam_core.device import pick_device
from cam_core.explain import explain as run_method
from cam_core.imaging import load_image
from cam_core.layers import resolve_layer
from cam_core.predict import predict as top_classes
from cam_core.registry import METHODS

from . import writers
from .parsing import UsageError, apply_colours, parse_params, resolve_class

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


def item_record(path: str, method: str, target: int | None) -> dict[str, Any]:
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
        return label_of(self.categories, cls)


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


def class_targets(args: argparse.Namespace, backbone: Any, x: Any, categories: list[str] | None,
                   fixed_class: int | None) -> list[int | None]:
    """The classes to explain for one image: ``--top K`` predicted, else ``--class`` (``None``: the top one)."""
    if args.top is None:
        return [fixed_class]

    return [p.class_idx for p in top_classes(backbone.model, x, categories, args.top)]


def label_of(categories: list[str] | None, cls: int | None) -> str | None:
    """The label of class ``cls``, or ``None`` (no labels, no class, out of range)."""
    if categories is None or cls is None or not 0 <= int(cls) < len(categories):
        return None
    return categories[int(cls)]


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


def map_record(opened: Opened, path: str, exp: Any) -> dict[str, Any]:
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
