"""Deletion and insertion against a plain loop on a linear model whose probabilities are computed by hand.

Probabilities come out of the model as float32 logits (``batched_forward``), so they match to ~1e-6.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from cam_core import evaluate
from cam_core.metrics.deletion_insertion import gaussian_blur, step_counts

from .hand import LinearNet, hand_prob, hand_top_class, hand_trapezoid

H, W = 5, 7  # not square, and 35 pixels do not split evenly into the steps


def tied_map() -> np.ndarray:
    """A ReLU'd-looking map: a zero plateau and repeated values."""
    rng = np.random.default_rng(3)
    heat = rng.choice([0.0, 0.0, 0.0, 0.25, 0.5, 1.0], size=(H, W))
    heat[2, 3] = 1.0
    return heat


def hand_order(heat: np.ndarray) -> list[int]:
    """Highest first; equal values by flat index (a plain Python sort on (−value, index))."""
    flat = [float(v) for v in heat.ravel()]
    return sorted(range(len(flat)), key=lambda i: (-flat[i], i))


def hand_blur(image: np.ndarray, size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """A Gaussian blur by four nested loops, edge pixels repeated beyond the border."""
    channels, height, width = image.shape
    half = size // 2
    g = [math.exp(-((i - half) ** 2) / (2 * sigma ** 2)) for i in range(size)]
    g = [v / sum(g) for v in g]
    out = np.zeros_like(image)
    for c in range(channels):
        for r in range(height):
            for q in range(width):
                total = 0.0
                for a in range(size):
                    for b in range(size):
                        rr = min(max(r + a - half, 0), height - 1)
                        qq = min(max(q + b - half, 0), width - 1)
                        total += g[a] * g[b] * image[c, rr, qq]
                out[c, r, q] = total
    return out


def hand_curves(net, x, heat, steps, fill, cls=None):
    image = x[0].numpy()
    cls = hand_top_class(net, image) if cls is None else cls
    order = hand_order(heat)
    per_step = math.ceil(H * W / steps)
    blurred = hand_blur(image)
    xs, deletion, insertion = [], [], []
    for i in range(steps + 1):
        k = min(i * per_step, H * W)
        deleted, inserted = image.copy(), blurred.copy()
        for flat in order[:k]:
            r, q = divmod(flat, W)
            for c in range(3):
                deleted[c, r, q] = fill[c]
                inserted[c, r, q] = image[c, r, q]
        xs.append(k / (H * W))
        deletion.append(hand_prob(net, deleted, cls))
        insertion.append(hand_prob(net, inserted, cls))
    return cls, xs, deletion, insertion


@pytest.mark.parametrize("steps, fill", [(4, (0.0, 0.0, 0.0)), (28, (0.5, -1.0, 2.0)), (35, (0.3, 0.3, 0.3))])
def test_curves_and_areas_match_a_plain_loop(steps, fill):
    net = LinearNet(H, W)
    x = torch.randn(1, 3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    heat = tied_map()
    setting = fill if len(set(fill)) > 1 else fill[0]
    got = evaluate(net, x, heat, ("deletion", "insertion"), steps=steps, deletion_fill=setting)
    cls, xs, deletion, insertion = hand_curves(net, x, heat, steps, fill)
    for name, ys in (("deletion", deletion), ("insertion", insertion)):
        result = got[name]
        assert result.class_idx == cls
        assert len(result.curve.x) == steps + 1
        np.testing.assert_allclose(result.curve.x, xs, rtol=0, atol=1e-12)
        np.testing.assert_allclose(result.curve.y, ys, rtol=1e-5, atol=1e-7)
        assert result.score == pytest.approx(hand_trapezoid(xs, ys), rel=1e-5)
        assert result.explanation and "\n" not in result.explanation
    assert got["deletion"].higher_is_better is False and got["insertion"].higher_is_better is True
    assert "lower is better" in got["deletion"].explanation and "higher is better" in got["insertion"].explanation


def test_a_given_class_is_measured_and_the_ends_are_the_clean_and_fully_changed_images():
    net = LinearNet(H, W)
    x = torch.randn(1, 3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    heat = tied_map()
    got = evaluate(net, x, heat, ("deletion", "insertion"), target_class=2, steps=6)
    image = x[0].numpy()
    assert got["deletion"].class_idx == 2
    assert got["deletion"].curve.y[0] == pytest.approx(hand_prob(net, image, 2), rel=1e-5)
    assert got["deletion"].curve.y[-1] == pytest.approx(hand_prob(net, np.zeros_like(image), 2), rel=1e-5)
    assert got["insertion"].curve.y[0] == pytest.approx(hand_prob(net, hand_blur(image), 2), rel=1e-5)
    assert got["insertion"].curve.y[-1] == pytest.approx(hand_prob(net, image, 2), rel=1e-5)


def test_the_stable_order_is_the_flat_index_order_among_ties():
    """Only ties: one pixel per step must go in flat order, 0, 1, 2, … (a linear model reveals which)."""
    net = LinearNet(H, W, seed=5)
    x = torch.randn(1, 3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    heat = np.zeros((H, W))
    got = evaluate(net, x, heat, "deletion", steps=H * W)
    image = x[0].numpy()
    cls = got["deletion"].class_idx
    for k in range(H * W + 1):
        deleted = image.copy().reshape(3, -1)
        deleted[:, :k] = 0.0
        assert got["deletion"].curve.y[k] == pytest.approx(hand_prob(net, deleted.reshape(image.shape), cls),
                                                            rel=1e-5)


def test_step_counts_cover_every_pixel_with_ceil_sized_steps():
    assert step_counts(35, 4).tolist() == [0, 9, 18, 27, 35]
    assert step_counts(224 * 224, 28).tolist()[:3] == [0, 1792, 3584]
    assert step_counts(224 * 224, 28)[-1] == 224 * 224


def test_blur_is_scipys_sampled_gaussian_with_nearest_edges():
    image = np.random.default_rng(0).normal(size=(3, 20, 26))
    ours = gaussian_blur(torch.from_numpy(image)[None], 11, 5.0)[0].numpy()
    # truncate·σ = 5 px: scipy's kernel is then the same 11 sampled, normalised taps; 'nearest' repeats the edge
    peer = gaussian_filter(image, sigma=(0, 5.0, 5.0), truncate=1.0, mode="nearest")
    np.testing.assert_allclose(ours, peer, rtol=1e-10, atol=1e-12)
