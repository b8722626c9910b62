"""torchvision backbones through its weights API; the first use downloads the weight file into TORCH_HOME.

Offline, the download fails with ``URLError``: that becomes a ``CamError`` naming the weight file, the folder
to put it in and its URL. A file already in ``$TORCH_HOME/hub/checkpoints`` loads with no network.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
from collections.abc import Callable
from functools import partial

import torch
import torchvision.models as tvm
from torch import nn

from cam_core.errors import CamError
from models.spec import BackboneSpec
from models.vit_any_size import AnySizeViT

Progress = bool | Callable[[int, int], None]

#: How the weights folder is named to a person who cannot see the server's disk: the setting, not a path.
FOLDER_SETTING = "$TORCH_HOME/hub/checkpoints"
FOLDER_DEFAULT = "~/.cache/torch/hub/checkpoints"


class WeightsUnavailable(CamError):
    """A torchvision weight file that is not on disk and could not be downloaded (e.g. an offline machine).

    Carries the pieces an app needs to say what to do: ``model``, ``filename``, ``folder`` (this machine's
    resolved ``$TORCH_HOME/hub/checkpoints``), ``url`` and the download's ``reason``.
    """

    def __init__(self, model: str, filename: str, folder: str, url: str, reason: str) -> None:
        self.model, self.filename, self.folder, self.url, self.reason = model, filename, folder, url, reason
        super().__init__(f"{model}: cannot download the weight file {filename} ({reason}); with no network, put "
                         f"{filename} in the folder {folder} (download it from {url})")

# name -> (weights enum member, display, default layer, cam_head, final Linear)
_ZOO: dict[str, tuple[tvm.WeightsEnum, str, str, tuple[str, str] | None, str]] = {
    "resnet18": (tvm.ResNet18_Weights.IMAGENET1K_V1, "ResNet-18", "layer4", ("layer4", "fc"), "fc"),
    "resnet50": (tvm.ResNet50_Weights.IMAGENET1K_V2, "ResNet-50", "layer4", ("layer4", "fc"), "fc"),
    # VGG: the last conv block's ReLU output; its head is three Linear layers, no GAP → no plain CAM.
    "vgg16": (tvm.VGG16_Weights.IMAGENET1K_V1, "VGG-16", "features.29", None, "classifier.6"),
    # MobileNetV3: GAP → Linear → Hardswish → Dropout → Linear: two Linear layers, no plain CAM.
    "mobilenet_v3_large": (tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V2, "MobileNetV3-Large", "features", None,
                           "classifier.3"),
    # EfficientNet-B0: features → GAP → Dropout → Linear, so CAM applies.
    "efficientnet_b0": (tvm.EfficientNet_B0_Weights.IMAGENET1K_V1, "EfficientNet-B0", "features",
                        ("features", "classifier.1"), "classifier.1"),
    # DenseNet: forward() applies a functional ReLU after `features` and before pooling, so the pooled
    # tensor is not `features`' output: no exact CAM on a module.
    "densenet121": (tvm.DenseNet121_Weights.IMAGENET1K_V1, "DenseNet-121", "features", None, "classifier"),
    # ConvNeXt: GAP → LayerNorm2d → Flatten → Linear: the LayerNorm breaks the CAM identity.
    "convnext_tiny": (tvm.ConvNeXt_Tiny_Weights.IMAGENET1K_V1, "ConvNeXt-Tiny", "features", None, "classifier.2"),
    # Vision transformers (built as ``AnySizeViT``: whole images of any aspect, see models/vit_any_size.py).
    # Default layer: the LayerNorm before the last block's attention. The last block's *output* is a poor
    # target: only its class token reaches the head, so the patch tokens' gradients there are zero; ln_1's
    # patch tokens still feed the class token through the last attention (the usual choice, e.g.
    # pytorch-grad-cam's ViT example). torchvision has no DeiT; ViT-B/32 is the second, faster ViT offered.
    "vit_b_16": (tvm.ViT_B_16_Weights.IMAGENET1K_V1, "ViT-B/16", "encoder.layers.encoder_layer_11.ln_1", None,
                 "heads.head"),
    "vit_b_32": (tvm.ViT_B_32_Weights.IMAGENET1K_V1, "ViT-B/32", "encoder.layers.encoder_layer_11.ln_1", None,
                 "heads.head"),
    # Swin-T: the final LayerNorm (N×h×w×C, stride 32) feeds permute → global average pool → head, so Grad-CAM
    # there is the CNN-style last-stage map, and plain CAM applies at `permute` (the same tensor, N×C×h×w).
    "swin_t": (tvm.Swin_T_Weights.IMAGENET1K_V1, "Swin-T", "norm", ("permute", "head"), "head"),
}
_VIT = {"vit_b_16": 16, "vit_b_32": 32}  # patch size; both ViT-B: 12 layers, 12 heads, width 768, MLP 3072
LICENSE = ("torchvision weights (code BSD-3-Clause); trained on ImageNet-1k, whose terms allow "
           "non-commercial research and education use")


def build(name: str, num_classes: int = 1000) -> nn.Module:
    """The torchvision architecture ``name`` with random weights (ViTs as ``AnySizeViT``, same state dict)."""
    if name in _VIT:
        return AnySizeViT(image_size=224, patch_size=_VIT[name], num_layers=12, num_heads=12, hidden_dim=768,
                          mlp_dim=3072, num_classes=num_classes)
    return getattr(tvm, name)(weights=None, num_classes=num_classes)


def _pretrained(name: str, weights: tvm.WeightsEnum, progress: bool) -> nn.Module:
    """torchvision's builder with ``weights``; ViTs are built as ``AnySizeViT`` and given the same file."""
    if name in _VIT:
        model = build(name, len(weights.meta["categories"]))
        model.load_state_dict(weights.get_state_dict(progress=progress, check_hash=True))
        return model
    return getattr(tvm, name)(weights=weights, progress=progress)


def weights_of(name: str) -> tvm.WeightsEnum:
    """The torchvision weights enum member registered for ``name``."""
    return _ZOO[name][0]


def checkpoint_dir() -> str:
    """Where torchvision looks for (and downloads) weight files: ``$TORCH_HOME/hub/checkpoints``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def cached_path(name: str) -> str:
    """Full path the weight file of ``name`` has once downloaded (it may not exist yet)."""
    return os.path.join(checkpoint_dir(), os.path.basename(weights_of(name).url))


def is_cached(name: str) -> bool:
    """True when ``name``'s weight file is already on disk, so loading needs no network."""
    return os.path.isfile(cached_path(name))


def file_size_mb(name: str) -> float | None:
    """Size of ``name``'s weight file in MB as torchvision records it (``None`` when unknown)."""
    size = weights_of(name).meta.get("_file_size")
    return float(size) if size else None


def load_pretrained(name: str, progress: Progress = True) -> nn.Module:
    """Build ``name`` with its pretrained weights (CPU, eval mode), downloading the file on first use.

    ``progress``: ``True`` shows torchvision's progress bar on stderr; a callable receives
    ``(done_bytes, total_bytes)`` while downloading. Failures raise ``CamError`` saying what to do.
    """
    weights = weights_of(name)
    filename = os.path.basename(weights.url)
    folder = checkpoint_dir()
    path = os.path.join(folder, filename)
    was_cached = os.path.isfile(path)
    try:
        if callable(progress) and not was_cached:
            _download(weights.url, path, progress)
        model = _pretrained(name, weights, progress=bool(progress) and not callable(progress))
    except CamError:
        raise
    except Exception as exc:
        if was_cached:
            raise CamError(
                f"{name}: cannot load the weight file {path} ({type(exc).__name__}: {exc}); "
                "delete it to download it again"
            ) from None
        if isinstance(exc, (OSError, RuntimeError)):
            raise WeightsUnavailable(name, filename, folder, weights.url, _reason(exc)) from None
        raise
    return model.eval()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # URLError keeps the socket error here
    return f"{type(exc).__name__}: {reason if reason is not None else exc}"


def _download(url: str, path: str, progress: Callable[[int, int], None]) -> None:
    """Download ``url`` to ``path`` reporting ``progress(done, total)``; verify the hash prefix in the file name."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    match = re.search(r"-([a-f0-9]*)\.", os.path.basename(path))
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "torch.hub"})
    with urllib.request.urlopen(request, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0)
        fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=os.path.dirname(path))
        try:
            done = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    progress(done, total)
            if match and not digest.hexdigest().startswith(match.group(1)):
                raise CamError(f"{os.path.basename(path)}: downloaded file does not match its hash; try again")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def specs() -> dict[str, BackboneSpec]:
    """Registry entries for the torchvision zoo, with preprocessing read from each weights' transforms."""
    out: dict[str, BackboneSpec] = {}
    for name, (weights, display, layer, cam_head, classifier) in _ZOO.items():
        transforms = weights.transforms()
        size_mb = weights.meta.get("_file_size")
        out[name] = BackboneSpec(
            name=name,
            display=f"{display} (torchvision" + (f", {size_mb:.0f} MB download)" if size_mb else ")"),
            source="torchvision",
            builder=partial(build, name),
            input_size=int(transforms.crop_size[0]),
            mean=tuple(float(v) for v in transforms.mean),
            std=tuple(float(v) for v in transforms.std),
            default_layer=layer,
            cam_head=cam_head,
            classifier=classifier,
            license=LICENSE,
            weights=os.path.basename(weights.url),
            summary=f"torchvision {type(weights).__name__}.{weights.name}",
        )
    return out
