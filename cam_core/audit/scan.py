"""The one pass over an image set: each batch's decoded images are grouped by input shape, each group runs ONE
recorded forward at the layer (and one partial backward from every image's own top-1 score), every layer CAM
at that layer is its formula on the same A and G, other methods go through ``explain`` one image at a time,
and each image becomes one row (``rows.py``).

Set-level features reuse the pass: a ``consumer`` gets each group's :class:`BatchRecord` (inputs, logits,
the classes explained, the layer's activations and gradients) — e.g. top-activating patches per channel.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import nn

from ..device import model_device
from ..errors import CamError
from ..explain import explain, heatmap_from
from ..hygiene import eval_mode
from ..imaging import load_image
from ..methods.layer_cam import LAYERCAM, LayerCam
from ..metrics import evaluate
from ..recorder import record, resolve_layer
from ..registry import MethodSpec, get_method
from .cost import ImageCost, image_cost, method_runs
from .inputs import InputItem
from .location import is_uri, open_input
from .rows import base_row, box_columns, box_in_input, map_columns, metric_columns, prediction_columns

Preprocess = Callable[[Image.Image], torch.Tensor]  # RGB image -> 1×3×H×W float32 on the CPU


@dataclass
class Prepared:
    """One decoded, preprocessed image (``x`` on the CPU), or the one-line reason it could not be read."""

    index: int
    item: InputItem
    x: torch.Tensor | None
    width: int = 0
    height: int = 0
    error: str | None = None


def prepare(index: int, item: InputItem, preprocess: Preprocess) -> Prepared:
    """Decode and preprocess one image; a bad file gives a ``Prepared`` with ``error`` (never raises for it)."""
    try:
        if is_uri(item.path):
            with open_input(item.path) as stream:
                image = load_image(stream, item.name)
        else:
            image = load_image(item.path, item.name)
        x = preprocess(image)
    except CamError as exc:
        return Prepared(index, item, None, error=str(exc))
    except OSError as exc:  # missing or unreadable file
        return Prepared(index, item, None, error=f"{item.name}: {exc.strerror or exc}")
    return Prepared(index, item, x.detach().cpu(), image.width, image.height)


@dataclass
class BatchRecord:
    """What one same-shape group's recorded pass saw, for consumers of the pass (all on the model's device)."""

    indices: list[int]
    x: torch.Tensor  # N×3×H×W
    logits: torch.Tensor  # N×classes
    classes: torch.Tensor  # N: each image's top-1 class, the one explained
    layer: str
    activations: torch.Tensor  # N×K×u×v (map layout)
    gradients: torch.Tensor | None = None  # ∂(each image's class score)/∂A, when a gradient CAM was asked


Consumer = Callable[[BatchRecord], None]
Work = Callable[[float], None]  # work units just done (model runs, cost.py), called often within a batch


@dataclass(frozen=True)
class ScanSettings:
    """What the pass computes: the layer, the methods ({name: params}), deletion/insertion, the baseline size."""

    layer: str
    methods: Mapping[str, Mapping[str, Any]]
    metrics: tuple[str, ...] = ()
    baseline: int = 0
    top: int = 5


def resolve_methods(methods: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Registry names with their parameters resolved (defaults filled in, ranges checked)."""
    out: dict[str, dict[str, Any]] = {}
    for name, params in methods.items():
        spec = get_method(name)
        out[spec.name] = spec.resolve_params(dict(params))
    return out


def shared_cam(spec: MethodSpec, params: Mapping[str, Any]) -> LayerCam | None:
    """The ``LayerCam`` formula a method is, when it can run on a group's shared A and G (no parameters that
    change the pass); ``None`` for every other method."""
    owner = getattr(spec.fn, "__self__", None)
    if isinstance(owner, LayerCam):
        return owner
    if spec.name == "layercam" and not str(params.get("fuse_layers") or "").strip():
        return LAYERCAM  # unfused LayerCAM is LAYERCAM.run (run_layercam's own shortcut)
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Scanner:
    """Turns batches of :class:`Prepared` images into rows for one model, layer and set of methods.

    The model is borrowed (eval mode for each batch, hooks scoped to the calls, no ``.grad`` written).
    ``work(units)`` is told each piece of work as it is done, in :meth:`cost`'s units (the pass, each method,
    each chunk of deletion/insertion), so progress moves within a batch.
    """

    def __init__(self, model: nn.Module, categories: Sequence[str], settings: ScanSettings,
                 consumer: Consumer | None = None, work: Work | None = None) -> None:
        self.model = model
        self.categories = list(categories)
        self.settings = settings
        self.layer = resolve_layer(model, settings.layer)[0]
        self.methods = resolve_methods(settings.methods)
        self.shared = {name: cam for name, params in self.methods.items()
                       if (cam := shared_cam(get_method(name), params)) is not None}
        self.consumer = consumer
        self.work = work
        self.device = model_device(model)
        self._units: dict[tuple[str, tuple[int, ...]], float] = {}

    def cost(self, x: torch.Tensor) -> ImageCost:
        """What one image like ``x`` costs in model runs (the estimate the progress line and announcement use)."""
        return image_cost(self.model, x, self.settings, self.shared)

    def _did(self, units: float) -> None:
        if self.work is not None and units:
            self.work(units)

    def _method_units(self, name: str, x: torch.Tensor) -> float:
        key = (name, tuple(x.shape))
        if key not in self._units:  # the estimate the cost used, fixed once per shape
            self._units[key] = method_runs(self.model, x, name, self.methods[name], self.layer)
        return self._units[key]

    def rows(self, batch: Sequence[Prepared]) -> list[dict[str, Any]]:
        """One row per image of ``batch``, in its order; a file or image that fails is a row with ``error``."""
        out: dict[int, dict[str, Any]] = {}
        groups: dict[tuple[int, ...], list[Prepared]] = {}
        for p in batch:
            if p.x is None:
                out[p.index] = base_row(p.index, p.item.name, p.item.label, p.item.label_idx, p.item.box,
                                        error=p.error)
            else:
                groups.setdefault(tuple(p.x.shape), []).append(p)
        with eval_mode(self.model), torch.inference_mode(False):
            for group in groups.values():
                try:
                    rows = self._group(group)
                except CamError as exc:
                    if len(group) == 1:
                        rows = [self._error_row(group[0], exc)]
                    else:  # find the image at fault: each alone, the others go on
                        rows = [r for p in group for r in self._alone(p)]
                for row in rows:
                    out[row["index"]] = row
        return [out[p.index] for p in batch]

    def _alone(self, p: Prepared) -> list[dict[str, Any]]:
        try:
            return self._group([p])
        except CamError as exc:
            return [self._error_row(p, exc)]

    @staticmethod
    def _error_row(p: Prepared, exc: CamError) -> dict[str, Any]:
        message = str(exc) if str(exc).startswith(p.item.name) else f"{p.item.name}: {exc}"
        return base_row(p.index, p.item.name, p.item.label, p.item.label_idx, p.item.box, p.width, p.height,
                        error=message)

    def _group(self, group: Sequence[Prepared]) -> list[dict[str, Any]]:
        """Rows for images of one input shape: one recorded pass, then each method and metric per image."""
        n = len(group)
        xs = torch.cat([p.x for p in group]).to(self.device)
        needs_grad = any(cam.needs_grad for cam in self.shared.values())
        started = time.perf_counter()
        rec = record(self.model, xs, [self.layer], grad_from=self.layer if needs_grad else None)
        a, logits = rec.activations[self.layer], rec.logits
        classes = logits.detach().argmax(dim=1)
        g = None
        if needs_grad:
            (g,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), a)
        a, logits = a.detach(), logits.detach()
        _sync(self.device)
        pass_seconds = (time.perf_counter() - started) / n
        if self.shared and a.dim() != 4:
            raise CamError(f"layer {self.layer!r} outputs shape {tuple(a.shape)}; CAM methods need a spatial "
                           "layer (N×C×H×W) or a transformer block")
        maps: dict[str, tuple[torch.Tensor, float]] = {}
        for name, cam in self.shared.items():
            t0 = time.perf_counter()
            raw = cam.fn(a, g if cam.needs_grad else None).detach()
            _sync(self.device)
            maps[name] = (raw, pass_seconds + (time.perf_counter() - t0) / n)
        if self.consumer is not None:
            self.consumer(BatchRecord([p.index for p in group], xs, logits, classes, self.layer, a, g))
        self._did(n)  # the pass: one model run per image

        probs = logits.float().softmax(dim=1)
        top_p, top_i = probs.topk(min(self.settings.top, probs.shape[1]), dim=1)
        top_p, top_i = top_p.cpu().tolist(), top_i.cpu().tolist()
        rows = []
        for i, p in enumerate(group):
            row = base_row(p.index, p.item.name, p.item.label, p.item.label_idx, p.item.box, p.width, p.height)
            row.update(prediction_columns(top_p[i], top_i[i], self.categories, p.item.label_idx))
            x = xs[i:i + 1]
            cls = int(classes[i])
            for name, params in self.methods.items():
                if name in maps:
                    raw, seconds = maps[name][0][i], maps[name][1]
                    heat = None
                else:
                    units = self._method_units(name, x)
                    e = explain(self.model, x, name, self.layer, cls, **params)
                    raw, seconds, heat = torch.from_numpy(e.raw), e.elapsed_ms / 1000.0, e.heatmap
                    self._did(units)
                row.update(map_columns(name, raw.cpu().numpy(), seconds))
                row.update(self._scores(name, x, raw, heat, cls, p, row["correct_top1"]))
            rows.append(row)
        return rows

    def _scores(self, method: str, x: torch.Tensor, raw: torch.Tensor, heat: Any, cls: int, p: Prepared,
                correct_top1: bool | None) -> dict[str, Any]:
        """Deletion / insertion (when asked) and the box scores (when the image has a box) of one map."""
        if not self.settings.metrics and p.item.box is None:
            return {}
        if heat is None:
            heat = heatmap_from(raw.clamp(min=0), raw, x.shape[-2:])[0].cpu().numpy()
        out: dict[str, Any] = {}
        if self.settings.metrics:
            results = evaluate(self.model, x, heat, list(self.settings.metrics), target_class=cls,
                               baseline=self.settings.baseline or None, progress=self._chunks())
            out.update(metric_columns(method, results))
        if p.item.box is not None:
            box = box_in_input(p.item.box, p.width, p.height, x.shape)
            got = evaluate(self.model, x, heat, ["pointing_game", "energy_in_box"], target_class=cls, box=box)
            out.update(box_columns(method, got["pointing_game"].score >= 0.5, got["energy_in_box"].score,
                                   correct_top1))
        return out


    def _chunks(self) -> Callable[[int, int], None] | None:
        """``evaluate``'s progress(done, total) as units: each chunk of perturbed images as it is run."""
        if self.work is None:
            return None
        seen = [0]

        def step(done: int, _total: int) -> None:
            self._did(done - seen[0])
            seen[0] = done
        return step


def scan(model: nn.Module, categories: Sequence[str], settings: ScanSettings,
         batches: Iterable[Sequence[Prepared]], consumer: Consumer | None = None) -> Iterator[list[dict[str, Any]]]:
    """Rows for each batch of prepared images, batch by batch (a generator: memory stays one batch)."""
    scanner = Scanner(model, categories, settings, consumer)
    for batch in batches:
        yield scanner.rows(batch)


__all__ = ["BatchRecord", "Consumer", "Prepared", "Work", "ScanSettings", "Scanner", "prepare", "resolve_methods", "scan",
           "shared_cam"]
