"""cam_core.render against independent references: matplotlib's colormaps, a plain bilinear loop,
torch's interpolate, and the blend formula evaluated here."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image

from cam_core import render
from cam_core.errors import CamError


def _bilinear_loop(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Textbook bilinear resize with half-pixel centres (align_corners=False), one pixel at a time."""
    ih, iw = a.shape

    def src(i: int, n_in: int, n_out: int) -> tuple[int, int, float]:
        s = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(math.floor(s)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        return i0, i1, s - i0

    out = np.zeros((h, w), dtype=np.float64)
    for y in range(h):
        y0, y1, ly = src(y, ih, h)
        for x in range(w):
            x0, x1, lx = src(x, iw, w)
            top = (1 - lx) * a[y0, x0] + lx * a[y0, x1]
            bot = (1 - lx) * a[y1, x0] + lx * a[y1, x1]
            out[y, x] = (1 - ly) * top + ly * bot
    return out


@pytest.mark.parametrize("name", ["jet", "turbo", "viridis", "inferno", "magma", "plasma", "gray"])
def test_colorize_matches_matplotlib(name):
    ref = colormaps[name]
    ends = render.colorize(np.array([[0.0, 1.0]], dtype=np.float32), name)
    assert ends.dtype == np.uint8 and ends.shape == (1, 2, 3)
    np.testing.assert_array_equal(ends[0, 0], ref(0.0, bytes=True)[:3])
    np.testing.assert_array_equal(ends[0, 1], ref(1.0, bytes=True)[:3])
    v = np.random.default_rng(0).random((17, 23), dtype=np.float32)
    np.testing.assert_array_equal(render.colorize(v, name), ref(v, bytes=True)[..., :3])


def test_colorize_clips_and_treats_nan_as_zero():
    lut = render.COLORMAPS["jet"]
    out = render.colorize(np.array([[np.nan, -3.0, 7.0, np.inf]], dtype=np.float32), "jet")
    np.testing.assert_array_equal(out[0], np.stack([lut[0], lut[0], lut[255], lut[255]]))
    with pytest.raises(CamError, match="colormap"):
        render.colorize(np.zeros((2, 2)), "no-such-map")


@pytest.mark.parametrize("size", [(7, 11), (224, 160), (3, 2), (5, 5)])
def test_upsample_is_bilinear_half_pixel(size):
    a = np.random.default_rng(1).random((5, 7)).astype(np.float32)
    got = render.upsample(a, size)
    assert got.dtype == np.float32 and got.shape == size
    np.testing.assert_allclose(got, _bilinear_loop(a.astype(np.float64), *size), atol=1e-5)
    ref = F.interpolate(torch.from_numpy(a)[None, None], size=size, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(got, ref[0, 0].numpy(), atol=1e-6)


def _photo(h: int, w: int) -> Image.Image:
    rng = np.random.default_rng(2)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def test_overlay_alpha_ends_and_size_on_non_square_image():
    img = _photo(45, 83)  # original size, not the model's
    hm = np.random.default_rng(3).random((32, 64)).astype(np.float32)  # model-input resolution
    zero = render.overlay(img, hm, alpha=0.0)
    assert zero.size == img.size and zero.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(zero), np.asarray(img))
    one = render.overlay(img, hm, alpha=1.0, cmap="viridis")
    assert one.size == (83, 45)
    expected = colormaps["viridis"](_bilinear_loop(hm.astype(np.float64), 45, 83).astype(np.float32),
                                    bytes=True)[..., :3]
    # bin edges may flip one bin where float32 and float64 upsampling differ in the last bit
    diff = np.abs(np.asarray(one).astype(int) - expected.astype(int))
    assert (diff.max(axis=-1) == 0).mean() > 0.999
    np.testing.assert_array_equal(np.asarray(one), render.colorize(render.upsample(hm, (45, 83)), "viridis"))


def test_overlay_blend_formula_and_grey_mode_input():
    img = _photo(20, 30).convert("L")  # non-RGB input is converted
    hm = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    out = np.asarray(render.overlay(img, hm, alpha=0.3, cmap="gray")).astype(np.float64)
    base = np.asarray(img.convert("RGB")).astype(np.float64)
    color = render.colorize(render.upsample(hm, (20, 30)), "gray").astype(np.float64)
    np.testing.assert_allclose(out, 0.7 * base + 0.3 * color, atol=0.5 + 1e-6)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "x"])
def test_overlay_refuses_bad_alpha(alpha):
    with pytest.raises(CamError, match="alpha"):
        render.overlay(_photo(4, 4), np.zeros((2, 2), np.float32), alpha=alpha)


def test_gradient_image_display_convention():
    grey = render.gradient_image(np.zeros((3, 6, 5), np.float32))
    assert grey.shape == (6, 5, 3) and grey.dtype == np.uint8
    assert (grey == grey.flat[0]).all() and grey.flat[0] in (127, 128)

    rng = np.random.default_rng(4)
    g = rng.normal(size=(3, 40, 50)).astype(np.float32)
    m = np.percentile(np.abs(g), 99)
    got = render.gradient_image(g).astype(np.float64)
    expected = np.clip(0.5 + 0.5 * g / m, 0, 1).transpose(1, 2, 0) * 255
    np.testing.assert_allclose(got, expected, atol=0.5 + 1e-3)
    # sparse gradient (99th percentile is 0): the single non-zero pixel still shows at full scale
    sparse = np.zeros((3, 20, 20), np.float32)
    sparse[0, 3, 4] = -2.0
    img = render.gradient_image(sparse)
    assert img[3, 4, 0] == 0 and img[0, 0, 0] in (127, 128)


def test_writers_round_trip(tmp_path):
    img = _photo(9, 13)
    hm = np.random.default_rng(5).random((4, 6))  # float64 in, float32 out
    big = render.heatmap_at_image_size(hm, img)
    assert big.shape == (9, 13) and big.dtype == np.float32
    p = render.save_npy(big, tmp_path / "sub" / "h.npy")
    back = np.load(p, allow_pickle=False)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, big)
    png = render.save_png(np.asarray(img), tmp_path / "a" / "o.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), np.asarray(img))
    data = render.to_png_bytes(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(img))
