"""The Evolution page's engine calls (``cam_core.evolution`` through ``ui.engine.cached``): each weight file is
loaded once per content (``models.load_own_weights``: safetensors or weights-only, nothing unpickled), and its
visualization and top patches are kept by the file's digest, so adding a third file never redoes the first two.

A file that was refused is remembered by digest in the session, so the page says why on every rerun without
reading it again. The uploaded files are kept in the session (``on_files_changed``), so leaving the page and coming
back (which empties its uploader) loses none of them.
"""
from __future__ import annotations

import functools
import logging
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import streamlit as st

import models
from cam_core.audit.inputs import InputItem
from cam_core.errors import CamError
from cam_core.evolution import (DEFAULT_VISUALIZE_SIZE, DEFAULT_VISUALIZE_STEPS, MAX_STATES, EvolutionColumn,
                                ShownPatch, channel_patches, check_states, evolution)
from cam_core.features import FeatureMaps, activations
from cam_core.top_patches import DEFAULT_K
from cam_core.visualize import DEFAULT_SEED, visualize
from models.preprocess import preprocess as model_preprocess

from . import engine
from .samples import SAMPLES, sample_png
from .sidebar import upload_digest

#: The visualization beside each file: the library's evolution defaults (the Layers page's tile settings).
VIS = {"steps": DEFAULT_VISUALIZE_STEPS, "size": DEFAULT_VISUALIZE_SIZE, "seed": DEFAULT_SEED}
#: Top patches per file over the sample photos (there are only a few: one row each).
TOP_K = min(DEFAULT_K, 3)
_REFUSED = "_evolution_refused"  # session state: file digest and name -> the one-line reason it was refused
_KEPT = "_evolution_kept"  # session state: the files, in upload order (``Upload``)
_SEEN = "_evolution_seen"  # session state: the file ids the uploader shows now

log = logging.getLogger("cam_explorer.ui")


@dataclass(frozen=True)
class Upload:
    """An uploaded weight file kept in the session: what ``st.file_uploader`` gave (name, bytes, file id)."""

    name: str
    data: bytes = field(repr=False)
    file_id: str

    def getvalue(self) -> bytes:
        return self.data


def on_files_changed(key: str) -> None:
    """The uploader ``key`` changed: keep its new files, drop those removed from it; files kept from an earlier
    visit of the page (which the uploader no longer shows) stay."""
    ss = st.session_state
    current = list(ss.get(key) or [])
    ids = {f.file_id for f in current}
    seen = ss.get(_SEEN, set())
    kept = [u for u in ss.get(_KEPT, []) if not (u.file_id in seen and u.file_id not in ids)]
    have = {u.file_id for u in kept}
    kept += [Upload(f.name, f.getvalue(), f.file_id) for f in current if f.file_id not in have]
    ss[_KEPT], ss[_SEEN] = kept, ids


def kept_files(key: str) -> tuple[list[Upload], list[Upload]]:
    """Every kept file, and those of them the uploader ``key`` does not show (kept from an earlier visit)."""
    ss = st.session_state
    if not ss.get(key):
        ss[_SEEN] = set()  # a fresh uploader (the page was left) or one emptied on purpose
    seen = ss.get(_SEEN, set())
    kept = list(ss.get(_KEPT, []))
    return kept, [u for u in kept if u.file_id not in seen]


def forget_earlier(key: str) -> None:
    """Drop the kept files that the uploader ``key`` does not show."""
    seen = st.session_state.get(_SEEN, set())
    st.session_state[_KEPT] = [u for u in st.session_state.get(_KEPT, []) if u.file_id in seen]


@dataclass(frozen=True)
class State:
    """One uploaded weight file, loaded: its name, content digest and ``models.Backbone``."""

    name: str
    digest: str
    backbone: Any


def load_states(ctx: Any, uploads: list[Any]) -> tuple[list[State], list[str]]:
    """The uploads loaded as ``ctx``'s architecture on its device (in upload order, at most ``MAX_STATES``) and
    one line per file that was refused (format, code in a pickle, another architecture) or left out."""
    arch = ctx.backbone.spec.name
    refused: dict[str, str] = st.session_state.setdefault(_REFUSED, {})
    loaded: list[State] = []
    problems: list[str] = []
    for upload in uploads:
        data = upload.getvalue()
        digest = f"{arch}:{upload_digest(upload, data)}"
        if f"{digest}:{upload.name}" in refused:
            problems.append(refused[f"{digest}:{upload.name}"])
            continue
        twin = next((one.name for one in loaded if one.digest == digest), None)
        if twin is not None:
            problems.append(f"{upload.name}: the same weights as {twin}, shown once")
            continue
        if len(loaded) == MAX_STATES:
            problems.append(f"{upload.name}: left out, feature evolution shows at most {MAX_STATES} files")
            continue
        try:
            backbone = engine.cached(None, "evolution_weights", _load, image=False, entries=MAX_STATES + 1,
                                     arch=arch, digest=digest, name=upload.name, device=str(ctx.device),
                                     _data=data)
        except Exception as exc:
            if isinstance(exc, CamError):
                log.warning("evolution: %s", exc)
                why = str(exc).splitlines()[0]
            else:
                log.exception("evolution: loading %s failed", upload.name)
                why = f"{upload.name}: could not be loaded (details in the server log)"
            refused[f"{digest}:{upload.name}"] = why
            problems.append(why)
            continue
        loaded.append(State(upload.name, digest, backbone))
    return loaded, problems


def _load(arch: str, digest: str, name: str, device: str, data: bytes) -> Any:
    return models.load_own_weights(arch, data, device=device, filename=name)


def check(states: list[State]) -> None:
    """``cam_core.evolution.check_states``: one architecture, 2–5 files (a one-line ``CamError`` otherwise)."""
    check_states([s.backbone.model for s in states], [s.name for s in states])


def first_features(ctx: Any, first: State, layer: str) -> FeatureMaps:
    """Every channel of ``layer`` in the first file on the photo: its channel count and most active channel."""
    return engine.cached(ctx, "evolution_features", lambda model, x, layer, digest: activations(model, x, layer),
                         entries=16, _model=first.backbone.model, _x=ctx.x, layer=layer, digest=first.digest)


def columns(ctx: Any, states: list[State], layer: str, channel: int) -> list[EvolutionColumn]:
    """``cam_core.evolution.evolution`` without visualization: each file's map of ``channel`` on the photo."""
    return engine.cached(ctx, "evolution_maps",
                         lambda nets, names, x, layer, channel, digests:
                         evolution(nets, names, x, layer, channel, visualize_steps=0),
                         entries=16, _nets=[s.backbone.model for s in states], names=tuple(s.name for s in states),
                         _x=ctx.x, layer=layer, channel=int(channel), digests=tuple(s.digest for s in states))


def visualization(one: State, layer: str, channel: int) -> Any:
    """What ``channel`` looks for in one file (``cam_core.visualize`` at ``VIS``, the seed every file shares),
    as a uint8 image; it depends on the weights only, so one result serves every photo."""
    spec = one.backbone.spec

    def run(model: Any, layer: str, channel: int, steps: int, size: int, seed: int, progress: Any = None,
            **_: Any) -> Any:
        return visualize(model, layer, channel=channel, steps=steps, size=size, seed=seed, progress=progress,
                         mean=spec.mean, std=spec.std).image

    return engine.cached(None, "evolution_visualize", run, bar=f"What channel {channel} looks for in {one.name}",
                         image=False, entries=64, _model=one.backbone.model, digest=one.digest, layer=layer,
                         channel=int(channel), device=str(one.backbone.device), **VIS)


def _patch_inputs(ctx: Any, one: State, layer: str, channel: int) -> dict[str, Any]:
    return dict(_model=one.backbone.model, digest=one.digest, layer=layer, channel=int(channel), k=TOP_K,
                input_size=int(ctx.backbone.spec.input_size), device=str(one.backbone.device),
                samples=tuple(SAMPLES))


def patches(ctx: Any, one: State, layer: str, channel: int) -> tuple[list[ShownPatch], list[str]]:
    """One file's top ``TOP_K`` patches of ``channel`` over the bundled sample photos (crop and deconvnet
    projection each), at the sidebar model's input size, with a progress bar the first time."""
    spec = one.backbone.spec
    prep = functools.partial(model_preprocess, input_size=int(ctx.backbone.spec.input_size), mean=spec.mean,
                             std=spec.std, device="cpu")

    def run(model: Any, layer: str, channel: int, k: int, progress: Any = None, **_: Any) -> Any:
        return channel_patches(model, layer, channel, list(sample_items()), prep, one.backbone.categories, k,
                               mean=spec.mean, std=spec.std, progress=progress)

    return engine.cached(None, "evolution_patches", run, bar=f"Top patches of {one.name} over the sample photos",
                         image=False, entries=32, **_patch_inputs(ctx, one, layer, channel))


def patches_known(ctx: Any, one: State, layer: str, channel: int) -> Any | None:
    """The stored top patches of one file, or ``None`` (never computes)."""
    return engine.peek(None, "evolution_patches", image=False, **_patch_inputs(ctx, one, layer, channel))


@lru_cache(maxsize=1)
def _sample_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="cam-explorer-samples-"))
    for name in SAMPLES:
        (folder / f"{name}.png").write_bytes(sample_png(name))
    return folder


def sample_items() -> tuple[InputItem, ...]:
    """The bundled sample photos as an image set (PNG files written once per process to a temporary folder)."""
    folder = _sample_folder()
    if not all((folder / f"{name}.png").is_file() for name in SAMPLES):  # a temp cleaner took them
        _sample_folder.cache_clear()
        folder = _sample_folder()
    return tuple(InputItem(str(folder / f"{name}.png"), name) for name in SAMPLES)
