"""Top-activating patches over an audit's images (Zeiler & Fergus fig. 2), beside the Layers page's channels:
each of a channel's k strongest images as its receptive-field crop beside its deconvnet projection.

The set is an audit inside the configured audits folders (``cam_core.audit.paths``: nothing outside them is
read). The patches are ``cam_core.top_patches``' and live with the audit (``patches/LAYER.parquet``), so
``cam-explorer top-patches AUDIT`` and this view read and write the same file; the one pass over the images runs
only when the audit has none for the layer, on a click, in the background (``ui.patch_jobs``: it survives a
click elsewhere or a page switch) with its progress and the time left. Cached calls through ``ui.engine``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

import models
from cam_core.audit.paths import AuditPathError, audit_roots, list_audits, resolve_audit
from cam_core.audit.inputs import InputItem
from cam_core.audit.review import image_path
from cam_core.audit.scan import prepare
from cam_core.audit.store import read_manifest
from cam_core.errors import CamError
from cam_core.top_patches import (DEFAULT_K, Patch, audit_images, collect, crop, expected_seconds, from_table,
                                  pair_tile, patch_file, projection, read_patches, save_patches, ties_note)
from cam_explorer.writers import duration

from . import audit_view, engine, patch_jobs, state
from .cache import get_backbone
from .widgets import literal, remembered_select, show_error

PER_ROW = 3
CELL = 96  # px of each half of a patch tile
MAX_CHANNELS = 4


def model_name(ctx: Any) -> str:
    """The registry name of the sidebar's model (its key without the input size); a person's own weights keep
    their ``own:…`` key, which no audit of a registered model matches."""
    return str(ctx.model_key).split("@")[0]


def mismatch(manifest: dict[str, Any], ctx: Any) -> str | None:
    """Why the audit's patches cannot be shown for the sidebar's model, or None when they can."""
    made_with, selected = str(manifest.get("model")), model_name(ctx)
    if made_with == selected:
        return None
    yours = "your own weights" if selected.startswith("own:") else literal(selected)
    return (f"This audit was made with {literal(made_with)}, but the sidebar's model is {yours}: its patches are "
            f"of another network's channels. Pick {literal(made_with)} in the sidebar, or another audit.")


def backbone_for(ctx: Any, manifest: dict[str, Any]) -> Any:
    """The sidebar's model at the audit's input size (the patch boxes are in that input's pixels)."""
    size = manifest.get("input_size")
    if not size or size == ctx.backbone.spec.input_size:
        return ctx.backbone
    name = model_name(ctx)
    own = models.SPECS[name].input_size
    return get_backbone(name, str(ctx.device), None if size == own else int(size))


def _stamp(folder: Path, layer: str) -> tuple[int, int] | None:
    path = patch_file(folder, layer)
    if not path.is_file():
        return None
    st_ = path.stat()
    return st_.st_mtime_ns, st_.st_size


def _read(folder: str, layer: str, stamp: Any) -> tuple[list[Patch], dict[str, Any]]:
    table, meta = read_patches(folder, layer)
    return from_table(table), meta


def stored(folder: Path, layer: str) -> tuple[list[Patch], dict[str, Any]] | None:
    """The audit's stored patches of ``layer`` and their metadata (None when it has none), read once per file."""
    stamp = _stamp(folder, layer)
    if stamp is None:
        return None
    return engine.cached(None, "patches_read", _read, image=False, entries=16, folder=str(folder), layer=layer,
                         stamp=stamp)


def _rows(folder: Path) -> list[dict[str, Any]]:
    return audit_view.audit_of(folder).sql('SELECT "index", path, error FROM rows ORDER BY "index"').to_pylist()


def _shape(folder: str, size: int, backbone: Any, item: InputItem) -> tuple[int, ...] | None:
    first = prepare(0, item, backbone.preprocess)
    return None if first.x is None else tuple(first.x.shape)


def _expected(folder: Path, backbone: Any, items: dict[int, InputItem]) -> str:
    """The pass's time from what this process measured for such inputs, or that the first batch will time it."""
    shape = engine.cached(None, "patches_shape", _shape, image=False, entries=16, folder=str(folder),
                          size=int(backbone.spec.input_size), _backbone=backbone, _item=next(iter(items.values())))
    last = patch_jobs.seconds_per_image(_speed_key(backbone))
    if shape is None:
        seconds = None if last is None else last * len(items)
    else:
        seconds = expected_seconds(backbone.model, torch.empty(shape, device=backbone.device), len(items), last)
    return f"about {duration(seconds)}" if seconds else "the first batch times it"


def _speed_key(backbone: Any) -> tuple[str, int, str]:
    return backbone.spec.name, int(backbone.spec.input_size), str(backbone.device)


def job_key(folder: Path, layer: str, model: str, backbone: Any) -> tuple[str, str, str, int]:
    """What a pass over the audit is shared by: audit folder, layer, model and input size."""
    return str(folder), layer, model, int(backbone.spec.input_size)


def start(folder: Path, manifest: dict[str, Any], layer: str, backbone: Any, model: str,
          items: dict[int, InputItem], missing: int = 0) -> None:
    """(The compute button's callback.) One pass over the audit's images in the background (``ui.patch_jobs``)
    keeping the top ``DEFAULT_K`` of every channel of ``layer``, stored with the audit when it ends."""

    def work(progress: Any) -> tuple[int, int]:
        top, errors = collect(backbone.model, items, backbone.categories, backbone.preprocess, layer, k=DEFAULT_K,
                              progress=progress, indices=sorted(items))
        save_patches(folder, top, {i: it.name for i, it in items.items()}, model=model,
                     input_size=int(backbone.spec.input_size), source=str(manifest.get("source")))
        return top.images, len(errors) + missing

    patch_jobs.start(job_key(folder, layer, model, backbone), len(items), work, _speed_key(backbone))


def _live(key: Any, layer: str, speed_key: Any) -> None:
    """The running pass's progress, redrawn every second; the whole page reruns when it ends."""

    @st.fragment(run_every=1.0)
    def live() -> None:
        job = patch_jobs.status(key)
        if job is None or job.finished:
            st.rerun(scope="app")
        text = f"Top patches of {layer}: {job.done} of {job.total} images"
        left = job.left_s
        if left is None:  # before the first batch: the last such pass's speed, if any
            last = patch_jobs.seconds_per_image(speed_key)
            left = None if last is None else last * job.total
        text += f" · about {duration(left)} left" if left else " · timing the first batch"
        st.progress(min(job.done / max(job.total, 1), 1.0), text=text)
        st.caption("It runs on the server: you can look at other channels or pages meanwhile.")

    live()


def _pair(folder: str, stamp: Any, layer: str, channel: int, rank: int, model: str, size: int, backbone: Any,
          patch: Patch, file: Path) -> np.ndarray:
    prepared = prepare(patch.index, InputItem(str(file), str(patch.path)), backbone.preprocess)
    if prepared.x is None:
        raise CamError(prepared.error or f"{patch.path}: cannot be read")
    x = prepared.x.to(backbone.device)
    if tuple(x.shape[-2:]) != (patch.input_h, patch.input_w):
        raise CamError(f"{patch.path} is not the image the patches were computed on (its size changed); "
                       "compute them again")
    spec = backbone.spec
    return pair_tile(crop(x, patch, spec.mean, spec.std), projection(backbone.model, x, layer, patch), CELL)


def pair(folder: Path, layer: str, backbone: Any, model: str, patch: Patch, file: Path) -> np.ndarray:
    """The patch's receptive-field crop beside its deconvnet projection (``CELL`` px each), cached."""
    return engine.cached(None, "patch_pair", _pair, image=False, entries=256, folder=str(folder),
                         stamp=_stamp(folder, layer), layer=layer, channel=patch.channel, rank=patch.rank,
                         model=model, size=int(backbone.spec.input_size), _backbone=backbone, _patch=patch,
                         _file=file)


# --- the section ---------------------------------------------------------------------------------------------

def _pick_audit() -> str | None:
    names = list_audits()
    current = state.view().get("audit")
    options = names if not current or current in names else [current, *names]
    if not options:
        return None
    where = ", ".join(str(r) for r in audit_roots())
    return remembered_select("Image set (an audit)", options, "audit", default=options[0],
                             help=f"The audits in {where} (CAM_EXPLORER_AUDITS); the Audit page opens the same one")


def _show_channel(folder: Path, layer: str, backbone: Any, model: str, patches: list[Patch], channel: int,
                  root: Path | None, images: int) -> None:
    mine = [p for p in patches if p.channel == channel]
    st.markdown(f"**Channel {channel}** · its {len(mine)} strongest of {images} images")
    if not mine:
        st.info(f"Channel {channel} is not in the stored patches (they were kept for other channels). Delete "
                f"{patch_file(folder, layer).name} in the audit's patches folder to compute every channel.")
        return
    note = ties_note([p.value for p in mine])
    if note:
        st.caption(note)
    for start in range(0, len(mine), PER_ROW):
        for col, p in zip(st.columns(PER_ROW), mine[start:start + PER_ROW]):
            caption = f"{literal(str(p.path))} · {p.value:.4g}"
            file = image_path(root, str(p.path or ""))
            with col:
                if file is None:
                    st.caption(f"{caption} (image not found inside the audits folders)")
                    continue
                try:
                    st.image(pair(folder, layer, backbone, model, p, file), width="stretch", caption=caption)
                except Exception as exc:
                    show_error(exc, context=f"patch {p.rank + 1} of channel {channel}")


def _offer(folder: Path, manifest: dict[str, Any], layer: str, backbone: Any, model: str, root: Path | None,
           name: str) -> None:
    """No patches of ``layer`` stored: the running pass's progress, or a button starting one over the audit's
    images (with why the last one failed, if it did)."""
    key = job_key(folder, layer, model, backbone)
    job = patch_jobs.status(key)
    if job is not None and not job.finished:
        _live(key, layer, _speed_key(backbone))
        return
    st.info(f"This audit has no top patches of {layer} yet.", icon=":material/info:")
    if job is not None and job.error:
        st.error(f"The last pass failed: {literal(job.error, limit=300)}", icon=":material/error:")
    if root is None:
        st.caption("Its images are outside the audits folders, so they cannot be read from here: run "
                   f"`cam-explorer top-patches {literal(str(folder))} --layer {layer}` where they are.")
        return
    try:
        items, missing = audit_images(_rows(folder), root)
    except Exception as exc:
        show_error(exc, context=f"audit {name}")
        return
    if not items:
        st.caption("None of its images can be read from here.")
        return
    st.button(f"Compute them over the audit's {len(items)} images", key="patches_compute",
              icon=":material/play_arrow:", on_click=start,
              args=(folder, manifest, layer, backbone, model, items, len(missing)),
              help=f"One pass through the model at {backbone.spec.input_size} px keeping each channel's "
                   f"{DEFAULT_K} strongest images ({_expected(folder, backbone, items)}), in the background; "
                   "stored with the audit for the next visit and the CLI")


def section(ctx: Any, layer: str, channel: int, choices: list[int]) -> None:
    """Layers' "Top patches over a set": pick an audit; its stored patches of ``layer`` for the chosen channels
    (default ``channel``), or a button computing them over its images."""
    st.subheader("Top patches over a set", anchor=False)
    st.caption("The images of an audit that excite a channel most (Zeiler & Fergus, fig. 2): each the part of the "
               "image the unit sees (its receptive field) beside the deconvnet's projection of that activation, "
               "with the image's name and the activation.")
    name = _pick_audit()
    if not name:
        st.info("No audit yet: make one on the Audit page, or with `cam-explorer audit DATA --method gradcam --out "
                f"{audit_roots()[0]}/NAME`.", icon=":material/info:")
        return
    try:
        folder = resolve_audit(name)
    except AuditPathError as exc:
        st.error(str(exc), icon=":material/block:")
        return
    try:
        manifest = read_manifest(folder)
    except CamError as exc:
        show_error(exc, context=f"audit {name}")
        return
    if manifest is None:
        st.info("This audit is still starting or running: its patches can be computed once it has finished.",
                icon=":material/hourglass_top:")
        return
    why = mismatch(manifest, ctx)
    if why:
        st.warning(why, icon=":material/swap_horiz:")
        return
    model = model_name(ctx)
    try:
        backbone = backbone_for(ctx, manifest)
        got = stored(folder, layer)
    except Exception as exc:
        show_error(exc, context=f"top patches of {layer}")
        return
    if got is not None and str(got[1].get("model")) != model:
        st.warning(f"The patches stored with this audit are of {literal(str(got[1].get('model')))}, not "
                   f"{literal(model)}: not shown.", icon=":material/swap_horiz:")
        return
    root = audit_view.image_root(folder, manifest)
    if got is None:
        _offer(folder, manifest, layer, backbone, model, root, name)
        return
    patches, meta = got
    key = job_key(folder, layer, model, backbone)
    job = patch_jobs.status(key)
    if job is not None and job.finished and job.unread:
        st.warning(f"{job.unread} of the audit's images could not be read; the patches are of the other "
                   f"{job.passed}.", icon=":material/warning:")
    size = meta.get("input_size")
    if size and size != ctx.backbone.spec.input_size:
        st.caption(f"At the audit's input size, {size} px (the sidebar's is {ctx.backbone.spec.input_size} px).")
    present = sorted({p.channel for p in patches})
    default = [channel] if channel in choices else []
    picked = st.multiselect("Channels", choices, default=default, max_selections=MAX_CHANNELS,
                            key=f"w_patches_channels@{model}:{layer}:{channel}",
                            help=f"Up to {MAX_CHANNELS}; the channel picked above by default. Stored: "
                                 f"{len(present)} channels, {meta.get('k')} images each")
    for c in picked:
        _show_channel(folder, layer, backbone, model, patches, int(c), root, int(meta.get("images") or 0))
