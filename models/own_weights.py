"""A person's own weights for a registered architecture: ``.safetensors``, or ``.pth``/``.pt`` read with
``torch.load(weights_only=True)`` — nothing else is ever unpickled, so a hostile file's code never runs.

The number of classes is read from the classifier weight's shape; labels come from an optional file
(one per line), else ImageNet names for a 1000-class head, else "class 0" … "class N-1".
"""
from __future__ import annotations

import codecs
import dataclasses
import io
import os
import pickle
import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from cam_core.device import pick_device
from cam_core.errors import CamError
from models.backbone import Backbone
from models.labels import default_labels
from models.registry import get_spec
from models.spec import BackboneSpec

MAX_WEIGHT_BYTES = 400 * 1024 * 1024  # ViT-B/16 and ViT-B/32 in float32 are 330–337 MB
MAX_LABEL_BYTES = 10 * 1024 * 1024
SAFETENSORS = (".safetensors",)
TORCH_FILES = (".pth", ".pt")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile

Source = str | os.PathLike | bytes | bytearray | memoryview
Labels = Source | Sequence[str] | None


def load_own_weights(
    arch: str,
    weights: Source,
    labels: Labels = None,
    device: torch.device | str | None = None,
    *,
    filename: str | None = None,
    labels_name: str | None = None,
    max_bytes: int = MAX_WEIGHT_BYTES,
) -> Backbone:
    """Build ``arch`` and load ``weights`` (a path, or the file's bytes with ``filename``) strictly into it.

    ``labels`` is a path, bytes (``labels_name`` names them in messages) or a list of names. Every
    problem (unknown format, code in a pickle, wrong architecture, label count) raises ``CamError``.
    """
    spec = get_spec(arch)
    data, filename = _read(weights, filename, max_bytes, "weights")
    state = _parse(data, filename)
    state = _unwrap(state, filename)
    num_classes = _num_classes(state, spec)
    _check_fit(spec, num_classes, state, filename, arch)  # before the model is built: its size follows the file
    model = spec.build(num_classes)
    _load_strict(model, state, filename, arch)
    names = _labels(labels, labels_name, num_classes)
    own_spec = dataclasses.replace(
        spec,
        source="own",
        display=f"{spec.display.split(' (')[0]} — own weights ({filename})",
        weights=filename,
        num_classes=num_classes,
        license="your own weights",
    )
    return Backbone(own_spec, model.eval(), names, pick_device(device if device is not None else "auto"))


def _read(source: Source, name: str | None, max_bytes: int, what: str) -> tuple[bytes, str]:
    """The file's bytes (refusing more than ``max_bytes``) and the name used in messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or what
        if len(source) > max_bytes:
            raise CamError(f"{label}: {_mb(len(source))} is over the {_mb(max_bytes)} limit")
        return bytes(source), label
    if isinstance(source, (str, os.PathLike)):
        label = name or os.path.basename(os.fspath(source))
        try:
            size = os.path.getsize(source)
            if size > max_bytes:
                raise CamError(f"{label}: {_mb(size)} is over the {_mb(max_bytes)} limit")
            with open(source, "rb") as fh:
                return fh.read(max_bytes + 1), label
        except OSError as exc:
            raise CamError(f"{label}: cannot read the file ({exc.strerror or exc})") from None
    raise CamError(f"{what}: expected a file path or the file's bytes, not {type(source).__name__}")


def _parse(data: bytes, filename: str) -> object:
    """Decode a ``.safetensors`` or a weights-only ``.pth``/``.pt`` file; refuse everything else."""
    ext = os.path.splitext(filename)[1].lower()
    if not data:
        raise CamError(f"{filename}: empty file")
    if ext in SAFETENSORS:
        from safetensors.torch import load as load_safetensors  # lazy: optional, only for .safetensors files

        try:
            return load_safetensors(data)
        except Exception as exc:
            raise CamError(f"{filename}: refused, not a valid safetensors file ({_one_line(exc)})") from None
    if ext in TORCH_FILES:
        try:
            return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            detail = _unpickler_detail(exc)
            if "global" in detail.lower():
                raise CamError(
                    f"{filename}: refused, the file holds Python objects other than tensors and loading them could "
                    f"run code ({detail}); save a plain state_dict or use .safetensors"
                ) from None
            raise CamError(f"{filename}: refused, not a readable PyTorch weights file ({detail})") from None
        except Exception as exc:
            raise CamError(f"{filename}: refused, not a readable PyTorch weights file ({_one_line(exc)})") from None
    raise CamError(
        f"{filename}: refused, unknown weights format {ext or '(no extension)'!r}; use .safetensors, .pth or .pt"
    )


def _unwrap(obj: object, filename: str) -> dict[str, torch.Tensor]:
    """The state dict inside ``obj`` (itself, or under "state_dict"/"model"), with wrapper prefixes stripped."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CamError(f"{filename}: refused, no state dict (a mapping of parameter names to tensors) inside")
    state = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CamError(f"{filename}: refused, entry {key!r} is not a tensor; expected a plain state dict")
        if value.numel() * value.element_size() > value.untyped_storage().nbytes():
            # A .pth may hold a view (stride 0) whose shape asks for far more than the file has: a 40 KB file
            # "holding" a 500,000-class head would make us build a model of gigabytes.
            raise CamError(f"{filename}: refused, tensor {key!r} of shape {tuple(value.shape)} is a view on "
                           f"{value.untyped_storage().nbytes():,} bytes of data; save real tensors (a plain "
                           "state_dict, or .safetensors)")
        state[key] = value
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _num_classes(state: Mapping[str, torch.Tensor], spec: BackboneSpec) -> int:
    """Rows of the classifier's weight; the pretrained head's size when that key is absent (the strict load then says so)."""
    weight = state.get(f"{spec.classifier}.weight")
    if weight is not None and weight.dim() == 2 and weight.shape[0] > 0:
        return int(weight.shape[0])
    return spec.num_classes


def _check_fit(spec: BackboneSpec, num_classes: int, state: Mapping[str, torch.Tensor], filename: str,
               arch: str) -> None:
    """Check ``state``'s names, shapes and kinds against ``arch`` built on the meta device (nothing allocated).

    The model is built for the file's number of classes, so a head with a huge row count but the wrong width
    (a few bytes in the file) would otherwise allocate gigabytes before the shapes are compared.
    """
    with torch.device("meta"):
        expected = spec.build(num_classes).state_dict()
    _compare(expected, state, filename, arch)


def _load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], filename: str, arch: str) -> None:
    """Load every tensor into ``model`` (already checked by ``_check_fit``); a failure → one-line ``CamError``."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CamError(f"{filename}: these weights do not fit {arch} ({_one_line(exc)})") from None


def _compare(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], filename: str,
             arch: str) -> None:
    """Refuse ``state`` unless it has exactly ``expected``'s keys, shapes and kinds (floating point or not)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys, e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys, e.g. {', '.join(unexpected[:3])}")
        raise CamError(f"{filename}: these weights do not fit {arch} ({'; '.join(parts)})")
    wrong = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise CamError(
            f"{filename}: these weights do not fit {arch} ({len(wrong)} tensors have the wrong shape, e.g. {k} "
            f"is {tuple(state[k].shape)} but {arch} needs {tuple(expected[k].shape)})"
        )
    kinds = [k for k in expected if expected[k].is_floating_point() != state[k].is_floating_point()]
    if kinds:
        k = kinds[0]
        raise CamError(
            f"{filename}: these weights do not fit {arch} ({len(kinds)} tensors have the wrong kind of number, e.g. "
            f"{k} is {str(state[k].dtype).removeprefix('torch.')} but {arch} needs "
            f"{str(expected[k].dtype).removeprefix('torch.')})"
        )


def _labels(labels: Labels, name: str | None, num_classes: int) -> list[str]:
    """Class names: from a list, or a UTF-8 (or BOM-marked UTF-16) file with one label per line; their count must
    match the head."""
    if labels is None:
        return default_labels(num_classes)
    if isinstance(labels, (str, os.PathLike, bytes, bytearray, memoryview)):
        data, name = _read(labels, name, MAX_LABEL_BYTES, "labels")
        # UTF-8 (with or without a BOM), or UTF-16 with its BOM (what Windows editors call "Unicode").
        encoding = "utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise CamError(f"{name}: the labels file is not {encoding.upper().removesuffix('-SIG')} text (byte "
                           f"{exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8, one label per "
                           "line") from None
        names = [line.strip() for line in text.splitlines()]
        while names and not names[-1]:
            names.pop()
    else:
        name = name or "labels"
        names = [str(v) for v in labels]
    if len(names) != num_classes:
        raise CamError(f"{name}: {len(names)} labels but the weights have {num_classes} classes (one label per line)")
    return names


def _unpickler_detail(exc: BaseException) -> str:
    """The specific reason inside torch's long weights-only message (e.g. "Unsupported global: GLOBAL os.system")."""
    text = " ".join(str(exc).split())
    match = re.search(r"WeightsUnpickler error:\s*(.*?)(?: was not an allowed global| Please use| Check the doc|$)", text)
    detail = match.group(1).strip() if match else text
    return (detail or text)[:200]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
