"""Display scaling (render.display_map), legends and the checkerboard measure, against numpy references
derived here: a plain loop for the percentile, an analytic checkerboard, hand-built Explanations."""
from __future__ import annotations

import numpy as np
import pytest

from cam_core import render
from cam_core.errors import CamError
from cam_core.explanation import Explanation


def _percentile_loop(values: np.ndarray, q: float) -> float:
    """numpy's default ('linear') percentile, written out: sort, then interpolate at q/100·(n − 1)."""
    v = sorted(float(x) for x in values.ravel())
    pos = q / 100.0 * (len(v) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _exp(heatmap, raw=None, gradient=None) -> Explanation:
    heatmap = np.asarray(heatmap, dtype=np.float32)
    return Explanation(heatmap=heatmap, raw=heatmap if raw is None else np.asarray(raw, np.float32), method="x",
                       class_idx=0, score=None, prob=None, layer=None, elapsed_ms=0.0, gradient=gradient)


def test_unsigned_display_is_scaled_by_the_99th_percentile():
    rng = np.random.default_rng(0)
    m = rng.random((40, 50)).astype(np.float32) ** 4  # mostly dark, a few bright pixels
    m[3, 4] = 50.0  # one hot pixel: max normalisation would make everything else ~0
    shown = render.display_map(m)
    q = _percentile_loop(m, 99)
    assert shown.scale == pytest.approx(q, rel=1e-5)
    np.testing.assert_allclose(shown.values, np.clip(m / q, 0, 1), atol=1e-6)
    assert shown.values.dtype == np.float32 and not shown.signed
    assert (shown.values >= 1.0).mean() == pytest.approx(0.01, abs=0.002)  # the top 1 % saturate
    assert shown.values.mean() > 20 * (m / m.max()).mean()  # readable, not uniformly dark
    assert "99th percentile" in shown.caption()


def test_percentile_100_is_max_normalisation_and_blank_maps_stay_finite():
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(render.display_map(m, percentile=100).values, m / 11.0, atol=1e-7)
    assert render.display_map(m, percentile=100).caption() == "scaled to its maximum"
    zeros = render.display_map(np.zeros((4, 4)))
    assert np.all(zeros.values == 0.0)
    assert np.all(render.display_map(np.zeros((4, 4)), signed=True).values == 0.5)
    sparse = np.zeros((10, 10), np.float32)
    sparse[0, 0] = 2.0  # the 99th percentile is 0 here: fall back to the maximum
    assert render.display_map(sparse).values[0, 0] == 1.0
    nan = np.array([[np.nan, 1.0], [np.inf, 0.5]], np.float32)
    assert np.isfinite(render.display_map(nan).values).all()


def test_signed_display_centres_zero_on_the_middle():
    m = np.array([[-4.0, -1.0, 0.0], [1.0, 2.0, 8.0]], np.float32)
    shown = render.display_map(m, percentile=100, signed=True)
    np.testing.assert_allclose(shown.values, 0.5 + 0.5 * m / 8.0, atol=1e-7)
    assert shown.values[0, 2] == 0.5
    shown = render.display_map(m, percentile=50, signed=True)
    q = _percentile_loop(np.abs(m), 50)
    np.testing.assert_allclose(shown.values, np.clip(0.5 + 0.5 * m / q, 0, 1), atol=1e-7)
    assert "centred on zero" in shown.caption()


def test_explanations_use_their_signed_sources():
    grad = np.stack([np.full((4, 6), 1.0), np.full((4, 6), -3.0), np.full((4, 6), 0.5)]).astype(np.float32)
    grad[:, 0, 0] = (2.0, 2.0, 2.0)
    exp = _exp(np.abs(grad).max(0) / 3.0, gradient=grad)
    np.testing.assert_allclose(render.signed_map(exp), grad.sum(0))  # channel sum: −1.5 and 6
    raw = np.array([[-1.0, 1.0], [0.5, 2.0]], np.float32)  # a 2×2 CAM under a 4×4 heat map
    cam = _exp(np.zeros((4, 4)), raw=raw)
    ref = render.upsample(raw, (4, 4))
    np.testing.assert_allclose(render.signed_map(cam), ref)
    assert render.signed_map(cam).min() < 0
    shown = render.display_map(cam, percentile=100, signed=True)
    np.testing.assert_allclose(shown.values, 0.5 + 0.5 * ref / np.abs(ref).max(), atol=1e-6)
    # unsigned on an Explanation reads its (max-normalised) heat map, which stays untouched
    hm = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    e = _exp(hm.copy())
    render.display_map(e)
    np.testing.assert_array_equal(e.heatmap, hm)


def test_display_map_refuses_bad_percentiles():
    for bad in (0, -1, 101, float("nan"), "x"):
        with pytest.raises(CamError, match="percentile"):
            render.display_map(np.ones((2, 2)), percentile=bad)


def test_overlay_and_colorize_accept_a_display_map():
    from PIL import Image

    m = render.display_map(np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5) ** 3, percentile=90)
    np.testing.assert_array_equal(render.colorize(m, "jet"), render.colorize(m.values, "jet"))
    img = Image.new("RGB", (10, 8), (10, 20, 30))
    np.testing.assert_array_equal(np.asarray(render.overlay(img, m, 0.4)), np.asarray(render.overlay(img, m.values, 0.4)))


def test_legend_names_the_ends_of_the_colormap():
    assert render.legend("jet", "tabby (281)") == "red = strongest evidence for tabby (281) · dark blue = none"
    assert render.legend("coolwarm", "tabby", signed=True) == \
        "red = evidence for tabby · blue = evidence against · light grey = none"
    for name in render.COLORMAP_NAMES:
        assert "evidence for x" in render.legend(name, "x")
    with pytest.raises(CamError):
        render.legend("nope", "x")
    strip = render.colorbar_strip("viridis", 64, 5)
    assert strip.shape == (5, 64, 3) and strip.dtype == np.uint8
    np.testing.assert_array_equal(strip[0, 0], render.COLORMAPS["viridis"][0])
    np.testing.assert_array_equal(strip[-1, -1], render.COLORMAPS["viridis"][255])


def test_checkerboard_fraction_finds_alternating_pixels():
    i, j = np.mgrid[0:32, 0:48]
    smooth = np.exp(-((i - 16) ** 2 + (j - 24) ** 2) / 80.0)
    board = ((i % 2) * (j % 2)).astype(np.float64)  # a stride-2 scatter: one pixel in four lit
    # (i%2)(j%2) = ¼(1 − (−1)^i − (−1)^j + (−1)^(i+j)): every non-constant term is a period-2 wave
    assert render.checkerboard_fraction(board) == pytest.approx(1.0, abs=1e-9)
    assert render.checkerboard_fraction(smooth) < 0.01
    assert render.checkerboard_fraction(np.zeros((6, 6))) == 0.0
    assert render.checkerboard_fraction(np.stack([board, board, board])) == pytest.approx(
        render.checkerboard_fraction(board))
    assert render.checkerboard_fraction(smooth + board) > render.CHECKERBOARD_THRESHOLD
