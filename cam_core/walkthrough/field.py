"""Receptive fields by composition: each map position's box of input pixels, from kernel, stride, padding, dilation.

A ``Field`` holds, for every row (and column) index of a map, the first and last input pixel it depends on,
clipped to the image. A convolution or pooling maps it forward exactly: output index ``o`` reads input indices
``o·s − p + t·d`` for taps ``t = 0 … k−1``; the taps that fall on padding read no pixel. Adaptive pooling uses
PyTorch's own windows (``⌊o·n/m⌋ … ⌈(o+1)·n/m⌉ − 1``). A map made by an operation that is not a module (a residual
``+``, ``F.relu``) gets the union of every field at its resolution computed so far — on a feed-forward CNN the
latest, deepest path — so the box is an upper bound there. Whole-image mixing (squeeze-excitation, attention)
is not counted. Checked against a gradient probe in tests/cam_core/test_walkthrough.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import nn

from ..errors import CamError
from .padding import conv_padding


@dataclass(frozen=True)
class Box:
    """Input pixels ``top…bottom`` × ``left…right`` (inclusive) on the model's input."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    def in_file(self, input_hw: tuple[int, int], file_wh: tuple[int, int]) -> "Box":
        """The file's pixels this box covers: preprocessing resizes the whole file (no crop), each axis by its own
        factor, so input pixel ``i`` spans file pixels ``i·F/N`` up to ``(i+1)·F/N``."""
        (h, w), (fw, fh) = input_hw, file_wh
        return Box(int(self.top * fh // h), int(self.left * fw // w), int(-(-(self.bottom + 1) * fh // h)) - 1,
                   int(-(-(self.right + 1) * fw // w)) - 1)


@dataclass(frozen=True, eq=False)
class Field:
    """Per map row: first/last input row (``rows``, 2×h); per map column: first/last input column (``cols``, 2×w)."""

    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def identity(cls, height: int, width: int) -> "Field":
        return cls(np.stack([np.arange(height)] * 2), np.stack([np.arange(width)] * 2))

    @property
    def grid(self) -> tuple[int, int]:
        return self.rows.shape[1], self.cols.shape[1]

    def box(self, row: int, col: int) -> Box:
        return Box(int(self.rows[0, row]), int(self.cols[0, col]), int(self.rows[1, row]), int(self.cols[1, col]))

    def union(self, other: "Field | None") -> "Field":
        if other is None:
            return self
        return Field(np.stack([np.minimum(self.rows[0], other.rows[0]), np.maximum(self.rows[1], other.rows[1])]),
                     np.stack([np.minimum(self.cols[0], other.cols[0]), np.maximum(self.cols[1], other.cols[1])]))


def _window_axis(span: np.ndarray, out: int, kernel: int, stride: int, pad: int, dilation: int) -> np.ndarray:
    """First/last input pixel of each of ``out`` positions of a sliding window over an axis with field ``span``."""
    size = span.shape[1]
    taps = np.arange(out)[:, None] * stride - pad + np.arange(kernel)[None, :] * dilation  # out×k input indices
    inside = (taps >= 0) & (taps < size)
    if not inside.any(axis=1).all():
        raise CamError("a window lies entirely on padding; its receptive field is empty")
    first = np.where(inside, taps, size).min(axis=1)
    last = np.where(inside, taps, -1).max(axis=1)
    return np.stack([span[0, first], span[1, last]])


def _adaptive_axis(span: np.ndarray, out: int) -> np.ndarray:
    size = span.shape[1]
    first = np.array([(o * size) // out for o in range(out)])
    last = np.array([math.ceil((o + 1) * size / out) - 1 for o in range(out)])
    return np.stack([span[0, first], span[1, last]])


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[-1]))


def sliding_geometry(module: nn.Module, in_hw: tuple[int, int]) -> tuple[tuple[int, int], ...] | None:
    """((kh, kw), (sh, sw), (top, left) padding, (dh, dw)) of a convolution or (max/avg) pooling, else ``None``."""
    if isinstance(module, nn.Conv2d):
        (top, _bottom, left, _right), _mode = conv_padding(module, in_hw)
        return _pair(module.kernel_size), _pair(module.stride), (top, left), _pair(module.dilation)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride) if module.stride else kernel
        dilation = _pair(module.dilation) if isinstance(module, nn.MaxPool2d) else (1, 1)
        return kernel, stride, _pair(module.padding), dilation
    return None


def field_after(module: nn.Module, before: Field | None, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Field | None:
    """The field of ``module``'s output map, given the field of its input map (``None``: unknown)."""
    if before is None:
        return None
    geometry = sliding_geometry(module, in_hw)
    if geometry is not None:
        kernel, stride, pad, dilation = geometry
        return Field(_window_axis(before.rows, out_hw[0], kernel[0], stride[0], pad[0], dilation[0]),
                     _window_axis(before.cols, out_hw[1], kernel[1], stride[1], pad[1], dilation[1]))
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return Field(_adaptive_axis(before.rows, out_hw[0]), _adaptive_axis(before.cols, out_hw[1]))
    if tuple(in_hw) == tuple(out_hw):  # elementwise: normalisation, activation
        return before
    return None
