"""Session state shared by every page: the current model/device/image (``Context``) and the shareable view.

The *view* (model, method, layer, class, alpha, colormap, sample image) lives in one dict in
``st.session_state``; it is read from ``st.query_params`` on the session's first run and written back
to them whenever it changes, so a copied URL reopens the same view. Widgets keep their value across
pages by reading their default from the view (``ui.widgets``) rather than from widget state, which
Streamlit drops for widgets a page does not draw.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import streamlit as st
from PIL import Image

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

#: View entries that travel in the URL, with how to parse each from its query-string text.
URL_KEYS: dict[str, type] = {
    "model": str, "method": str, "layer": str, "class": int, "alpha": float, "cmap": str, "image": str,
}

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

    @property
    def ready(self) -> bool:
        """True when there is both a model and an image to work on."""
        return self.backbone is not None and self.image is not None


def digest_of(data: bytes) -> str:
    """A short content hash of ``data`` (cache key for images and weight files)."""
    return hashlib.sha256(data).hexdigest()[:16]


@lru_cache(maxsize=8)
def sample_ref(name: str) -> ImageRef:
    """The bundled sample ``name`` as an ``ImageRef`` (decoded once per process)."""
    from cam_core.imaging import load_image

    from .samples import sample_png

    data = sample_png(name)
    return ImageRef(f"{name}.png", load_image(data, name=f"{name}.png"), digest_of(data), data, sample=name)


def view() -> dict[str, Any]:
    """The shareable view of this session (a dict kept in ``st.session_state``), read from the URL once."""
    state = st.session_state
    if _VIEW not in state:
        state[_VIEW] = {}
    if not state.get(_LOADED):
        state[_LOADED] = True
        state[_VIEW].update(parse_query_params(dict(st.query_params)))
    return state[_VIEW]


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
    if "alpha" in out and not 0.0 <= out["alpha"] <= 1.0:
        del out["alpha"]
    return out


def remember(key: str, value: Any) -> None:
    """Set one view entry (``None`` removes it); the URL follows at the next ``sync_query_params()``."""
    v = view()
    if value is None:
        v.pop(key, None)
    else:
        v[key] = value


def sync_query_params() -> None:
    """Write the view's URL entries into ``st.query_params``, touching only those that changed."""
    v = view()
    wanted = {k: _as_text(v[k]) for k in URL_KEYS if v.get(k) is not None}
    current = dict(st.query_params)
    for key in URL_KEYS:
        if key not in wanted and key in current:
            del st.query_params[key]
    for key, text in wanted.items():
        if current.get(key) != text:
            st.query_params[key] = text


def _as_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
