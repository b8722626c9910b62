"""Streamlit caches in front of the expensive calls: models (``st.cache_resource``) and maps (``st.cache_data``).

Maps are keyed by image hash + model key + device + method + layer + class + parameters, never by the
unhashable model or image themselves (those travel as ``_``-prefixed arguments). ``ENGINE_CALLS``
counts real engine runs (cache misses), so tests can prove that a widget did not recompute a map.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import streamlit as st

if TYPE_CHECKING:  # pragma: no cover - typing only
    from cam_core.explanation import Explanation
    from cam_core.layers import LayerInfo
    from cam_core.predict import Prediction

    from .state import Context

log = logging.getLogger("cam_explorer.ui")

#: How many times each engine entry point really ran (a cache hit does not count).
ENGINE_CALLS: Counter[str] = Counter()


@st.cache_resource(max_entries=3, show_spinner="Loading the model…")
def get_backbone(name: str, device: str, input_size: int | None = None) -> Any:
    """The registered backbone ``name`` on ``device`` (e.g. "cpu", "cuda"), loaded once per process
    (``input_size``: another short side than the model's own, see ``models.load``).

    torchvision weights download on first use with a progress bar; offline, ``CamError`` says what to do.
    """
    import models

    ENGINE_CALLS["load"] += 1
    spec = models.SPECS.get(name)
    if spec is None or spec.source == "embedded":
        return models.load(name, device=device, input_size=input_size)
    from models.registry import weights_ready

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
    import models

    ENGINE_CALLS["load_own"] += 1
    return models.load_own_weights(arch, _weights, _labels, device, filename=_weights_name,
                                   labels_name=_labels_name)


def _backbone_of(ctx: "Context") -> Any:
    if ctx.backbone is None:
        raise RuntimeError("no model is loaded")
    return ctx.backbone


@st.cache_data(max_entries=64, show_spinner=False)
def _predict(model_key: str, device: str, image_digest: str, top: int, _backbone: Any, _image: Any) -> list:
    ENGINE_CALLS["predict"] += 1
    return _backbone.predict(_image, top=top)


def predict_cached(ctx: "Context", top: int = 5) -> list["Prediction"]:
    """Top-``top`` predictions for the context's image, computed once per (model, device, image)."""
    assert ctx.image is not None
    return _predict(ctx.model_key, str(ctx.device), ctx.image.digest, top, _backbone_of(ctx), ctx.image.image)


@st.cache_data(max_entries=64, show_spinner=False)
def _input_shape(model_key: str, device: str, image_digest: str, _backbone: Any, _image: Any) -> tuple[int, ...]:
    return tuple(_backbone.preprocess(_image).shape)


def input_shape(ctx: "Context") -> tuple[int, ...]:
    """The model input's shape for the context's image (1×3×H×W), without preprocessing it on every rerun."""
    assert ctx.image is not None
    return _input_shape(ctx.model_key, str(ctx.device), ctx.image.digest, _backbone_of(ctx), ctx.image.image)


# Layer lists are lists of frozen dataclasses, never changed by a caller: st.cache_resource hands back the
# same list without the copy (pickle round trip) that st.cache_data makes — 20–60 ms a rerun on 262 entries.
@st.cache_resource(max_entries=32, show_spinner=False)
def _layers(model_key: str, device: str, input_shape: tuple[int, ...], _backbone: Any, _image: Any) -> list:
    from cam_core.layers import layers

    ENGINE_CALLS["layers"] += 1
    return layers(_backbone.model, _backbone.preprocess(_image))


def layers_cached(ctx: "Context") -> list["LayerInfo"]:
    """Candidate target layers (spatial outputs, with C×H×W shapes) for the context's image size (read-only)."""
    assert ctx.image is not None
    return _layers(ctx.model_key, str(ctx.device), input_shape(ctx), _backbone_of(ctx), ctx.image.image)


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


@st.cache_resource(max_entries=32, show_spinner=False)
def _grouped(model_key: str, device: str, input_shape: tuple[int, ...], keep: tuple[str, ...],
             _infos: list) -> list:
    from cam_core.layer_groups import grouped_layers

    return grouped_layers(_infos, keep=keep)


def layer_choices_cached(ctx: "Context") -> list[Any]:
    """Target layers a person can read: no pass-through or container entries, grouped by stage
    (``cam_core.layer_groups.LayerChoice``); the model's default layer always stays in."""
    assert ctx.image is not None
    backbone = _backbone_of(ctx)
    return _grouped(ctx.model_key, str(ctx.device), input_shape(ctx), (backbone.spec.default_layer,),
                    layers_cached(ctx))


@st.cache_resource(max_entries=16, show_spinner=False)
def _stage_strip(model_key: str, device: str, input_shape: tuple[int, ...], _infos: list) -> list:
    from cam_core.layer_groups import stage_strip

    return stage_strip(_infos)


def stage_strip_cached(ctx: "Context") -> list["LayerInfo"]:
    """~6–8 layers from input to head for the Layers page's stage strip (``cam_core.layer_groups``)."""
    assert ctx.image is not None
    return _stage_strip(ctx.model_key, str(ctx.device), input_shape(ctx), layers_cached(ctx))


@st.cache_data(max_entries=64, show_spinner=False)
def _explain(model_key: str, device: str, image_digest: str, method: str, layer: str | None,
             class_idx: int | None, params: tuple[tuple[str, Any], ...], _backbone: Any, _image: Any,
             _expected: Any = None) -> Any:
    from cam_core.explain import explain
    from cam_core.registry import get_method

    ENGINE_CALLS["explain"] += 1
    x = _backbone.preprocess(_image)
    spec = get_method(method)
    if not spec.long_running:
        return explain(_backbone.model, x, method, layer, class_idx, **dict(params))
    # ``_expected`` (a callable: only a real run pays for the estimate) → "about 12 s" in the bar's text
    display = f"{spec.display} ({_expected()})" if _expected is not None else spec.display
    # Created inside the cached function so that Streamlit can replay (create, then clear) it on a hit.
    bar = st.progress(0.0, text=f"{display}: starting…")

    def progress(done: int, total: int) -> None:
        if total > 0:
            bar.progress(min(done / total, 1.0), text=f"{display}: {done} of {total}")

    try:
        return explain(_backbone.model, x, method, layer, class_idx, progress=progress, **dict(params))
    finally:
        bar.empty()


def explain_cached(ctx: "Context", method: str, layer: str | None = None, class_idx: int | None = None,
                   params: dict[str, Any] | None = None) -> "Explanation":
    """``cam_core.explain`` on the context's image, cached by image hash + model + device + method + layer
    + class + parameters. Occlusion and SmoothGrad show a progress bar while they run. A result that holds
    every class (occlusion) is kept once per view without the class: another class is derived from it
    (``cam_core.class_switch``), never recomputed.

    Raises ``CamError`` (not cached) for anything the person can fix; show it with ``ui.widgets.show_error``.
    """
    from cam_core.registry import get_method

    from cam_core.class_switch import for_class, switchable

    assert ctx.image is not None
    # Defaults filled in, so that {} and the same values spelled out share one cache entry.
    resolved = get_method(method).resolve_params(dict(params or {}))
    key_params = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in resolved.items()))
    cls = None if class_idx is None else int(class_idx)
    # A result that holds every class (occlusion's windows) serves any other class with no forward pass.
    slot = _any_class(ctx.model_key, str(ctx.device), ctx.image.digest, method, layer, key_params)
    known = slot.get("exp")
    if known is not None:
        if known.class_idx == cls:
            return known
        return for_class(known, cls)
    def expected() -> str:
        return expected_text(ctx, method, resolved, layer)

    exp = _explain(ctx.model_key, str(ctx.device), ctx.image.digest, method, layer, cls, key_params,
                   _backbone_of(ctx), ctx.image.image, expected)
    if switchable(exp):
        slot["exp"] = exp
    return exp


@st.cache_resource(max_entries=16, show_spinner=False)
def _any_class(model_key: str, device: str, image_digest: str, method: str, layer: str | None,
               params: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """A holder, keyed WITHOUT the class, for the first explanation of this view that serves every class."""
    return {}


def expected_text(ctx: "Context", method: str, params: dict[str, Any] | None = None,
                  layer: str | None = None) -> str:
    """What a long method's run should cost, before it starts: "about 12 s", "first run: timing it" (nothing
    measured yet), or "time not estimated" (a method without an estimate)."""
    from cam_core.registry import get_method

    assert ctx.image is not None
    spec = get_method(method)
    if spec.estimate is None:
        return "time not estimated"
    backbone = _backbone_of(ctx)
    x = backbone.preprocess(ctx.image.image)
    seconds = spec.expected_seconds(backbone.model, x, dict(params or {}),
                                    layer or (backbone.spec.default_layer if spec.needs_layer else None))
    if seconds is None:
        return "first run: timing it"
    return f"about {seconds:,.0f} s" if seconds >= 1 else "about 1 s"


def clear_all(models: bool = False) -> None:
    """Empty the map caches (and the model caches when ``models``) and reset ``ENGINE_CALLS``.

    Tests call it to start from a clean slate without reloading the model each time.
    """
    st.cache_data.clear()  # every map cache of every module (trust's, the pages'): no import of them here
    for fn in (_layers, _grouped, _stage_strip, _any_class):
        fn.clear()
    if models:
        get_backbone.clear()
        get_own_backbone.clear()
    ENGINE_CALLS.clear()


#: Long side, in pixels, of the copy of the image drawn on pages (downloads use the full image).
DISPLAY_SIDE = 1024


@st.cache_data(max_entries=16, show_spinner=False)
def _thumbnail(image_digest: str, max_side: int, _image: Any) -> Any:
    from PIL import Image

    img = _image.copy()
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return img


def display_image(ref: Any, max_side: int = DISPLAY_SIDE) -> Any:
    """The image scaled down (aspect kept) to ``max_side`` for drawing on a page; cached per image hash."""
    if max(ref.image.size) <= max_side:
        return ref.image
    return _thumbnail(ref.digest, max_side, ref.image)


@st.cache_data(max_entries=64, show_spinner=False)
def _display(key: tuple, percentile: float, signed: bool, _exp: Any) -> Any:
    from cam_core.render import display_map

    return display_map(_exp, percentile=percentile, signed=signed)


def display_map_cached(exp: "Explanation", percentile: float = 99.0, signed: bool = False) -> Any:
    """``cam_core.render.display_map`` of an explanation, cached per (map, percentile, signed).

    The key is the explanation's identity (method, class, layer, params, shape and a digest of the heat map),
    so a rerun that only moves alpha or the colormap does not rescale the map again.
    """
    return _display(_map_key(exp), float(percentile), bool(signed), exp)


def _map_key(exp: "Explanation") -> tuple:
    """An explanation's identity for the display caches: what it explains and a digest of its heat map."""
    import hashlib

    import numpy as np

    digest = hashlib.blake2b(np.ascontiguousarray(exp.heatmap).tobytes(), digest_size=12).hexdigest()
    return (exp.method, exp.class_idx, exp.layer, exp.channel, tuple(np.shape(exp.heatmap)), digest)


@st.cache_data(max_entries=64, show_spinner=False)
def _checkerboard(key: tuple, _exp: Any) -> float:
    from cam_core.render import checkerboard_fraction

    return checkerboard_fraction(_exp)


def checkerboard_cached(exp: "Explanation") -> float:
    """``cam_core.render.checkerboard_fraction`` of a pixel-space explanation (0 for the others), cached."""
    if exp.gradient is None:
        return 0.0
    return _checkerboard(_map_key(exp), exp)
