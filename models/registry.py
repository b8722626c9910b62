"""Every backbone the app offers, by name, and ``load(name)`` that returns it ready to use."""
from __future__ import annotations

import dataclasses

import torch

from cam_core.device import pick_device
from cam_core.errors import CamError
from models import efficientnet_lite, torchvision_zoo
from models.backbone import Backbone
from models.labels import IMAGENET_CATEGORIES
from models.spec import BackboneSpec

DEFAULT_MODEL = "efficientnet_lite0"
INPUT_SIZES = range(64, 1025)  # short side of the model's input a person may ask for, in pixels


def input_size_error(size: int) -> str | None:
    """Why ``size`` cannot be a model's input size (``None`` when it can)."""
    if int(size) in INPUT_SIZES:
        return None
    return f"choose a short side from {INPUT_SIZES.start} to {INPUT_SIZES.stop - 1} pixels"
SPECS: dict[str, BackboneSpec] = {**efficientnet_lite.specs(), **torchvision_zoo.specs()}


def available() -> list[str]:
    """Names of every registered backbone, the embedded default first."""
    return list(SPECS)


def get_spec(name: str) -> BackboneSpec:
    """The spec registered as ``name``; ``CamError`` listing the choices otherwise."""
    try:
        return SPECS[name]
    except KeyError:
        raise CamError(f"model {name!r}: unknown; choose one of {', '.join(SPECS)}") from None


def weights_ready(name: str) -> bool:
    """True when ``name`` loads with no network (embedded, or its torchvision file is already downloaded)."""
    spec = get_spec(name)
    return spec.source == "embedded" or torchvision_zoo.is_cached(name)


def weights_present(name: str) -> bool:
    """True when ``name``'s weights are on this machine (embedded, or the torchvision file is downloaded);
    the same as ``weights_ready``, the name the app's model picker uses."""
    return weights_ready(name)


def load(
    name: str = DEFAULT_MODEL,
    device: torch.device | str | None = None,
    progress: torchvision_zoo.Progress = True,
    input_size: int | None = None,
) -> Backbone:
    """Build ``name`` with its pretrained weights on ``device`` (default: CUDA, then MPS, then CPU).

    ``input_size``: the short side photos are resized to, instead of the model's own (224 for Lite0). Larger
    helps the maps of small objects (Lite0 at 320: Grad-CAM points inside 15–35 % objects on 86 % of the
    localization set, 60 % at 224) and costs about (size / 224)² more per method; objects that fill the frame
    may lose probability (docs/benchmarks.md, "Input size").

    torchvision weights are downloaded on first use (``progress``: ``True`` for a progress bar, or a
    callable ``(done_bytes, total_bytes)``); offline, a ``CamError`` says which file to put where.
    """
    spec = get_spec(name)
    if input_size is not None:
        why = input_size_error(input_size)
        if why:
            raise CamError(f"input size {input_size}: {why} (the model's own is {spec.input_size})")
        if int(input_size) != spec.input_size:
            spec = dataclasses.replace(spec, input_size=int(input_size),
                                       display=f"{spec.display} · {int(input_size)} px input")
    target = pick_device(device if device is not None else "auto")
    if spec.source == "embedded":
        model = efficientnet_lite.load_pretrained(name)
        categories = list(IMAGENET_CATEGORIES)
    else:
        model = torchvision_zoo.load_pretrained(name, progress=progress)
        categories = list(torchvision_zoo.weights_of(name).meta["categories"])
    return Backbone(spec, model, categories, target)
