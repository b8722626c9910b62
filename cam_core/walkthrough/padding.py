"""How a convolution pads its input: PyTorch's declared padding, or timm's TF "SAME" padding worked out per input size."""
from __future__ import annotations

from torch import nn

from ..errors import CamError


def _same(size: int, kernel: int, stride: int, dilation: int) -> int:
    """TensorFlow's total "SAME" padding along one axis (timm's ``get_same_padding``)."""
    return max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def conv_padding(conv: nn.Conv2d, in_hw: tuple[int, int]) -> tuple[tuple[int, int, int, int], str]:
    """((top, bottom, left, right), F.pad mode) that ``conv``'s forward applies before its sliding window.

    A plain ``nn.Conv2d`` pads as declared (``padding_mode``, ``padding="same"`` included); timm's ``Conv2dSame``
    (the embedded EfficientNet-Lite) pads like TensorFlow, the odd pixel at the bottom/right. Any other subclass
    with its own forward is refused rather than guessed.
    """
    if type(conv).forward is nn.Conv2d.forward:
        left, right, top, bottom = (int(p) for p in conv._reversed_padding_repeated_twice)
        return (top, bottom, left, right), ("constant" if conv.padding_mode == "zeros" else conv.padding_mode)
    if type(conv).__name__ == "Conv2dSame" and all(int(p) == 0 for p in conv.padding):
        ph = _same(in_hw[0], conv.kernel_size[0], conv.stride[0], conv.dilation[0])
        pw = _same(in_hw[1], conv.kernel_size[1], conv.stride[1], conv.dilation[1])
        return (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2), "constant"
    raise CamError(f"{type(conv).__name__} pads its input in its own way; the walkthrough cannot write out its sum")
