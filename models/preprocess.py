"""Whole-image preprocessing: the model sees everything the person uploaded (no crop), resized and normalized.

The short side goes to the model's input size with the aspect ratio kept; the long side is capped at
``MAX_ASPECT`` × the short side, so an extreme panorama is squashed along its long side rather than cropped;
both sides are rounded to multiples of 32 (at least 32) so every stride-32 network tiles the image exactly.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

MAX_ASPECT = 2.5
MULTIPLE = 32


def target_size(width: int, height: int, input_size: int) -> tuple[int, int]:
    """``(new_height, new_width)`` for an image of ``width``×``height`` (see the module docstring)."""
    short, long = min(width, height), max(width, height)
    new_short = float(input_size)
    new_long = min(long * input_size / short, MAX_ASPECT * input_size)

    def to_multiple(v: float) -> int:
        return max(MULTIPLE, int(v / MULTIPLE + 0.5) * MULTIPLE)

    if width <= height:
        return to_multiple(new_long), to_multiple(new_short)
    return to_multiple(new_short), to_multiple(new_long)


def pil_to_uint8(image: Image.Image) -> torch.Tensor:
    """RGB ``PIL.Image`` → uint8 tensor 3×H×W (no numpy)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    data = bytearray(image.tobytes())
    return torch.frombuffer(data, dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1)


def preprocess(
    image: Image.Image,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The whole ``image`` as a float32 1×3×H×W tensor on ``device``, normalized with ``mean``/``std`` (0..1 scale).

    Resizing is bilinear with antialiasing, done in torch (on CUDA when the target is CUDA).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    pixels = pil_to_uint8(image)
    work = device if device.type == "cuda" else torch.device("cpu")
    x = pixels.to(work).unsqueeze(0).float()
    height, width = target_size(image.size[0], image.size[1], input_size)
    if (height, width) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    m = torch.tensor(mean, dtype=torch.float32, device=work).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=work).view(1, 3, 1, 1) * 255.0
    x = (x - m) / s
    return x.to(device).contiguous()


def fill_value(rgb: Sequence[float], mean: Sequence[float], std: Sequence[float]) -> list[float]:
    """A pixel colour (0..255 per channel) in the normalized space the model sees."""
    if len(rgb) != 3:
        raise ValueError(f"fill_value takes an (r, g, b) colour, got {tuple(rgb)}")
    return [(float(c) / 255.0 - float(mu)) / float(sd) for c, mu, sd in zip(rgb, mean, std)]
