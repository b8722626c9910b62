"""Session state shared by every page: the current model/device/image (``Context``) and the shareable view.

The *view* (model, method, layer, class, alpha, colormap, sample image, and every page's own settings:
``URL_KEYS``, plus each method's parameters as ``p.METHOD.NAME``) lives in one dict in ``st.session_state``;
it is read from ``st.query_params`` on the session's first run and written back to them whenever it changes,
so a copied URL reopens the same view. A link made from an uploaded photo says so (``image=upload:NAME``):
the photo is not in the link, so the session opens on the default sample with a notice, and the entries
chosen on that photo (``IMAGE_BOUND``: class, channel, probe) are not applied to another image. Widgets keep their value across
pages by reading their default from the view (``ui.widgets``) rather than from widget state, which
Streamlit drops for widgets a page does not draw.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import streamlit as st
from PIL import Image

from cam_core.imaging import load_image
from cam_core.registry import METHODS

from .engine import cached
from .samples import SAMPLES, sample_png

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

def _text_list(raw: str) -> list[str]:
    return [t for t in str(raw).split(",") if t]


def _flag(raw: str) -> bool:
    return str(raw).strip().lower() in ("1", "true")


def _float_pair(raw: str) -> tuple[float, float]:
    lo, hi = (float(t) for t in str(raw).split(","))
    return (lo, hi)


#: View entries that travel in the URL, with how to parse each from its query-string text. The whole view
#: of every page is here, so a copied link reopens any page as it was.
URL_KEYS: dict[str, Any] = {
    # shared: model, image, method, layer, class, overlay
    "model": str, "method": str, "layer": str, "class": int, "alpha": float, "cmap": str, "image": str,
    "audit": str,  # the Audit page: the audit's name inside the audits folders (checked there)
    "size": int,  # the model's input size when not its own (sidebar)
    "display_pct": float, "signed": _flag,  # the maps' display scale (ui.display)
    # Compare: the methods, and the long ones switched on to run
    "compare_methods": _text_list, "compare_run": _text_list,
    # Layers (feature_layer is shared with Invariance)
    "feature_layer": str, "channel": int, "layers_top_n": int, "feature_cmap": str,
    # Occlusion: settings and the probe (patch centre in photo pixels)
    "occ_x": int, "occ_y": int,
    # Invariance
    "inv_kind": str, "inv_range": _float_pair, "inv_steps": int, "inv_edge": str,
    # Walkthrough: stage, position on its map, batch norm folded (0/1), softmax temperature, transformer view
    "wt_stage": int, "wt_channel": int, "wt_row": int, "wt_col": int, "wt_fold": int, "wt_temp": float,
    "wt_block": int, "wt_head": int, "wt_step": str,  # wt_step: a Learn link's stage kind, used once
    # Evolution: the layer and channel followed across the weight files (the files are not in a link)
    "evo_layer": str, "evo_channel": int,
}
#: View entries that belong to one image: they are dropped when the image they were chosen on is not the one
#: shown (a new upload, another sample, or a link made from an uploaded photo, which the link cannot carry).
IMAGE_BOUND = ("class", "channel", "occ_x", "occ_y")
#: How the URL names a photo that was uploaded (``image=upload:NAME``); the photo itself is never in a link.
UPLOAD_PREFIX = "upload:"

_VIEW = "view"
_LOADED = "_view_loaded_from_url"


@dataclass(frozen=True)
class ImageRef:
    """The current image: its file name, decoded RGB image, content hash and original bytes.

    ``digest`` (sha256 of ``data``, 16 hex digits) is what caches key on; ``sample`` names the bundled
    sample it came from, or is ``None`` for an upload. Treat ``image`` as read-only.
    """

    name: str
    image: Image.Image = field(repr=False)
    digest: str
    data: bytes = field(repr=False)
    sample: str | None = None

    @property
    def identity(self) -> str:
        """What image-bound choices are tied to: the sample's name, or ``upload:DIGEST``."""
        return self.sample or f"{UPLOAD_PREFIX}{self.digest}"

    @property
    def url_name(self) -> str:
        """How the URL names this image: the sample's name, or ``upload:FILENAME`` (the photo is not sent)."""
        return self.sample or f"{UPLOAD_PREFIX}{self.name}"


@dataclass(frozen=True)
class Context:
    """What every page works on, as chosen in the sidebar.

    ``model_key`` names the model in caches (a registry name, or ``own:ARCH:DIGEST`` for a person's
    weights); ``backbone`` is ``None`` when the model could not be loaded (the sidebar already showed
    why); ``image`` is ``None`` only when no image could be obtained at all.
    """

    model_key: str
    backbone: Any | None  # models.Backbone
    device: "torch.device"
    device_label: str
    image: ImageRef | None
    #: What stops the page, each shown as a card in the main area (a photo that could not be read, a model
    #: whose weights cannot be had); empty when all is well.
    problems: tuple["Problem", ...] = ()
    #: Things the person should know but that do not stop the page (e.g. a link's photo is not in the link).
    notices: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """True when there is both a model and an image to work on."""
        return self.backbone is not None and self.image is not None

    @cached_property
    def x(self) -> "torch.Tensor":
        """The preprocessed model input (1×3×H×W), computed once per (image, model, input size, device) and
        shared by every page and session: read-only."""
        if self.backbone is None or self.image is None:
            raise RuntimeError("no model or no image to preprocess")
        return cached(self, "preprocess", lambda preprocess, image: preprocess(image),
                      _preprocess=self.backbone.preprocess, _image=self.image.image)


@dataclass(frozen=True)
class Problem:
    """Why a page cannot show results, as a card: what failed, why, and what to do.

    ``kind`` ("image", "model") names the card (its container's key is ``problem_KIND``).
    ``action`` is an optional button (label, callback) that fixes it, e.g. back to the embedded model.
    """

    kind: str
    title: str
    why: str
    todo: str
    icon: str = ":material/error:"
    action: tuple[str, Any] | None = None
    details: str = ""


def digest_of(data: bytes) -> str:
    """A short content hash of ``data`` (cache key for images and weight files)."""
    return hashlib.sha256(data).hexdigest()[:16]


@lru_cache(maxsize=8)
def sample_ref(name: str) -> ImageRef:
    """The bundled sample ``name`` as an ``ImageRef`` (decoded once per process)."""
    data = sample_png(name)
    return ImageRef(f"{name}.png", load_image(data, name=f"{name}.png"), digest_of(data), data, sample=name)


def view() -> dict[str, Any]:
    """The shareable view of this session (a dict kept in ``st.session_state``), read from the URL once."""
    state = st.session_state
    if _VIEW not in state:
        state[_VIEW] = {}
    if not state.get(_LOADED):
        state[_LOADED] = True
        loaded = parse_query_params(dict(st.query_params))
        image = loaded.get("image", "")
        if image.startswith(UPLOAD_PREFIX):
            # The link was made on an uploaded photo, which a link cannot carry: say so, and do not apply
            # what was chosen on that photo to the sample shown instead.
            state[LINK_UPLOAD] = image[len(UPLOAD_PREFIX):] or "an uploaded photo"
            for key in (*IMAGE_BOUND, "image"):
                loaded.pop(key, None)
        elif image and image not in SAMPLES:
            # A sample name mistyped (or from another version): the default is shown with a line saying so, and
            # what was chosen on the named photo is not applied to it.
            state[LINK_UNKNOWN_SAMPLE] = image
            for key in (*IMAGE_BOUND, "image"):
                loaded.pop(key, None)
        if "image" in loaded:
            bind_image(loaded["image"], loaded)
        state[_VIEW].update(loaded)
    return state[_VIEW]


#: Session-state key holding the file name of the uploaded photo a link was made from (see ``view()``).
LINK_UPLOAD = "_link_upload_name"
#: … and the sample name a link gave that is not a bundled sample.
LINK_UNKNOWN_SAMPLE = "_link_unknown_sample"
_BOUND_TO = "_bound_to"


def bind_image(identity: str, v: dict[str, Any] | None = None) -> None:
    """Tie the image-bound view entries to the image ``identity``; when the entries belong to another
    image, drop them first (a new image starts from its own defaults: its top-1 class, its strongest
    channel, a centred probe)."""
    v = view() if v is None else v
    if v.get(_BOUND_TO) not in (None, identity):
        for key in IMAGE_BOUND:
            v.pop(key, None)
    v[_BOUND_TO] = identity


def widget_key(view_key: str, depends_on: tuple[Any, ...] = ()) -> str:
    """The widget key of the view entry ``view_key`` drawn for ``depends_on`` (e.g. image digest, model,
    layer): a change of what the options depend on is a new widget, so it can never keep the old options'
    labels or value."""
    if not depends_on:
        return f"w_{view_key}"
    sig = hashlib.sha256(repr(tuple(depends_on)).encode()).hexdigest()[:10]
    return f"w_{view_key}@{sig}"


def parse_query_params(params: dict[str, Any]) -> dict[str, Any]:
    """Typed view entries from query-string values; unknown keys and unparsable values are dropped."""
    out: dict[str, Any] = {}
    for key, kind in URL_KEYS.items():
        raw = params.get(key)
        if isinstance(raw, list):
            raw = raw[-1] if raw else None
        if raw is None or raw == "":
            continue
        try:
            out[key] = kind(raw)
        except (TypeError, ValueError):
            continue
    method_params = _parse_method_params(params)
    if method_params:
        out["params"] = method_params
    if "alpha" in out and not 0.0 <= out["alpha"] <= 1.0:
        del out["alpha"]
    return out


def _parse_method_params(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``p.METHOD.NAME=VALUE`` entries, typed by the method's ``ParamSpec`` (unknown ones dropped)."""
    out: dict[str, dict[str, Any]] = {}
    for key, raw in params.items():
        if not key.startswith("p.") or key.count(".") != 2:
            continue
        _, method, name = key.split(".")
        spec = METHODS.get(method)
        p = spec.params.get(name) if spec is not None else None
        if isinstance(raw, list):
            raw = raw[-1] if raw else None
        if p is None or raw in (None, ""):
            continue
        try:
            if p.type is bool:
                value: Any = raw in ("1", "true", "True")
            elif p.type in (int, float):
                value = p.type(raw)
            else:  # a choice or an occluder fill, stored as its label
                value = str(raw)
        except (TypeError, ValueError):
            continue
        out.setdefault(method, {})[name] = value
    return out


def remember(key: str, value: Any) -> None:
    """Set one view entry (``None`` removes it); the URL follows at the next ``sync_query_params()``."""
    v = view()
    if value is None:
        v.pop(key, None)
    else:
        v[key] = value


def sync_query_params() -> None:
    """Write the view's URL entries into ``st.query_params`` when any changed, in one update: the browser adds
    one history entry per update, so Back goes to the previous view (one write per key made Back step
    through a dozen half-written URLs, each rewritten at once, and looked dead)."""
    v = view()
    wanted = {k: _as_text(v[k]) for k in URL_KEYS if v.get(k) is not None}
    for method, values in (v.get("params") or {}).items():
        for name, value in values.items():
            if value is not None:
                wanted[f"p.{method}.{name}"] = _as_text(value)
    current = dict(st.query_params)
    kept = {k: t for k, t in current.items() if not (k in URL_KEYS or k.startswith("p."))}
    if {**kept, **wanted} != current:
        st.query_params.from_dict({**kept, **wanted})


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(_as_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
