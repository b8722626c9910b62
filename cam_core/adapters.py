"""Layer adapters: the one place that turns a layer's output into an N×C×h×w map, and back.

Convolutional layers already output N×C×H×W and need no adapter. Transformers do not:

- ViT / DeiT blocks output tokens, N×(p + h·w)×D: ``p`` prefix tokens (class, distillation, registers)
  then one token per image patch, row by row.
- Swin stages and ConvNeXt's inner block layers output N×h×w×C ("channels last").

``adapter_for(model, layer_name, output, x)`` decides which layout a layer's output has **from the model
and the input's size**, never from a hard-coded 14×14: the patch grid ``h×w`` comes from the patch
embedding's stride and ``x``'s height and width, and the number of prefix tokens is what is left over,
``p = N_tokens − h·w``. A channels-last output is recognised because its dimensions 1 and 2 (and not 2
and 3) are ``x``'s size divided by one common stride (the stage's downsampling).

The contract every adapter keeps (the recorder calls it for any layer whose output is not N×C×H×W):

- ``grid``: ``(h, w)`` of the map; ``layout``: a short name, e.g. ``"tokens(cls+h*w)"`` or ``"nhwc"``.
- ``to_map(output) -> N×C×h×w``: prefix tokens dropped, patches laid out on their grid.
- ``from_map(fmap, output) -> output's layout``: the inverse; prefix tokens are taken from ``output``,
  so ``from_map(to_map(out), out)`` equals ``out``. Gradients flow from the result into ``fmap``.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from .errors import CamError

MAX_PREFIX = 16  # class + distillation + register tokens; more than this is not a token grid we know
_PREFIX_NAMES = {0: "h*w", 1: "cls+h*w", 2: "cls+dist+h*w"}
_stride_cache: "weakref.WeakKeyDictionary[nn.Module, int | None]" = weakref.WeakKeyDictionary()


@runtime_checkable
class LayerAdapter(Protocol):
    """How a layer's output maps onto an N×C×h×w grid and back (see the module docstring)."""

    grid: tuple[int, int]
    layout: str

    def to_map(self, output: torch.Tensor) -> torch.Tensor: ...

    def from_map(self, fmap: torch.Tensor, output: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class TokenGrid:
    """N×(p + h·w)×D tokens: ``prefix`` non-spatial tokens first, then the patches row by row."""

    grid: tuple[int, int]
    prefix: int

    @property
    def layout(self) -> str:
        return f"tokens({_PREFIX_NAMES.get(self.prefix, f'{self.prefix}+h*w')})"

    def to_map(self, output: torch.Tensor) -> torch.Tensor:
        n, _, d = output.shape
        h, w = self.grid
        return output[:, self.prefix:].reshape(n, h, w, d).permute(0, 3, 1, 2).contiguous()

    def from_map(self, fmap: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        tokens = fmap.flatten(2).transpose(1, 2)
        if self.prefix == 0:  # always a copy: in-place ops downstream must not reach ``fmap``
            return tokens.clone(memory_format=torch.contiguous_format)
        return torch.cat([output[:, :self.prefix], tokens], dim=1)


@dataclass(frozen=True)
class ChannelsLast:
    """N×h×w×C (Swin stages, ConvNeXt's permuted block layers)."""

    grid: tuple[int, int]
    layout: str = "nhwc"

    def to_map(self, output: torch.Tensor) -> torch.Tensor:
        return output.permute(0, 3, 1, 2).contiguous()

    def from_map(self, fmap: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        return fmap.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)


def patch_stride(model: nn.Module) -> int | None:
    """The patch embedding's stride: the first ``Conv2d`` whose kernel equals its stride (> 1), or None.

    torchvision's ``conv_proj`` and timm's ``patch_embed.proj`` are such convolutions. Cached per model.
    """
    if model in _stride_cache:
        return _stride_cache[model]
    stride = None
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.stride == module.kernel_size and module.stride[0] > 1 \
                and module.stride[0] == module.stride[1]:
            stride = int(module.stride[0])
            break
    _stride_cache[model] = stride
    return stride


def _fits(h: int, w: int, height: int, width: int) -> bool:
    """True when ``h×w`` is ``height×width`` divided by one common integer stride (floor or ceil)."""
    if h <= 0 or w <= 0 or h > height or w > width:
        return False
    for s in {max(1, height // h), max(1, round(height / h)), max(1, -(-height // h))}:
        if h in (height // s, -(-height // s)) and w in (width // s, -(-width // s)):
            return True
    return False


def _token_grid(model: nn.Module, tokens: int, height: int, width: int) -> TokenGrid | None:
    """The grid and prefix count of ``tokens`` tokens for a ``height×width`` input, or None."""
    stride = patch_stride(model)
    if stride is not None:
        for h, w in ((height // stride, width // stride), (-(-height // stride), -(-width // stride))):
            prefix = tokens - h * w
            if 0 <= prefix <= MAX_PREFIX and h * w > 0:
                return TokenGrid((h, w), prefix)
        return None
    # No patch embedding found: the fewest prefix tokens whose remaining count factors into a grid of
    # the input's shape.
    for prefix in range(0, min(MAX_PREFIX, tokens - 1) + 1):
        n = tokens - prefix
        for h in range(1, math.isqrt(n) + 1):
            if n % h:
                continue
            for gh, gw in ((h, n // h), (n // h, h)):
                if _fits(gh, gw, height, width):
                    return TokenGrid((gh, gw), prefix)
    return None


def adapter_for(model: nn.Module, layer_name: str, output: torch.Tensor,
                x: torch.Tensor) -> LayerAdapter | None:
    """The adapter for ``layer_name``'s ``output`` on input ``x`` (N×3×H×W); None for an N×C×H×W conv output.

    Raises ``CamError`` (one line) when the output has no spatial grid or its layout cannot be understood.
    """
    if not isinstance(output, torch.Tensor):
        raise CamError(f"layer {layer_name!r} does not output a single tensor; pick another layer")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    shape = tuple(output.shape)
    if output.dim() == 4:
        if not _fits(shape[2], shape[3], height, width) and _fits(shape[1], shape[2], height, width):
            return ChannelsLast((shape[1], shape[2]))
        return None  # N×C×H×W (ambiguous shapes are read as channels-first, the PyTorch convention)
    if output.dim() == 3:
        if shape[0] != x.shape[0]:
            raise CamError(f"layer {layer_name!r} outputs {shape}, tokens first and batch second; "
                           "only batch-first transformers (N×tokens×D) are supported")
        grid = _token_grid(model, shape[1], height, width)
        if grid is None:
            stride = patch_stride(model)
            why = (f"patch stride {stride} gives {height // stride}×{width // stride} patches"
                   if stride else "no patch embedding found")
            raise CamError(f"layer {layer_name!r} outputs {shape[1]} tokens, which do not form a grid for a "
                           f"{height}×{width} input ({why}); pick a transformer block's layer")
        return grid
    raise CamError(f"layer {layer_name!r} outputs shape {shape}, which has no spatial grid; pick a "
                   "convolutional layer or a transformer block's layer")


def check_input(model: nn.Module, x: torch.Tensor) -> None:
    """Refuse, in one line, an input size a fixed-size ViT cannot take (instead of its AssertionError).

    torchvision's ViT asserts ``H == W == image_size`` (its position embeddings are fixed); the app's
    registry builds a subclass that interpolates them (``any_input_size = True``) and is left alone.
    timm's ViTs/DeiTs assert ``patch_embed.img_size`` unless built with ``dynamic_img_size=True``.
    """
    embed = getattr(model, "patch_embed", None)  # timm: a fixed-size PatchEmbed asserts the same
    fixed = getattr(embed, "img_size", None) if getattr(embed, "strict_img_size", False) else None
    if fixed is not None and tuple(fixed) != tuple(x.shape[-2:]):
        raise CamError(f"this ViT takes {fixed[0]}×{fixed[1]} inputs only (its position embeddings are fixed; timm "
                       f"models built with dynamic_img_size=True take any size), got {x.shape[-2]}×{x.shape[-1]}; "
                       f"resize the image to {fixed[0]}×{fixed[1]}")
    image_size = getattr(model, "image_size", None)
    if (isinstance(image_size, int) and hasattr(model, "conv_proj") and hasattr(model, "encoder")
            and not getattr(model, "any_input_size", False)
            and (x.shape[-2] != image_size or x.shape[-1] != image_size)):
        raise CamError(f"this ViT takes {image_size}×{image_size} inputs only (torchvision's VisionTransformer "
                       f"does not interpolate its position embeddings), got {x.shape[-2]}×{x.shape[-1]}; "
                       f"resize the image to {image_size}×{image_size}")
