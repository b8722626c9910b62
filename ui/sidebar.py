"""The sidebar every page shares: the image (upload or bundled sample), the model and the device.

``render_sidebar()`` draws it and returns the ``Context`` the page works on; call it first on each page.
"""
from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from typing import Any

import streamlit as st
import torch

import models
from cam_core.device import device_label, pick_device
from cam_core.errors import CamError, ImageLoadError
from cam_core.imaging import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, load_image
from models import torchvision_zoo
from models.own_weights import MAX_LABEL_BYTES, MAX_WEIGHT_BYTES
from models.registry import weights_present
from models.torchvision_zoo import WeightsUnavailable

from . import state
from .cache import get_backbone, get_own_backbone
from .display import results_slot
from .samples import DEFAULT_SAMPLE, SAMPLES
from .state import Context, ImageRef, Problem
from .widgets import literal, problem_card, remembered_select, show_error

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


def start_page(title: str, caption: str, *, image: bool = True) -> Context | None:
    """Sidebar, title and caption of a page that needs a model (and, with ``image``, a photo): the context,
    or ``None`` after showing, in the main area, a card for what is missing (a photo that could not be
    read, a model whose weights cannot be had)."""
    ctx = render_sidebar(image=image)
    st.title(title, anchor=False)
    st.caption(caption)
    show_notices(ctx)
    if ctx.problems:
        for problem in ctx.problems:
            problem_card(problem)
        return None
    if ctx.backbone is None or (image and ctx.image is None):
        st.info("Choose a model and an image in the sidebar.")
        return None
    return ctx


def photo_page(title: str, caption: str, body: Callable[[Context], None]) -> None:
    """A page about one photo and model: ``start_page``, then ``body(ctx)`` in a slot of its own.

    When the photo, model or device is not the one this page last showed, the slot is emptied at once, before
    ``body`` computes anything: the old photo's headline, menus, maps and charts never stand under the new
    photo in the sidebar (greyed, as Streamlit keeps them) while the new ones are computed.
    """
    ctx = start_page(title, caption)
    if ctx is None:
        return
    slot = results_slot(f"photo:{title}", ctx.model_key, str(ctx.device), ctx.image.digest)
    with slot:
        body(ctx)


def show_notices(ctx: Context) -> None:
    """The context's notices, in the main area above the results."""
    for notice in ctx.notices:
        st.warning(notice, icon=":material/link_off:")


def render_sidebar(*, image: bool = True, model: bool = True) -> Context:
    """Draw the sidebar and return the current model, device and image (see ``ui.state.Context``).

    ``image=False`` leaves the photo picker out (Batch has its own uploader); ``model=False`` leaves the
    model and device out. What stops a page (a photo that cannot be read, a model whose weights cannot be
    had) comes back in ``Context.problems`` for the page to show in its main area (``start_page``).
    """
    _ensure_entrypoint()
    problems: list[Problem] = []
    notices: list[str] = []
    ref: ImageRef | None = None
    model_key, backbone = state.view().get("model", "none"), None

    device, label = torch.device("cpu"), "CPU"
    with st.sidebar:
        image_box, model_box, device_box = st.container(), st.container(), st.container()
        if model:
            with device_box:
                device, label = _device_section()
            with model_box:
                model_key, backbone, problem = _model_section(device)
                if problem is not None:
                    problems.append(problem)
        if image:
            with image_box:
                ref, problem, notice = _image_section()
                if problem is not None:
                    problems.insert(0, problem)
                if notice:
                    notices.append(notice)
    return Context(model_key=model_key, backbone=backbone, device=device, device_label=label, image=ref,
                   problems=tuple(problems), notices=tuple(notices))


def _ensure_entrypoint() -> None:
    """Run through ``app.py`` even on a fresh server's first request for a deep URL (``/compare``).

    Until some run has called ``st.navigation``, Streamlit treats ``pages/`` as a v1 pages directory
    and runs the page file on its own (no page config, v1 sidebar). Switch that off and rerun: the rerun
    goes through ``app.py`` and lands on the same page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager  # inside the try on purpose: internal API
    except ImportError:  # pragma: no cover - a Streamlit without it has no v1 mode to escape
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def _image_section() -> tuple[ImageRef | None, Problem | None, str | None]:
    st.subheader("Image", anchor=False)
    ss = st.session_state
    key = f"upload_{ss.setdefault('_upload_nonce', 0)}"
    st.file_uploader("Upload a photo", type=IMAGE_TYPES, key=key, on_change=_on_upload, args=(key,),
                     max_upload_size=IMAGE_UPLOAD_MB, help="JPEG, PNG, WebP, BMP, TIFF or GIF (first frame)")
    failed = ss.get(_UPLOAD_ERROR)
    if failed:
        name, reason = literal(failed[0]), literal(failed[1], limit=400)
        st.caption(f":material/broken_image: {name} could not be read — see the main area.")
    sample = _sample_picker(showing_upload=bool(failed) or ss.get(_UPLOADED) is not None)
    if failed:
        return None, Problem(
            kind="image", title=f"Could not read {name}", why=f"{name}: {reason}",
            todo="the line above says what is wrong with the file: upload a copy that mends it or another photo "
                 f"(JPEG, PNG, WebP, BMP, TIFF or GIF; up to {IMAGE_UPLOAD_MB} MB and "
                 f"{DEFAULT_MAX_PIXELS // 1_000_000} megapixels), or pick a sample photo in the sidebar. The "
                 "previous photo's results are hidden until then.", icon=":material/broken_image:"), None
    image: ImageRef | None = ss.get(_UPLOADED)
    if image is None:
        try:
            image = state.sample_ref(sample)
        except Exception as exc:  # a broken scikit-image install: say so, keep the page alive
            show_error(exc, context=f"sample {sample}")
            return None, None, None
    state.bind_image(image.identity)
    state.remember("image", image.url_name)
    st.image(image.image, caption=f"{literal(image.name)} — {image.image.width}×{image.image.height}",
             width="stretch")
    notice = None
    link_upload = ss.get(state.LINK_UPLOAD)
    if link_upload and image.sample is not None:
        link_upload = literal(link_upload)  # from the URL: anyone can write it
        notice = (f"This link was made on an uploaded photo ({link_upload}); a link cannot carry a photo, so "
                  f"the sample “{SAMPLES[image.sample].caption}” is shown instead, with its own classes (the "
                  f"link's class is not applied to it). Upload {link_upload} in the sidebar to see the "
                  "linked view.")
    unknown = ss.get(state.LINK_UNKNOWN_SAMPLE)
    if unknown and image.sample is not None:
        close = difflib.get_close_matches(unknown, list(SAMPLES), n=1)
        hint = f" (did you mean “{SAMPLES[close[0]].caption}”?)" if close else ""
        notice = (f"This link names a sample photo “{literal(unknown)}” that CAM Explorer does not have{hint}, so "
                  f"“{SAMPLES[image.sample].caption}” is shown instead, without the link's class. Pick a sample "
                  "in the sidebar.")
    return image, None, notice


# The uploaded image lives in session state, set only when the person changes the uploader: a page
# switch (which may drop the uploader's widget state) keeps it; clearing the uploader or picking a
# sample drops it. A failed upload is kept as (file name, reason) until a good image is chosen.
_UPLOADED = "_uploaded_image"
_UPLOAD_ERROR = "_upload_error"


def _on_upload(key: str) -> None:
    """The person uploaded (or removed) a file: decode it once, or keep why it failed."""
    ss = st.session_state
    upload = ss.get(key)
    ss[_UPLOAD_ERROR] = None
    ss[_UPLOADED] = None
    if upload is None:
        return
    ss[state.LINK_UPLOAD] = ss[state.LINK_UNKNOWN_SAMPLE] = None
    decoded = _decode_upload(upload)
    if isinstance(decoded, tuple):
        ss[_UPLOAD_ERROR] = decoded  # no image until a good one is chosen: old results are not current
    else:
        ss[_UPLOADED] = decoded


SAMPLE_LABEL = "…or a sample photo"


def _sample_picker(showing_upload: bool) -> str | None:
    """The sample menu; while an upload (or a failed one) is shown it names no sample, only how to pick one."""
    if not showing_upload:
        default = state.view().get("image", DEFAULT_SAMPLE)
        return remembered_select(SAMPLE_LABEL, list(SAMPLES), "sample", default=default,
                                 format_func=lambda n: SAMPLES[n].caption, on_change=_drop_upload)
    key = f"w_sample_over_upload_{st.session_state.get('_upload_nonce', 0)}"
    st.selectbox(SAMPLE_LABEL, list(SAMPLES), index=None, key=key, format_func=lambda n: SAMPLES[n].caption,
                 placeholder="your upload is shown",  # the sidebar is narrow; the label says what picking does
                 on_change=_pick_sample_over_upload, args=(key,))
    return None


def _pick_sample_over_upload(key: str) -> None:
    """A sample picked while an upload is shown replaces it."""
    choice = st.session_state.get(key)
    if choice is not None:
        _drop_upload()
        state.remember("sample", choice)


def _drop_upload() -> None:
    """Picking a sample replaces an uploaded photo (or a failed one): a new uploader key empties it."""
    ss = st.session_state
    ss["_upload_nonce"] = ss.get("_upload_nonce", 0) + 1
    ss[_UPLOADED] = None
    ss[_UPLOAD_ERROR] = None
    ss[state.LINK_UPLOAD] = ss[state.LINK_UNKNOWN_SAMPLE] = None


def show_photo(ref: ImageRef) -> None:
    """Make ``ref`` the session's photo, as an upload would (the Audit page opens an image in Inspect)."""
    _drop_upload()
    st.session_state[_UPLOADED] = ref


def _decode_upload(upload: Any) -> ImageRef | tuple[str, str]:
    """The uploaded file decoded, or ``(file name, reason)`` (tracebacks go to the server log only)."""
    data = upload.getvalue()
    try:
        return ImageRef(upload.name, load_image(data, name=upload.name), state.digest_of(data), data)
    except ImageLoadError as exc:
        log.warning("upload refused: %s", exc, exc_info=exc)
        return exc.name, exc.reason
    except CamError as exc:
        log.warning("upload refused: %s", exc, exc_info=exc)
        return upload.name, str(exc)
    except Exception:  # a decoder bug: one line on the page, the traceback in the log
        log.exception("decoding %s failed", upload.name)
        return upload.name, "cannot read this image (details in the server log)"


def _model_label(name: str) -> str:
    if name == OWN:
        return "Own weights…"

    spec = models.SPECS[name]
    short = spec.display.split(" (")[0]  # the sidebar's box shows ~32 characters: kept short (ui/fit.py)
    if spec.source == "torchvision" and not weights_present(name):
        size = torchvision_zoo.file_size_mb(name)
        return f"{short} (↓ {size:.0f} MB)" if size else f"{short} (↓ download)"
    return f"{short} ({spec.source})"


#: Per model name: the ``WeightsUnavailable`` of its last failed download in this session (not retried on
#: every rerun; choosing the model again retries).
_WEIGHTS_FAILED = "_weights_failed"


def _model_changed() -> None:
    st.session_state[_WEIGHTS_FAILED] = {}


def _back_to_embedded() -> None:
    st.session_state[state.widget_key("model")] = models.DEFAULT_MODEL
    state.remember("model", models.DEFAULT_MODEL)


def _model_section(device: Any) -> tuple[str, Any | None, Problem | None]:
    st.subheader("Model", anchor=False)
    names = models.available()
    names = sorted(names, key=lambda n: (n != models.DEFAULT_MODEL, models.SPECS[n].source != "embedded"))
    choice = remembered_select("Classifier", [*names, OWN], "model", default=models.DEFAULT_MODEL,
                               format_func=_model_label, on_change=_model_changed,
                               help="↓ N MB: torchvision's pretrained weights, downloaded once on first use (then "
                               "kept offline); the embedded model needs no download")
    if choice == OWN:
        return _own_weights(names, device)
    size = _input_size(models.SPECS[choice].input_size)
    key = choice if size is None else f"{choice}@{size}"  # caches and results follow the size too
    failed: dict[str, Any] = st.session_state.setdefault(_WEIGHTS_FAILED, {})
    if not weights_present(choice) and choice in failed:
        state.remember("model", None)  # a model that cannot load is not written into the URL
        return key, None, _weights_problem(failed[choice])
    try:
        return key, get_backbone(choice, str(device), size), None
    except WeightsUnavailable as exc:
        log.warning("%s", exc)
        failed[choice] = exc
        state.remember("model", None)
        return key, None, _weights_problem(exc)
    except Exception as exc:
        _log_failure(exc, f"loading {choice}")
        state.remember("model", None)
        return key, None, Problem(kind="model", title=f"Could not load {choice}", why=_one_line(exc),
                                     todo="choose another model in the sidebar.",
                                     action=(_embedded_label(), _back_to_embedded))


#: Input sizes offered beside the model's own (short side, pixels): finer maps of small objects, at a cost
OFFERED_SIZES = (320, 448)


def _input_size(own: int) -> int | None:
    """The input size picker: ``None`` for the model's own size, else the chosen short side."""
    def label(size: int | None) -> str:
        if size is None:
            return f"{own} px (the model's own)"
        return f"{size} px · about {(size / own) ** 2:.0f}× slower"  # the help says what it is for
    return remembered_select("Input size", [None, *(s for s in OFFERED_SIZES if s != own)], "size", default=None,
                             format_func=label,
                             help="The short side the photo is resized to. A larger input gives the last layers a "
                                  "finer grid: on objects 15–35 % of the frame, Grad-CAM on Lite0 points inside "
                                  "them on 86 % of test composites at 320 px, 60 % at 224. A photo whose object "
                                  "fills the frame may lose probability (docs/benchmarks.md, \"Input size\").")


def _embedded_label() -> str:
    return f"Use {models.SPECS[models.DEFAULT_MODEL].display.split(' (')[0]} (embedded, works offline)"


def _log_failure(exc: BaseException, what: str) -> None:
    """A failure shown as a card: the traceback goes to the server log (a warning for the person's errors)."""
    if isinstance(exc, CamError):
        log.warning("%s: %s", what, exc, exc_info=exc)
    else:
        log.exception("%s: unexpected %s", what, type(exc).__name__, exc_info=exc)


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def client_is_local() -> bool:
    """True when the browser runs on the server's own machine (a loopback connection to a loopback host name):
    only then is a server path something the person can open."""
    try:
        host = (st.context.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        remote = st.context.ip_address  # None for a loopback connection (and outside a server)
    except Exception:  # pragma: no cover - an older Streamlit, or no request
        return False
    return remote is None and host in ("localhost", "127.0.0.1", "::1")


def _weights_problem(exc: Any) -> Problem:
    """The card for a torchvision model whose weight file is missing and cannot be downloaded.

    The folder is named as its setting, ``$TORCH_HOME/hub/checkpoints``: a person at another machine
    cannot use the server's own path. When the browser is on the server's machine the resolved folder is
    added (there it is a place the person can open).
    """
    spec = models.SPECS.get(exc.model)
    display = spec.display.split(" (")[0] if spec is not None else exc.model
    size = torchvision_zoo.file_size_mb(exc.model)
    where = (f"`{torchvision_zoo.FOLDER_SETTING}` on the machine that runs the app (TORCH_HOME defaults to "
             f"`~/.cache/torch`, so the folder is `{torchvision_zoo.FOLDER_DEFAULT}` unless the server sets it)")
    if client_is_local():
        where += f"; here that is `{exc.folder}`"
    return Problem(
        kind="model", title=f"{display} needs its weight file",
        why=(f"The weight file {exc.filename}" + (f" ({size:.0f} MB)" if size else "") + " is not on this "
             f"machine, and this machine is offline: the download failed ({exc.reason})."),
        todo=(f"place `{exc.filename}` (from {exc.url}) in {where}, then choose {display} again — or go on with "
              "the embedded model, which needs no download."),
        icon=":material/cloud_off:", action=(_embedded_label(), _back_to_embedded))


def _own_weights(names: list[str], device: Any) -> tuple[str, Any | None, Problem | None]:
    arch = remembered_select("Architecture", names, "own_arch", default=names[0],
                             format_func=lambda n: _model_label(n).split(" (")[0])
    weights = st.file_uploader("Weights (.safetensors, .pth, .pt)", type=["safetensors", "pth", "pt"],
                               key="own_weights", max_upload_size=WEIGHTS_UPLOAD_MB,
                               help="Read without running any code: safetensors, or torch.load(weights_only=True)")
    labels = st.file_uploader("Labels (.txt, one per line; optional)", type=["txt"], key="own_labels",
                              max_upload_size=LABELS_UPLOAD_MB)
    if weights is None:
        st.info("Upload a weights file for this architecture.", icon=":material/upload:")
        return OWN, None, Problem(kind="model", title="Own weights: no file yet", icon=":material/upload:",
                                  why="“Own weights…” is chosen, but no weights file has been uploaded.",
                                  todo="upload a .safetensors, .pth or .pt file for the chosen architecture in "
                                       "the sidebar, or go back to the embedded model.",
                                  action=(_embedded_label(), _back_to_embedded))
    wdata = weights.getvalue()
    ldata = labels.getvalue() if labels is not None else None
    wdigest = upload_digest(weights, wdata)
    ldigest = upload_digest(labels, ldata) if labels is not None else None
    key = f"own:{arch}:{wdigest}:{ldigest or '-'}"
    try:
        backbone = get_own_backbone(arch, wdigest, ldigest, str(device), wdata, weights.name, ldata,
                                    labels.name if labels is not None else None)
    except Exception as exc:
        _log_failure(exc, f"loading own weights {weights.name}")
        return key, None, Problem(kind="model", title=f"Could not load {literal(weights.name)}", why=_one_line(exc),
                                  todo="upload weights saved from the chosen architecture (a state dict), or "
                                       "go back to the embedded model.",
                                  action=(_embedded_label(), _back_to_embedded))
    st.caption(f"{backbone.num_classes} classes")
    return key, backbone, None


def upload_digest(upload: Any, data: bytes) -> str:
    """The content digest of an uploaded file, hashed once per upload (a rerun does not hash it again)."""
    memo: dict[str, str] = st.session_state.setdefault("_upload_digests", {})
    file_id = getattr(upload, "file_id", None) or f"{upload.name}:{len(data)}"
    if file_id not in memo:
        if len(memo) > 8:
            memo.clear()
        memo[file_id] = state.digest_of(data)
    return memo[file_id]


def _device_section() -> tuple[Any, str]:
    st.subheader("Device", anchor=False)
    options = ["auto", "cpu"]
    if torch.cuda.is_available():
        options.insert(1, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        options.insert(1, "mps")
    pref = remembered_select("Run on", options, "device", default="auto",
                             format_func=lambda o: "auto (GPU, else CPU)" if o == "auto" else o.upper(),
                             help="auto: CUDA, then Apple's MPS, then the CPU")
    try:
        device = pick_device(pref)
    except Exception as exc:
        show_error(exc)
        device = pick_device("cpu")
    label = device_label(device)
    st.badge(label, icon=":material/memory:", color="green" if device.type != "cpu" else "gray")
    return device, label
