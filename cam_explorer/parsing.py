"""Command-line text to values: the argument parser, and method names, parameters and classes checked
against the registries.

Method parameters are parsed by the registry (``MethodSpec.resolve_params`` → ``ParamSpec.parse``), so a
parameter's type, default and range live only in ``cam_core/registry.py``. Adding a command is one
``@subcommand`` function here (or in the command's own module) and one ``@command`` function of the same name
in a command module imported by ``cli.py``.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cam_core.errors import CamError
from cam_core.metrics import METRICS, SETTINGS, get_metric
from cam_core.metrics.baseline import DEFAULT_COUNT
from cam_core.registry import METHODS, get_method
from cam_core.render import COLORMAPS
from cam_core.sanity import MODES
from models.backbone import FILL_COLOURS

PROG = "cam-explorer"
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_METHOD = "gradcam"


class UsageError(CamError):
    """A command line that cannot be run as given (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line: ``error: ...`` (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


# --------------------------------------------------------------------------- argument types


def number(kind: type, low: float, high: float | None, outside: str, doc: str) -> Callable[[str], Any]:
    """An argparse type: ``text`` as ``kind`` (``int`` or ``float``) in ``[low, high]`` (``high`` None: no upper
    bound; finite floats only), else a one-line ``ArgumentTypeError``; ``outside`` is formatted with ``text``."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (math.isfinite(value) and low <= value and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(outside.format(text=text))
        return value

    parse.__doc__ = doc
    return parse


unit_interval = number(float, 0.0, 1.0, "{text} is outside [0, 1]", "A number in [0, 1] (``--alpha``).")
positive_int = number(int, 1, None, "{text} must be at least 1", "A whole number ≥ 1 (``--top``).")


# --------------------------------------------------------------------------- methods and their parameters


def parse_methods(values: Sequence[str] | None) -> list[str]:
    """``--method`` values (repeatable, comma-separated, aliases allowed) -> registered names, in order, once each."""
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


def _free_form(text: str) -> Any:
    """Text for a parameter the registry leaves untyped (``object``): a list of numbers, a number, or the text."""
    if "," in text:
        try:
            return [float(v) for v in text.split(",")]
        except ValueError:
            return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _split_pair(flag: str, pair: str, example: str) -> tuple[str, str]:
    """``key=value`` -> (key with ``-`` read as ``_``, value text); anything else is a usage error."""
    key, sep, text = pair.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise UsageError(f"{flag} {pair!r}: write it as key=value, e.g. {flag} {example}")
    return key, text.strip()


def _checked_value(flag: str, key: str, text: str, param: Any, convert: Callable[[Any], Any]) -> Any:
    """``text`` for the parameter ``param`` (a ``ParamSpec``), converted by ``convert`` (which applies the
    ParamSpec); its ``CamError`` becomes a usage error naming the flag."""
    raw: Any = _free_form(text) if param.type is object else text
    try:
        value = convert(raw)
    except CamError as exc:
        raise UsageError(f"{flag} {key}={text}: {exc}") from None
    # Two checks ParamSpec.parse does not make (yet): listed choices, and NaN/inf slipping past a range.
    if param.choices and value not in param.choices:
        raise UsageError(f"{flag} {key}={text}: choose one of {', '.join(map(str, param.choices))}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{flag} {key}={text}: must be a finite number")
    return value


def _parse_value(method: str, key: str, text: str) -> Any:
    """One ``--param key=text`` for one method, converted and range-checked by the method's ``ParamSpec``."""
    spec = METHODS[method]
    return _checked_value("--param", key, text, spec.params[key], lambda raw: spec.resolve_params({key: raw})[key])


def parse_params(pairs: Sequence[str] | None, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``key=value`` strings -> per-method keyword arguments (a key goes to every chosen method that declares it)."""
    per_method: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for pair in pairs or []:
        key, text = _split_pair("--param", pair, "stride=16")
        takers = [m for m in methods if key in METHODS[m].params]
        if not takers:
            known = sorted({p for m in methods for p in METHODS[m].params})
            hint = f"; parameters of {', '.join(methods)}: {', '.join(known)}" if known else ""
            raise UsageError(f"--param {key}: no chosen method takes it{hint}")
        for m in takers:
            per_method[m][key] = _parse_value(m, key, text)
    return per_method


def parse_one_method(values: Sequence[str] | None, command: str) -> str:
    """``--method`` for a command that takes exactly one method (``sanity``)."""
    methods = parse_methods(values)
    if len(methods) > 1:
        raise UsageError(f"--method: {command} checks one method at a time, got {', '.join(methods)}")
    return methods[0]


# --------------------------------------------------------------------------- metrics and their settings

DEFAULT_METRICS = ("deletion", "insertion")
SET_ELSEWHERE = {"box": "--box x0,y0,x1,y1 (in the image's own pixels)"}  # settings with a flag of their own


def parse_metrics(values: Sequence[str] | None) -> list[str]:
    """``--metrics`` values (repeatable, comma-separated, ``-`` or ``_``) -> registered names, in order, once each."""
    wanted: list[str] = []
    for value in values or [",".join(DEFAULT_METRICS)]:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                name = get_metric(part).name
            except CamError as exc:
                raise UsageError(f"--metrics: {exc}") from None
            if name not in wanted:
                wanted.append(name)
    if not wanted:
        raise UsageError("--metrics: no metric given")
    return wanted


def parse_settings(pairs: Sequence[str] | None, metrics: Sequence[str]) -> dict[str, Any]:
    """``--setting key=value`` strings -> ``evaluate`` keywords, each checked by its ``ParamSpec`` in
    ``cam_core.metrics.SETTINGS`` and read by at least one chosen metric."""
    readable = [name for m in metrics for name in METRICS[m].settings]
    settings: dict[str, Any] = {}
    for pair in pairs or []:
        key, text = _split_pair("--setting", pair, "steps=50")
        if key in SET_ELSEWHERE:
            raise UsageError(f"--setting {key}: give it as {SET_ELSEWHERE[key]}")
        if key not in readable:
            known = ", ".join(dict.fromkeys(k for k in readable if k not in SET_ELSEWHERE)) or "none"
            raise UsageError(f"--setting {key}: no chosen metric reads it; settings of {', '.join(metrics)}: {known}")
        param = SETTINGS[key]
        settings[key] = _checked_value("--setting", key, text, param, lambda raw: param.parse(key, raw))
    return settings


def box_value(text: str) -> tuple[float, float, float, float]:
    """``--box x0,y0,x1,y1``: four finite numbers with x0 < x1 and y0 < y1 (pixels of the image file)."""
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not four numbers x0,y0,x1,y1")
    x0, y0, x1, y1 = values
    if not (x0 < x1 and y0 < y1):
        raise argparse.ArgumentTypeError(f"{text!r} needs x0 < x1 and y0 < y1")
    return x0, y0, x1, y1


baseline_value = number(int, 0, 256, "{text} is outside 0..256 random maps",
                        "``--baseline``: how many random maps, 0 to 256.")
seed_value = number(int, 0, 2**32 - 1, "{text} is outside 0..4294967295",
                    "``--seed``: a whole number from 0 to 2**32 - 1.")


_COLOURS = {**FILL_COLOURS, "gray": FILL_COLOURS["grey"]}  # the app's table, plus the American spelling


def colour_value(key: str, text: str, backbone: Any, flag: str = "--param") -> Any:
    """A free-form parameter given as a colour (an occlusion ``fill``): that colour in the model's normalized
    input space; ``mean`` is 0 there (the dataset mean)."""
    low = text.strip().lower()
    if low == "mean":
        return 0.0
    if low in _COLOURS:
        return backbone.fill_value(_COLOURS[low])
    if re.fullmatch(r"#[0-9a-f]{6}", low):
        return backbone.fill_value(tuple(int(low[i:i + 2], 16) for i in (1, 3, 5)))
    raise UsageError(f"{flag} {key}={text}: give a number (normalized input space, 0 = dataset mean), "
                     "three comma-separated numbers, mean, black, gray, white or #rrggbb")


def apply_colours(params: dict[str, dict[str, Any]], backbone: Any) -> None:
    """Replace, in place, every parameter value still text (free-form parameters only) by its colour value."""
    for kwargs in params.values():
        colours_in(kwargs, backbone)


def colours_in(kwargs: dict[str, Any], backbone: Any, flag: str = "--param") -> None:
    """Replace, in place, every value of one keyword dict still text by its colour value (``fill=white``)."""
    for key, value in kwargs.items():
        if isinstance(value, str):
            kwargs[key] = colour_value(key, value, backbone, flag)


def resolve_class(value: str, categories: Sequence[str] | None) -> int:
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


# --------------------------------------------------------------------------- the parser

SubparserBuilder = Callable[[Any, argparse.ArgumentParser], argparse.ArgumentParser]
SUBCOMMANDS: list[SubparserBuilder] = []


def subcommand(build: SubparserBuilder) -> SubparserBuilder:
    """Register ``build(subparsers, common) -> parser`` (its command name must match a ``commands`` function)."""
    SUBCOMMANDS.append(build)
    return build


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="registered model name (default: the embedded EfficientNet-Lite0)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the model runs (auto: CUDA, then MPS, then CPU)")
    p.add_argument("--input-size", type=positive_int, default=None, metavar="PX",
                   help="short side photos are resized to (default: the model's own, 224 for the embedded "
                        "model); larger gives finer maps of small objects, at (PX/224)² the time")


@subcommand
def _predict(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", parents=[common], help="top-k classes per image, one JSON line each",
                       description="Classify images; one JSON object per image on stdout.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    _model_args(p)
    p.add_argument("--top", type=positive_int, default=5, help="how many classes (default 5)")
    return p


def _method_arg(p: argparse.ArgumentParser, many: bool = True) -> None:
    how = "repeatable or comma-separated" if many else "one"
    p.add_argument("--method", action="append", metavar="M",
                   help=f"method, {how} (default {DEFAULT_METHOD}): {', '.join(METHODS)}; "
                        f"see `{p.prog.rsplit(' ', 1)[0]} methods`")


def _map_args(p: argparse.ArgumentParser, many_methods: bool = True) -> None:
    """What every command that draws maps takes: images, model, method(s), layer, method parameters."""
    p.add_argument("images", nargs="+", metavar="IMAGE")
    _model_args(p)
    _method_arg(p, many_methods)
    p.add_argument("--layer", default=None, help="target layer, dotted name (default: the model's CAM layer)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="method parameter, repeatable, e.g. --param patch=32 --param stride=16")


def _class_args(p: argparse.ArgumentParser, top: bool = True) -> None:
    """``--class C`` (and, where several maps per image make sense, ``--top K`` instead)."""
    target = p.add_mutually_exclusive_group() if top else p
    target.add_argument("--class", dest="target_class", default=None, metavar="C",
                        help="class index or exact label (default: the top class)")
    if top:
        target.add_argument("--top", type=positive_int, default=None, metavar="K",
                            help="each of the top-K classes")


def _look_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=unit_interval, default=0.5, help="heat-map opacity in [0, 1] (default 0.5)")
    p.add_argument("--colormap", choices=list(COLORMAPS), default="jet", help="(default jet)")


@subcommand
def _explain(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("explain", parents=[common], help="heat maps: overlay PNG + .npy per image and method",
                       description="Explain images; writes <stem>_<method>[_c<class>]_overlay.png and "
                                   "_heatmap.npy (the image's own height × width) and prints one JSON "
                                   "object per image and method. Long methods show progress on stderr.")
    _map_args(p)
    p.add_argument("--channel", type=int, default=None,
                   help="with --layer, a feature-map target for pixel methods (Zeiler & Fergus projection)")
    _class_args(p)
    _look_args(p)
    p.add_argument("--out", default="out", help="output folder (default ./out)")
    p.add_argument("--report", action="store_true",
                   help="also write a self-contained HTML report per map (<...>_report.html)")
    return p


@subcommand
def _evaluate(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", parents=[common], help="is the map faithful? deletion, insertion, ROAD … scores",
                       description="Score each method's map on each image with faithfulness and localization "
                                   "metrics (cam_core.evaluate); one JSON object per image and method with "
                                   "each metric's score and curve points. Progress on stderr.")
    _map_args(p)
    _class_args(p)
    p.add_argument("--metrics", action="append", metavar="NAMES",
                   help=f"metrics, comma-separated (default {','.join(DEFAULT_METRICS)}): {', '.join(METRICS)}")
    settable = ", ".join(k for k in SETTINGS if k not in SET_ELSEWHERE)
    p.add_argument("--setting", action="append", metavar="KEY=VALUE",
                   help=f"metric setting, repeatable ({settable}); ROAD's pixel_std defaults to the model's std")
    p.add_argument("--box", type=box_value, default=None, metavar="X0,Y0,X1,Y1",
                   help="the object's box in the image file's pixels (pointing_game, energy_in_box)")
    p.add_argument("--baseline", type=baseline_value, default=DEFAULT_COUNT, metavar="N",
                   help=f"also score N seeded random smooth maps once per image and class, for each metric's "
                        f"verdict (default {DEFAULT_COUNT}; 0 = none)")
    return p


@subcommand
def _sanity(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("sanity", parents=[common], help="does the map depend on the model? (Adebayo et al. 2018)",
                       description="Randomize the model's weights stage by stage (on a copy) and compare each "
                                   "map with the original (cam_core.sanity_check); one JSON object per image "
                                   "with one entry per stage and a verdict. Progress on stderr.")
    _map_args(p, many_methods=False)
    _class_args(p, top=False)
    p.add_argument("--mode", choices=MODES, default=MODES[0],
                   help="cascading: top-down, cumulative; independent: one stage at a time (default cascading)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of the random weights and class (default 0)")
    p.add_argument("--out", default=None,
                   help="also write each stage's map as a PNG thumbnail over the image into this folder")
    _look_args(p)
    return p


@subcommand
def _methods(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("methods", parents=[common], help="the explanation methods and their parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


@subcommand
def _layers(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("layers", parents=[common], help="candidate target layers with output shapes")
    _model_args(p)
    p.add_argument("--image", default=None, help="image that sets the input size (default: a sample photo)")
    p.add_argument("--all", action="store_true", help="list every spatial module, not only the blocks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser (method and model names are checked after parsing, against the registries)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks instead of one-line errors")

    parser = Parser(prog=prog, description="CAM Explorer: classify images and explain the decisions.")
    parser.add_argument("--debug", action="store_true", default=False, help="show tracebacks")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    sub.required = True
    names = [build(sub, common).prog.split()[-1] for build in SUBCOMMANDS]
    sub.metavar = "{" + ",".join(names) + "}"
    return parser
