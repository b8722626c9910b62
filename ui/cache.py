"""The UI's engine calls: models behind ``st.cache_resource``, everything else through ``ui.engine.cached``.

Results are keyed by image hash + model key + device + method + layer + class + parameters (``ui.engine``),
never by the unhashable model or image themselves. ``ENGINE_CALLS`` counts real engine runs (cache
misses), so tests can prove that a widget did not recompute a map.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import streamlit as st

import models
from cam_core import occlusion_view
from cam_core.batch import explain_item
from cam_core.class_switch import for_class, occlusion_explanation, switchable
from cam_core.explain import explain
from cam_core.features import activations, first_layer_filters, stage_maps
from cam_core.imaging import thumbnail
from cam_core.invariance import sweep
from cam_core.layer_groups import grouped_layers, stage_strip
from cam_core.layers import layers
from cam_core.metrics import with_pixel_std
from cam_core.progressive import explain_progressive
from cam_core.registry import get_method
from cam_core.visualize import visualize
from cam_core.render import checkerboard_fraction, display_map, gradient_image, overlay
from models.registry import weights_ready

from . import engine
from .engine import ENGINE_CALLS, cached, keep, peek

if TYPE_CHECKING:  # pragma: no cover - typing only
    from cam_core.batch import BatchResult, Item
    from cam_core.explanation import Explanation
    from cam_core.features import FeatureMaps
    from cam_core.invariance import Sweep
    from cam_core.layers import LayerInfo
    from cam_core.predict import Prediction

    from .state import Context

__all__ = ["ENGINE_CALLS", "get_backbone", "get_own_backbone", "predict_cached", "explain_cached",
           "layers_cached", "layer_choices_cached", "stage_strip_cached", "class_prediction", "expected_text",
           "display_image", "display_map_cached", "checkerboard_cached", "clear_all", "features_cached",
           "projection_cached", "stage_maps_cached", "filters_cached", "probe_cached", "fill_rgb",
           "sweep_cached", "batch_item_cached", "batch_tile_cached"]

log = logging.getLogger("cam_explorer.ui")


@st.cache_resource(max_entries=3, show_spinner="Loading the model…")
def get_backbone(name: str, device: str, input_size: int | None = None) -> Any:
    """The registered backbone ``name`` on ``device`` (e.g. "cpu", "cuda"), loaded once per process
    (``input_size``: another short side than the model's own, see ``models.load``).

    torchvision weights download on first use with a progress bar; offline, ``CamError`` says what to do.
    """
    ENGINE_CALLS["load"] += 1
    spec = models.SPECS.get(name)
    if spec is None or spec.source == "embedded":
        return models.load(name, device=device, input_size=input_size)

    if weights_ready(name):
        return models.load(name, device=device, progress=False, input_size=input_size)
    bar = st.progress(0.0, text=f"Downloading {spec.display} weights…")

    def progress(done: int, total: int) -> None:
        if total > 0:
            bar.progress(min(done / total, 1.0), text=f"Downloading {spec.display}: {done / 2**20:.0f} of "
                                                      f"{total / 2**20:.0f} MB")

    try:
        return models.load(name, device=device, progress=progress, input_size=input_size)
    finally:
        bar.empty()


@st.cache_resource(max_entries=2, show_spinner="Loading your weights…")
def get_own_backbone(arch: str, weights_digest: str, labels_digest: str | None, device: str,
                     _weights: bytes, _weights_name: str, _labels: bytes | None, _labels_name: str | None) -> Any:
    """A person's own weights for ``arch`` on ``device``, keyed by the files' content hashes."""
    ENGINE_CALLS["load_own"] += 1
    return models.load_own_weights(arch, _weights, _labels, device, filename=_weights_name,
                                   labels_name=_labels_name)


def _backbone_of(ctx: "Context") -> Any:
    if ctx.backbone is None:
        raise RuntimeError("no model is loaded")
    return ctx.backbone


def predict_cached(ctx: "Context", top: int = 5) -> list["Prediction"]:
    """Top-``top`` predictions for the context's image, computed once per (model, device, image)."""
    assert ctx.image is not None
    return cached(ctx, "predict", lambda backbone, image, top: backbone.predict(image, top=top),
                  _backbone=_backbone_of(ctx), _image=ctx.image.image, top=int(top))


def input_shape(ctx: "Context") -> tuple[int, ...]:
    """The model input's shape for the context's image (1×3×H×W)."""
    return tuple(ctx.x.shape)


def layers_cached(ctx: "Context") -> list["LayerInfo"]:
    """Candidate target layers (spatial outputs, with C×H×W shapes) for the context's input size (read-only)."""
    assert ctx.image is not None
    return cached(ctx, "layers", lambda model, x, shape: layers(model, x), image=False, entries=32,
                  _model=_backbone_of(ctx).model, _x=ctx.x, shape=input_shape(ctx))


def class_prediction(ctx: "Context", class_idx: int | None) -> "Prediction | None":
    """The prediction (label, probability) of any class, e.g. a chosen class outside the top-5.

    One cached forward per (model, device, image) gives every class's probability.
    """
    if class_idx is None or ctx.backbone is None:
        return None
    top = next((p for p in predict_cached(ctx) if p.class_idx == int(class_idx)), None)
    if top is not None:
        return top
    every = predict_cached(ctx, top=int(ctx.backbone.num_classes))
    return next((p for p in every if p.class_idx == int(class_idx)), None)


def layer_choices_cached(ctx: "Context") -> list[Any]:
    """Target layers a person can read: no pass-through or container entries, grouped by stage
    (``cam_core.layer_groups.LayerChoice``); the model's default layer always stays in."""
    assert ctx.image is not None
    return cached(ctx, "layer_choices", lambda infos, shape, default: grouped_layers(infos, keep=(default,)),
                  image=False, entries=32, _infos=layers_cached(ctx), shape=input_shape(ctx),
                  default=_backbone_of(ctx).spec.default_layer)


def stage_strip_cached(ctx: "Context") -> list["LayerInfo"]:
    """~6–8 layers from input to head for the Layers page's stage strip (``cam_core.layer_groups``)."""
    assert ctx.image is not None
    return cached(ctx, "stage_strip", lambda infos, shape: stage_strip(infos), image=False, entries=16, _infos=layers_cached(ctx),
                  shape=input_shape(ctx))


def explain_cached(ctx: "Context", method: str, layer: str | None = None, class_idx: int | None = None,
                   params: dict[str, Any] | None = None,
                   on_coarse: Callable[["Explanation"], None] | None = None) -> "Explanation":
    """``cam_core.explain`` on the context's image, cached by image hash + model + device + method + layer
    + class + parameters. Long-running methods (occlusion, SmoothGrad) show a progress bar with the expected
    time. A result that holds every class (occlusion) is kept once per view without the class: another
    class is derived from it (``cam_core.class_switch``), never recomputed.

    ``on_coarse`` (occlusion only): run coarse to fine (``cam_core.progressive``, each window once) and call
    it with the coarse windows' explanation while the rest run; a stored result calls nothing.
    Raises ``CamError`` (not cached) for anything the person can fix; show it with ``ui.widgets.show_error``.
    """
    assert ctx.image is not None
    spec = get_method(method)
    if on_coarse is not None and spec.name != "occlusion":
        raise ValueError(f"{spec.display} has no coarse-to-fine run")
    # Defaults filled in, so that {} and the same values spelled out share one cache entry.
    resolved = spec.resolve_params(dict(params or {}))
    cls = None if class_idx is None else int(class_idx)
    view = dict(method=spec.name, layer=layer, params=resolved)
    known = peek(ctx, "explain_any_class", **view)  # serves any class with no forward pass
    if known is not None:
        return known if known.class_idx == cls else for_class(known, cls)
    model = _backbone_of(ctx).model

    def step(s: Any) -> None:
        if s.stage == "coarse" and not s.final and on_coarse is not None:
            on_coarse(occlusion_explanation(s.coarse(), cls, resolved))

    def run(x: Any, progress: Any = None, **_: Any) -> "Explanation":
        extra = {} if progress is None else {"progress": progress}
        if on_coarse is not None:
            return explain_progressive(model, x, cls, on_step=step, **extra, **resolved)
        return explain(model, x, spec.name, layer, cls, **extra, **resolved)

    exp = cached(ctx, "explain", run, _x=ctx.x, **view, class_idx=cls,
                 bar=spec.display if spec.long_running else None,
                 expected=lambda: expected_text(ctx, method, resolved, layer))
    if switchable(exp):
        keep(ctx, "explain_any_class", exp, entries=16, **view)
    return exp


def expected_text(ctx: "Context", method: str, params: dict[str, Any] | None = None,
                  layer: str | None = None) -> str:
    """What a long method's run should cost, before it starts: "about 12 s", "first run: timing it" (nothing
    measured yet), or "time not estimated" (a method without an estimate)."""
    assert ctx.image is not None
    spec = get_method(method)
    if spec.estimate is None:
        return "time not estimated"
    backbone = _backbone_of(ctx)
    seconds = spec.expected_seconds(backbone.model, ctx.x, dict(params or {}),
                                    layer or (backbone.spec.default_layer if spec.needs_layer else None))
    if seconds is None:
        return "first run: timing it"
    return f"about {seconds:,.0f} s" if seconds >= 1 else "about 1 s"


def clear_all(models: bool = False) -> None:
    """Empty the map caches (and the model caches when ``models``) and reset ``ENGINE_CALLS``.

    Tests call it to start from a clean slate without reloading the model each time.
    """
    st.cache_data.clear()  # caches not yet on the engine store (ui.trust's): no import of them here
    engine.clear()
    if models:
        get_backbone.clear()
        get_own_backbone.clear()


#: Long side, in pixels, of the copy of the image drawn on pages (downloads use the full image).
DISPLAY_SIDE = 1024


def display_image(ref: Any, max_side: int = DISPLAY_SIDE) -> Any:
    """The image scaled down (aspect kept) to ``max_side`` for drawing on a page; cached per image hash."""
    if max(ref.image.size) <= max_side:
        return ref.image
    return cached(None, "thumbnail", lambda image, max_side, digest: thumbnail(image, max_side), entries=16, digest=ref.digest, max_side=int(max_side),
                  _image=ref.image)


def display_map_cached(exp: "Explanation", percentile: float = 99.0, signed: bool = False) -> Any:
    """``cam_core.render.display_map`` of an explanation, cached per (map, percentile, signed).

    The key is the explanation's identity (method, class, layer, params, shape and a digest of the heat map),
    so a rerun that only moves alpha or the colormap does not rescale the map again.
    """
    return cached(None, "display_map", lambda exp, percentile, signed: display_map(exp, percentile=percentile,
                                                                                      signed=signed),
                  exp=exp, percentile=float(percentile), signed=bool(signed))


def checkerboard_cached(exp: "Explanation") -> float:
    """``cam_core.render.checkerboard_fraction`` of a pixel-space explanation (0 for the others), cached."""
    if exp.gradient is None:
        return 0.0
    return cached(None, "checkerboard", lambda exp: checkerboard_fraction(exp), exp=exp)


# --- the pages' own engine calls ----------------------------------------------------------------------------

def features_cached(ctx: "Context", layer: str) -> "FeatureMaps":
    """``cam_core.features.activations`` of ``layer`` for the context's image (Layers)."""
    return cached(ctx, "features", lambda model, x, layer: activations(model, x, layer), entries=16,
                  _model=_backbone_of(ctx).model, _x=ctx.x, layer=layer)


def projection_cached(ctx: "Context", layer: str, channel: int) -> tuple[Any, float]:
    """The deconvnet projection of one channel as an image, and its checkerboard share (Layers)."""
    def run(model: Any, x: Any, layer: str, channel: int) -> tuple[Any, float]:
        exp = explain(model, x, "deconvnet", target_layer=layer, target_channel=channel)
        return gradient_image(exp.gradient), checkerboard_fraction(exp.gradient)

    return cached(ctx, "deconvnet", run, entries=32, _model=_backbone_of(ctx).model, _x=ctx.x, layer=layer,
                  channel=int(channel))


def stage_maps_cached(ctx: "Context", names: list[str]) -> dict[str, Any]:
    """The channel-mean map of each named layer, from one forward (Layers' stage strip)."""
    return cached(ctx, "stages", lambda model, x, names: stage_maps(model, x, list(names)), entries=8,
                  _model=_backbone_of(ctx).model, _x=ctx.x, names=tuple(names))


def filters_cached(ctx: "Context") -> Any:
    """The first convolution's filters as K×kh×kw×3 in [0, 1] (Layers); no image involved."""
    return cached(ctx, "filters", lambda model: first_layer_filters(model), image=False, entries=4,
                  _model=_backbone_of(ctx).model)


#: Feature visualization beside the Layers page's top channels: fewer steps and pixels than the library's
#: defaults (a few seconds a channel instead of ~17 s on 2 cores); `cam-explorer visualize` draws the full one.
VIS_TILE = {"steps": 64, "size": 96}


def visualization_cached(ctx: "Context", layer: str, channel: int) -> Any:
    """What ``channel`` of ``layer`` looks for (``cam_core.visualize`` at ``VIS_TILE``), as a uint8 image.

    It depends on the model only, so one result serves every photo and every session; a miss shows a progress bar.
    """
    spec = _backbone_of(ctx).spec

    def run(model: Any, layer: str, channel: int, steps: int, size: int, progress: Any = None) -> Any:
        return visualize(model, layer, channel=channel, steps=steps, size=size, progress=progress, mean=spec.mean,
                         std=spec.std).image

    return cached(ctx, "visualize", run, bar=f"Feature visualization of channel {channel}", image=False,
                  entries=256, _model=_backbone_of(ctx).model, layer=layer, channel=int(channel), **VIS_TILE)


def probe_cached(ctx: "Context", patch: int, fill: Any, top: int, left: int) -> list["Prediction"]:
    """Top-5 with the occluder at (top, left) in model-input pixels (Occlusion's probe)."""
    backbone = _backbone_of(ctx)
    return cached(ctx, "occlusion_probe",
                  lambda model, x, categories, patch, fill, top, left:
                  occlusion_view.probe(model, x, top, left, patch, fill, categories),
                  _model=backbone.model, _x=ctx.x, _categories=backbone.categories, patch=int(patch), fill=fill,
                  top=int(top), left=int(left))


def fill_rgb(ctx: "Context", fill: Any) -> tuple[int, int, int]:
    """The occluder's colour on screen for the context's model (its normalization undone)."""
    backbone = _backbone_of(ctx)
    return occlusion_view.fill_rgb(fill, backbone.fill_value((0, 0, 0)), backbone.fill_value((255, 255, 255)))


def sweep_cached(ctx: "Context", kind: str, values: tuple[float, ...], layer: str, class_idx: int,
                 edge: str) -> "Sweep":
    """``cam_core.invariance.sweep`` of the context's photo, with a progress bar (Invariance)."""
    assert ctx.image is not None
    backbone = _backbone_of(ctx)
    return cached(ctx, "invariance",
                  lambda model, preprocess, image, kind, values, layer, class_idx, edge, progress:
                  sweep(model, preprocess, image, kind, list(values), layer, class_idx, edge=edge,
                        progress=progress),
                  bar=f"{kind.capitalize()} sweep", entries=16, _model=backbone.model,
                  _preprocess=backbone.preprocess, _image=ctx.image.image, kind=kind,
                  values=tuple(float(v) for v in values), layer=layer, class_idx=int(class_idx), edge=edge)


#: Long side of the copy of each Batch image kept with its result (gallery and overlay ZIP are drawn from it).
KEEP_SIDE = 768


def batch_item_cached(ctx: "Context", item: "Item", digest: str, method: str, layer: str | None,
                      params: dict[str, Any], metrics: tuple[str, ...] = ()) -> "BatchResult":
    """``cam_core.batch.explain_item`` of one file (Batch), keyed by its content hash, not the page's photo."""
    backbone = _backbone_of(ctx)
    settings = with_pixel_std({}, metrics, backbone.spec.std)
    return cached(ctx, "batch_item",
                  lambda item, name, digest, method, layer, params, metrics:
                  explain_item(item, backbone.model, backbone.preprocess, backbone.categories, method, layer,
                               dict(params), keep_side=KEEP_SIDE, metrics=metrics, settings=settings),
                  image=False, entries=128, _item=item, name=item.name, digest=digest, method=method, layer=layer,
                  params=params, metrics=tuple(metrics))


def batch_tile_cached(ctx: "Context", result: "BatchResult", digest: str, params: dict[str, Any], alpha: float,
                      cmap: str, side: int) -> Any:
    """The gallery tile of one Batch result: its overlay with the long side at most ``side``."""
    return cached(ctx, "batch_tile",
                  lambda result, digest, name, method, layer, params, alpha, cmap, side:
                  overlay(thumbnail(result.image, side), result.heatmap, alpha, cmap),
                  image=False, entries=256, _result=result, digest=digest, name=result.name, method=result.method,
                  layer=result.layer, params=params, alpha=float(alpha), cmap=cmap, side=int(side))
