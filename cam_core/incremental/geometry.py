"""Where a window's change lives in each layer: one rectangle per window, the same size for all windows.

Along one axis a window's change is ``[top, top + size)``. A sliding operation (kernel ``k``, stride ``s``,
dilation ``d``, padding ``before`` on the low side) changes the outputs whose receptive field meets it.
All windows share one ``size`` (the largest): a rectangle that also holds some unchanged positions is
still exact — those positions are recomputed from the same clean values — and one shape per layer keeps
the batched kernels' shapes fixed. Rectangles are shifted inward to stay inside the map.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Span:
    """Per-window starts (long tensor, one per window) and the shared length along one axis."""

    start: torch.Tensor
    size: int

    def take(self, index: slice) -> Span:
        return Span(self.start[index], self.size)


def _floor_div(a: torch.Tensor, b: int) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="floor")


def fit(lo: torch.Tensor, hi: torch.Tensor, length: int) -> Span:
    """The shared-size span covering ``[lo, hi]`` (inclusive, clamped to the map) for every window."""
    lo, hi = lo.clamp(min=0), hi.clamp(max=length - 1)
    size = int((hi - lo + 1).max()) if lo.numel() else 1
    size = max(1, min(size, length))
    return Span(lo.clamp(max=length - size).clamp(min=0), size)


def slide(span: Span, kernel: int, stride: int, dilation: int, before: int, out_length: int) -> Span:
    """Outputs of a sliding operation changed by a change at ``span`` of its (unpadded) input."""
    reach = (kernel - 1) * dilation
    lo = -_floor_div(-(span.start + before - reach), stride)  # ceil
    hi = _floor_div(span.start + span.size - 1 + before, stride)
    return fit(lo, hi, out_length)


def read(out: Span, kernel: int, stride: int, dilation: int) -> Span:
    """The (padded) input rows a sliding operation reads to produce the outputs ``out``."""
    return Span(out.start * stride, (out.size - 1) * stride + (kernel - 1) * dilation + 1)


def union(a: Span, b: Span, length: int) -> Span:
    """One span holding both changes (for an element-wise op of two changed tensors)."""
    lo = torch.minimum(a.start, b.start)
    hi = torch.maximum(a.start + a.size, b.start + b.size) - 1
    return fit(lo, hi, length)
