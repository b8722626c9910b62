"""``cam-explorer audit DATA --method gradcam[,…] --out AUDIT_DIR``: the model across a whole image set, one row
per image in an audit folder (``cam_core.audit``). The same command on the same folder resumes it. Its parser and
its command live here together; importing this module registers both."""
from __future__ import annotations

import argparse
import functools
import math
import time
from importlib import resources
from pathlib import Path
from typing import Any

from cam_core import __version__
from cam_core.audit.cost import AUDIT_BASELINE, ImageCost, expected_seconds
from cam_core.audit.engine_local import DEFAULT_WORKERS, LocalEngine
from cam_core.audit.inputs import read_inputs
from cam_core.audit.job import AuditJob, run_audit, versions, weights_sha256
from cam_core.audit.location import is_uri
from cam_core.audit.rows import METRIC_COLUMNS
from cam_core.audit.progress import RunState
from cam_core.audit.scan import Scanner, ScanSettings, prepare, resolve_methods
from cam_core.batching import batched_forward
from cam_core.device import model_device
from cam_core.audit.store import inputs_fingerprint
from cam_core.recorder import resolve_layer
from models import preprocess as model_preprocess

from . import writers
from .commands import command, load_backbone
from .parsing import UsageError, _method_arg, _model_args, parse_methods, parse_params, positive_int, subcommand

ENGINES = ("local", "ray")
DEFAULT_BATCH = 16
CALIBRATE = 32  # copies of the first image run once to time the model before a long audit (the ladder to 8, warm)


@subcommand
def _audit(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("audit", parents=[common], help="explain a whole image set into an audit folder",
                       description="Run the model and the chosen methods over an image set (an ImageFolder, "
                                   "a CSV path,label[,x0,y0,x1,y1] or a plain folder) and write one row per image "
                                   "to AUDIT_DIR (Parquet parts + manifest.json, read with DuckDB). Rerun the "
                                   "same command to resume. Progress on stderr, one JSON summary on stdout.")
    p.add_argument("data", metavar="DATA", help="image folder (one subfolder per class, or plain) or a .csv list")
    _model_args(p)
    _method_arg(p)
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="method parameter, repeatable")
    p.add_argument("--layer", default=None, help="target layer, dotted name (default: the model's own)")
    p.add_argument("--metrics", default=None, metavar="M[,M]",
                   help=f"faithfulness scores per map: {', '.join(METRIC_COLUMNS)} (default: none; slow)")
    p.add_argument("--baseline", type=int, default=AUDIT_BASELINE, metavar="N",
                   help=f"random maps each --metrics score is judged against, once per image (default "
                        f"{AUDIT_BASELINE}; 0: none; docs/audit.md says why)")
    p.add_argument("--out", required=True, metavar="AUDIT_DIR", help="audit folder (created, or resumed); a URI such as s3://bucket/audits/run1 writes it there")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local (this process; decode threads) or ray (Ray Data; --address for a cluster). "
                   "On one machine Ray adds a ~10 s start: local is faster below a few thousand images")
    p.add_argument("--batch", type=positive_int, default=DEFAULT_BATCH,
                   help=f"images per model batch and per part file (default {DEFAULT_BATCH})")
    p.add_argument("--workers", type=positive_int, default=None,
                   help=f"decode threads (local, default {DEFAULT_WORKERS}) or model actors (ray; default one "
                        "on all the CPUs of a Ray started here, one per GPU, or 2 on a cluster)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start Ray in this process)")
    return p


def _metrics(text: str | None) -> list[str]:
    names = [m.strip().lower().replace("-", "_") for m in (text or "").split(",") if m.strip()]
    unknown = [m for m in names if m not in METRIC_COLUMNS]
    if unknown:
        raise UsageError(f"--metrics {unknown[0]!r}: an audit scores {', '.join(METRIC_COLUMNS)}")
    return list(dict.fromkeys(names))


def imagenet_wnids(count: int) -> list[str] | None:
    """ImageNet's WordNet IDs in class order (timm's list, the same sorted order as torchvision's labels), so an
    Imagenette-style folder (``n01440764/…``) matches; ``None`` for a model without 1,000 classes."""
    if count != 1000:
        return None
    text = resources.files("timm").joinpath("data/_info/imagenet_synsets.txt").read_text(encoding="utf-8")
    wnids = [line.strip() for line in text.splitlines() if line.strip()]
    return wnids if len(wnids) == 1000 else None


class AuditProgress(writers.StatusLine):
    """The run's state on stderr: done/total images (the batch in flight counted by its work units), images/s
    and the time left from the units. A terminal line rewritten a few times a second; in a log, a line every
    ``LOG_EVERY`` seconds and one per part."""

    LOG_EVERY = 10.0
    TTY_EVERY = 0.25

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self.before = 0
        self._last = -math.inf

    @staticmethod
    def line(state: RunState) -> str:
        total = state.todo + state.before
        done = state.before + state.images
        text = f"audit: {done:.1f}/{total} images" if done % 1 else f"audit: {int(done)}/{total} images"
        if state.before:
            text += f" ({state.before} done before)"
        if state.rate and state.rate < 0.1:
            text += f", {writers.duration(1 / state.rate)} an image"
        elif state.rate:
            text += f", {state.rate:.2f} images/s" if state.rate < 1 else f", {state.rate:.1f} images/s"
        if state.images >= state.todo:
            return text + f" in {writers.duration(state.seconds)}"
        if state.left_s is not None and state.images > 0:
            text += f", about {writers.duration(state.left_s)} left"
        return text

    def __call__(self, state: RunState) -> None:
        self.before = state.before
        now = time.monotonic()
        last = state.images >= state.todo
        if not (state.part or last) and now - self._last < (self.TTY_EVERY if self.tty else self.LOG_EVERY):
            return
        if state.todo == 0 or (state.images == 0 and self.shown):
            return
        self._last = now
        self.write(self.line(state), last)


def first_image(items: Any, preprocess: Any) -> Any:
    """The first image of the set that decodes (its preprocessed ``x``), for the cost estimate; None if none."""
    for index, item in enumerate(items[:8]):
        p = prepare(index, item, preprocess)
        if p.x is not None:
            return p.x
    return None


def announce_cost(model: Any, x: Any, settings: ScanSettings, images: int, cost: ImageCost) -> None:
    """Before an audit with deletion/insertion: the model runs it takes and, timed on one small batch of the
    first image, about how long (the metrics multiply the work by hundreds)."""
    if not settings.metrics:
        return
    if expected_seconds(model, x, cost, 1) is None:
        batched_forward(model, x.expand(CALIBRATE, *x.shape[1:]).to(model_device(model)))  # learns the speed
    seconds = expected_seconds(model, x, cost, images)
    against = f" against {settings.baseline} random maps" if settings.baseline else ""
    text = (f"audit: {', '.join(settings.metrics)}{against} on {len(settings.methods)} method(s): about "
            f"{cost.units:,.0f} model runs an image ({cost.units * images:,.0f} for {images} images)")
    if seconds is not None:
        text += f", expected about {writers.duration(seconds)}"
    writers.say(text)


def _command_line(args: argparse.Namespace, methods: list[str], metrics: list[str]) -> list[str]:
    """The command that makes (or resumes) this audit."""
    argv = ["cam-explorer", "audit", args.data, "--method", ",".join(methods), "--out", args.out]
    for flag, value in (("--model", args.model), ("--input-size", args.input_size), ("--layer", args.layer),
                        ("--metrics", ",".join(metrics) or None), ("--engine", args.engine),
                        ("--batch", args.batch), ("--address", args.address)):
        if value is not None:
            argv += [flag, str(value)]
    if metrics:
        argv += ["--baseline", str(args.baseline)]
    for pair in args.param or []:
        argv += ["--param", pair]
    return argv


@command
def audit(args: argparse.Namespace) -> int:
    """Audit DATA into --out (or resume it) and print one JSON summary; exit 1 when any image failed."""
    methods = parse_methods(args.method)
    params = parse_params(args.param, methods)
    metrics = _metrics(args.metrics)
    if args.baseline < 0:
        raise UsageError(f"--baseline {args.baseline}: give 0 (no baseline) or more random maps")
    if args.address and args.engine != "ray":
        raise UsageError("--address is for --engine ray")
    name, backbone = load_backbone(args.model, args.device, args.input_size)
    layer = resolve_layer(backbone.model, args.layer or backbone.spec.default_layer)[0]
    inputs = read_inputs(args.data, backbone.categories, imagenet_wnids(len(backbone.categories)))
    for message in inputs.messages:
        writers.say(f"warning: {message}")
    if not inputs.items:
        raise UsageError(f"{args.data!r}: no images found (JPEG, PNG, WebP, BMP, TIFF or GIF)")
    baseline = args.baseline if metrics else 0
    resolved = resolve_methods(params)
    settings = ScanSettings(layer, resolved, tuple(metrics), baseline)
    spec = backbone.spec
    preprocess = functools.partial(model_preprocess.preprocess, input_size=spec.input_size, mean=spec.mean,
                                   std=spec.std, device="cpu")
    job = AuditJob(inputs.items, backbone.categories, settings, preprocess, args.batch)
    manifest = {"model": name, "weights": spec.weights, "weights_sha256": weights_sha256(backbone.model),
                "input_size": spec.input_size, "layer": layer, "methods": resolved, "metrics": metrics,
                "baseline": baseline, "source": args.data if is_uri(args.data) else str(Path(args.data).resolve()), "layout": inputs.layout,
                "inputs": len(inputs.items), "inputs_sha256": inputs_fingerprint(i.name for i in inputs.items),
                "duplicates": inputs.duplicates, "unknown_labels": inputs.unknown,
                "versions": versions(cam_explorer=__version__), "device": str(backbone.device),
                "command": _command_line(args, methods, metrics), "batch": args.batch}
    if args.engine == "ray":
        # Ray is optional (requirements-ray.txt) and slow to import: only for --engine ray
        from cam_core.audit.engine_ray import RayEngine  # noqa: PLC0415 - lazy on purpose: Ray is optional

        engine: Any = RayEngine(functools.partial(load_model, name, args.input_size), args.device,
                                address=args.address, actors=args.workers)
    else:
        engine = LocalEngine(backbone.model, workers=args.workers or DEFAULT_WORKERS)
    per_image = None
    x = first_image(inputs.items, preprocess)
    if x is not None:
        cost = Scanner(backbone.model, backbone.categories, settings).cost(x)
        per_image = cost.units
        announce_cost(backbone.model, x, settings, len(inputs.items), cost)
    bar = AuditProgress()
    started = time.perf_counter()
    try:
        final = run_audit(args.out, job, manifest, engine, bar, per_image=per_image)
    except BaseException:
        bar.interrupted()
        raise
    seconds = time.perf_counter() - started
    counts = final["counts"]
    written = counts["done"] - bar.before
    labelled = counts.get("labelled", 0)
    writers.emit({"audit": args.out if is_uri(args.out) else str(Path(args.out)), "images": final["inputs"], "done": counts["done"],
                  "written": written, "errors": counts["errors"], "labelled": labelled,
                  "correct_top1": counts["correct_top1"], "correct_top5": counts["correct_top5"],
                  "top1": round(counts["correct_top1"] / labelled, 4) if labelled else None,
                  "top5": round(counts["correct_top5"] / labelled, 4) if labelled else None,
                  "engine": args.engine, "seconds": round(seconds, 2),
                  "images_per_s": round(written / seconds, 2) if seconds > 0 and written else None})
    return 1 if counts["errors"] else 0


def load_model(name: str, input_size: int | None, device: str) -> Any:
    """The registered model's ``nn.Module`` on ``device``: what a Ray actor loads (a picklable module function)."""
    import models  # noqa: PLC0415 - in the actor's process

    return models.load(name, device=device, input_size=input_size).model


