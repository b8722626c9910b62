"""The sidebar every page shares: the image (upload or bundled sample), the model and the device.

``render_sidebar()`` draws it and returns the ``Context`` the page works on; call it first on each page.
"""
from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from cam_core.imaging import DEFAULT_MAX_BYTES
from models.own_weights import MAX_LABEL_BYTES, MAX_WEIGHT_BYTES

from . import state
from .cache import get_backbone, get_own_backbone
from .samples import DEFAULT_SAMPLE, SAMPLES
from .state import Context, ImageRef
from .widgets import remembered_select, show_error

log = logging.getLogger("cam_explorer.ui")

#: File types the uploader accepts (the decoder in ``cam_core.imaging`` reads all of them).
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
#: The model choice that asks for a person's own weights file.
OWN = "own"
#: Per-uploader caps in MiB, refused in the browser; the server's own cap (``server.maxUploadSize`` in
#: ``.streamlit/config.toml``) is the largest of them, so that own weights up to their limit can be uploaded.
IMAGE_UPLOAD_MB = DEFAULT_MAX_BYTES >> 20
WEIGHTS_UPLOAD_MB = MAX_WEIGHT_BYTES >> 20
LABELS_UPLOAD_MB = MAX_LABEL_BYTES >> 20


def start_page(title: str, caption: str) -> Context | None:
    """Sidebar, title and caption of a page that needs a model and an image: the context, or ``None`` after
    saying what is missing."""
    ctx = render_sidebar()
    st.title(title, anchor=False)
    st.caption(caption)
    if not ctx.ready:
        st.info("Choose a model and an image in the sidebar.")
        return None
    return ctx


def render_sidebar() -> Context:
    """Draw the sidebar and return the current model, device and image (see ``ui.state.Context``).

    Problems (a broken upload, weights that cannot be downloaded) are shown in the sidebar with
    ``st.error``; the page still gets a context (a sample image, or ``backbone=None``).
    """
    _ensure_entrypoint()
    with st.sidebar:
        image_box, model_box, device_box = st.container(), st.container(), st.container()
        with device_box:
            device, label = _device_section()
        with model_box:
            model_key, backbone = _model_section(device)
        with image_box:
            image = _image_section()
    return Context(model_key=model_key, backbone=backbone, device=device, device_label=label, image=image)


def _ensure_entrypoint() -> None:
    """Run through ``app.py`` even on a fresh server's first request for a deep URL (``/compare``).

    Until some run has called ``st.navigation``, Streamlit treats ``pages/`` as a v1 pages directory
    and runs the page file on its own (no page config, v1 sidebar). Switch that off and rerun: the rerun
    goes through ``app.py`` and lands on the same page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a Streamlit without it has no v1 mode to escape
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def _image_section() -> ImageRef | None:
    st.subheader("Image", anchor=False)
    ss = st.session_state
    key = f"upload_{ss.setdefault('_upload_nonce', 0)}"
    st.file_uploader("Upload a photo", type=IMAGE_TYPES, key=key, on_change=_on_upload, args=(key,),
                     max_upload_size=IMAGE_UPLOAD_MB, help="JPEG, PNG, WebP, BMP, TIFF or GIF (first frame)")
    if ss.get(_UPLOAD_ERROR):
        st.error(ss[_UPLOAD_ERROR], icon=":material/broken_image:")
    default = state.view().get("image", DEFAULT_SAMPLE)
    sample = remembered_select("…or a sample photo", list(SAMPLES), "sample", default=default,
                               format_func=lambda n: SAMPLES[n].caption, on_change=_drop_upload)
    image: ImageRef | None = ss.get(_UPLOADED)
    if image is None:
        try:
            image = state.sample_ref(sample)
        except Exception as exc:  # a broken scikit-image install: say so, keep the page alive
            show_error(exc, context=f"sample {sample}")
            return None
    state.remember("image", image.sample)
    st.image(image.image, caption=f"{image.name} — {image.image.width}×{image.image.height}", width="stretch")
    return image


# The uploaded image lives in session state, set only when the person changes the uploader: a page
# switch (which may drop the uploader's widget state) keeps it; clearing the uploader or picking a
# sample drops it.
_UPLOADED = "_uploaded_image"
_UPLOAD_ERROR = "_upload_error"


def _on_upload(key: str) -> None:
    """The person uploaded (or removed) a file: decode it once, or keep its one-line error."""
    ss = st.session_state
    upload = ss.get(key)
    ss[_UPLOAD_ERROR] = None
    if upload is None:
        ss[_UPLOADED] = None
        return
    decoded = _decode_upload(upload)
    if isinstance(decoded, str):
        ss[_UPLOAD_ERROR] = decoded  # the previous image stays
    else:
        ss[_UPLOADED] = decoded


def _drop_upload() -> None:
    """Picking a sample replaces an uploaded photo: a new uploader key empties the uploader."""
    ss = st.session_state
    ss["_upload_nonce"] = ss.get("_upload_nonce", 0) + 1
    ss[_UPLOADED] = None
    ss[_UPLOAD_ERROR] = None


def _decode_upload(upload: Any) -> ImageRef | str:
    """The uploaded file decoded, or its one-line error (tracebacks go to the server log only)."""
    from cam_core.errors import CamError
    from cam_core.imaging import load_image

    data = upload.getvalue()
    try:
        return ImageRef(upload.name, load_image(data, name=upload.name), state.digest_of(data), data)
    except CamError as exc:
        log.warning("upload refused: %s", exc, exc_info=exc)
        return str(exc)
    except Exception:  # a decoder bug: one line on the page, the traceback in the log
        log.exception("decoding %s failed", upload.name)
        return f"{upload.name}: cannot read this image (details in the server log)"


def _model_label(name: str) -> str:
    if name == OWN:
        return "Own weights…"
    import models
    from models.registry import weights_ready

    spec = models.SPECS[name]
    if spec.source == "torchvision" and not weights_ready(name):
        return f"{spec.display.split(' (')[0]} (downloads weights on first use)"
    if spec.source == "torchvision":
        return f"{spec.display.split(' (')[0]} (torchvision)"
    return spec.display


def _model_section(device: Any) -> tuple[str, Any | None]:
    import models

    st.subheader("Model", anchor=False)
    names = models.available()
    names = sorted(names, key=lambda n: (n != models.DEFAULT_MODEL, models.SPECS[n].source != "embedded"))
    choice = remembered_select("Classifier", [*names, OWN], "model", default=models.DEFAULT_MODEL,
                               format_func=_model_label)
    if choice == OWN:
        return _own_weights(names, device)
    try:
        return choice, get_backbone(choice, str(device))
    except Exception as exc:
        show_error(exc)
        return choice, None


def _own_weights(names: list[str], device: Any) -> tuple[str, Any | None]:
    arch = remembered_select("Architecture", names, "own_arch", default=names[0],
                             format_func=lambda n: _model_label(n).split(" (")[0])
    weights = st.file_uploader("Weights (.safetensors, .pth, .pt)", type=["safetensors", "pth", "pt"],
                               key="own_weights", max_upload_size=WEIGHTS_UPLOAD_MB,
                               help="Read without running any code: safetensors, or torch.load(weights_only=True)")
    labels = st.file_uploader("Labels (.txt, one per line; optional)", type=["txt"], key="own_labels",
                              max_upload_size=LABELS_UPLOAD_MB)
    if weights is None:
        st.info("Upload a weights file for this architecture.", icon=":material/upload:")
        return OWN, None
    wdata = weights.getvalue()
    ldata = labels.getvalue() if labels is not None else None
    wdigest = _digest_once(weights, wdata)
    ldigest = _digest_once(labels, ldata) if labels is not None else None
    key = f"own:{arch}:{wdigest}:{ldigest or '-'}"
    try:
        backbone = get_own_backbone(arch, wdigest, ldigest, str(device), wdata, weights.name, ldata,
                                    labels.name if labels is not None else None)
    except Exception as exc:
        show_error(exc)
        return key, None
    st.caption(f"{backbone.num_classes} classes")
    return key, backbone


def _digest_once(upload: Any, data: bytes) -> str:
    memo: dict[str, str] = st.session_state.setdefault("_upload_digests", {})
    file_id = getattr(upload, "file_id", None) or f"{upload.name}:{len(data)}"
    if file_id not in memo:
        if len(memo) > 8:
            memo.clear()
        memo[file_id] = state.digest_of(data)
    return memo[file_id]


def _device_section() -> tuple[Any, str]:
    import torch

    from cam_core.device import device_label, pick_device

    st.subheader("Device", anchor=False)
    options = ["auto", "cpu"]
    if torch.cuda.is_available():
        options.insert(1, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        options.insert(1, "mps")
    pref = remembered_select("Run on", options, "device", default="auto",
                             format_func=lambda o: "auto (CUDA, then MPS, then CPU)" if o == "auto" else o.upper())
    try:
        device = pick_device(pref)
    except Exception as exc:
        show_error(exc)
        device = pick_device("cpu")
    label = device_label(device)
    st.badge(label, icon=":material/memory:", color="green" if device.type != "cpu" else "gray")
    return device, label
