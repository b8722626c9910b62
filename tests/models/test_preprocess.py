"""models.preprocess: the whole image reaches the model (no crop), at sizes a stride-32 network tiles exactly."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from models.preprocess import fill_value, preprocess, target_size

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@pytest.mark.parametrize("size,input_size,expected", [
    ((451, 300), 224, (224, 352)),      # 224 × 451/300 = 336.8 → 352
    ((300, 451), 224, (352, 224)),      # portrait: (height, width)
    ((512, 512), 224, (224, 224)),
    ((1, 1), 224, (224, 224)),           # upscaled
    ((10000, 200), 224, (224, 576)),    # long side capped at 2.5 × 224 = 560 → 576
    ((640, 427), 240, (256, 352)),      # 240 rounds to 256; 240 × 640/427 = 359.7 → 352
    ((40, 30), 16, (32, 32)),            # never below 32
])
def test_target_size(size, input_size, expected):
    height, width = target_size(*size, input_size)
    assert (height, width) == expected
    assert height % 32 == 0 and width % 32 == 0


def test_no_resize_case_is_plain_normalization():
    """At the exact target size nothing is resampled: every value equals (v/255 - mean)/std computed by hand."""
    img = Image.effect_noise((96, 64), 70).convert("RGB")
    img = Image.merge("RGB", [img.getchannel(0), img.getchannel(0).rotate(90), img.getchannel(0).transpose(0)])
    x = preprocess(img, 64, MEAN, STD)
    assert x.shape == (1, 3, 64, 96) and x.dtype == torch.float32
    for (col, row) in [(0, 0), (95, 63), (17, 40), (50, 3)]:
        pixel = img.getpixel((col, row))
        for c in range(3):
            assert x[0, c, row, col].item() == pytest.approx((pixel[c] / 255 - MEAN[c]) / STD[c], abs=1e-5)


def test_uniform_colour_equals_fill_value():
    colour = (200, 30, 90)
    x = preprocess(Image.new("RGB", (123, 77), colour), 224, MEAN, STD)
    expected = fill_value(colour, MEAN, STD)
    for c in range(3):
        assert torch.allclose(x[0, c], torch.full_like(x[0, c], expected[c]), atol=1e-4)
        assert expected[c] == pytest.approx((colour[c] / 255 - MEAN[c]) / STD[c])


def test_whole_image_is_kept():
    """A red band along each edge of the original is still at each edge of the input: nothing is cropped."""
    img = Image.new("RGB", (600, 300), (0, 0, 255))
    for box in [(0, 0, 600, 15), (0, 285, 600, 300), (0, 0, 30, 300), (570, 0, 600, 300)]:
        img.paste((255, 0, 0), box)
    x = preprocess(img, 224, (0, 0, 0), (1, 1, 1))
    red = x[0, 0]
    assert red[0].min() > 0.9 and red[-1].min() > 0.9 and red[:, 0].min() > 0.9 and red[:, -1].min() > 0.9
    h, w = red.shape
    assert red[h // 2, w // 2] < 0.1


def test_panorama_is_squashed_not_cropped():
    img = Image.new("RGB", (10000, 200), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 100, 200))
    img.paste((0, 255, 0), (9900, 0, 10000, 200))
    x = preprocess(img, 224, (0, 0, 0), (1, 1, 1))
    assert x.shape == (1, 3, 224, 576)
    assert x[0, 0, :, 0].min() > 0.5 and x[0, 1, :, -1].min() > 0.5  # both ends are in the input


def test_grayscale_and_rgba_inputs_are_converted():
    x = preprocess(Image.new("L", (32, 32), 128), 32, (0, 0, 0), (1, 1, 1))
    assert torch.allclose(x, torch.full_like(x, 128 / 255))
