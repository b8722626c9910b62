"""Pointing game and energy-in-box against values worked out by hand on small maps."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cam_core import CamError, evaluate

from .hand import LinearNet, hooks

H, W = 12, 20


def run(heat, box, **settings):
    net = LinearNet(H, W)
    calls = []
    got = evaluate(net, torch.zeros(1, 3, H, W, dtype=torch.float64), heat, ("pointing_game", "energy_in_box"),
                   box=box, progress=lambda d, t: calls.append((d, t)), **settings)
    assert calls == []  # read from the map alone: no model run
    assert hooks(net) == 0
    return got


def peaked() -> np.ndarray:
    heat = np.zeros((H, W))
    heat[2, 10] = 1.0
    heat[8:10, 1:4] = 0.5
    return heat


@pytest.mark.parametrize("tolerance, hit", [(5.0, False), (5.5, True), (15.0, True)])
def test_pointing_uses_the_distance_from_the_peak_pixel_centre_to_the_box(tolerance, hit):
    # peak pixel (row 2, col 10): centre (10.5, 2.5); box x1 = 5 → 5.5 px to its right edge
    got = run(peaked(), (0, 0, 5, 5), tolerance=tolerance)["pointing_game"]
    assert got.score == float(hit)
    assert got.details["point"] == (10, 2)
    assert got.details["distance"] == pytest.approx(5.5)
    assert got.class_idx is None and got.curve is None


def test_pointing_distance_to_a_corner_is_euclidean():
    got = run(peaked(), (13, 6, 18, 11), tolerance=3.0)["pointing_game"]  # dx = 2.5, dy = 3.5
    assert got.details["distance"] == pytest.approx(math.hypot(2.5, 3.5))
    assert got.score == 0.0


def test_energy_is_the_share_of_mass_on_pixels_whose_centres_are_in_the_box():
    heat = np.random.default_rng(0).random((H, W))
    heat[0, 0] = -4.0  # negative: no energy
    box = (1.2, 0.0, 3.0, 2.0)  # column centres 1.5, 2.5; row centres 0.5, 1.5
    inside = total = 0.0
    for r in range(H):
        for c in range(W):
            value = max(float(heat[r, c]), 0.0)
            total += value
            if 1.2 <= c + 0.5 <= 3.0 and 0.0 <= r + 0.5 <= 2.0:
                inside += value
    got = run(heat, box)["energy_in_box"]
    assert got.score == pytest.approx(inside / total, rel=1e-12)
    assert got.details["box_pixels"] == 4
    assert any("negative" in note for note in got.notes)


def test_the_whole_image_box_holds_all_the_energy_and_a_blank_map_none():
    assert run(peaked(), (0, 0, W, H))["energy_in_box"].score == pytest.approx(1.0)
    blank = run(np.zeros((H, W)), (0, 0, W, H))
    assert blank["energy_in_box"].score == 0.0 and blank["energy_in_box"].notes
    assert blank["pointing_game"].score == 0.0 and "constant" in blank["pointing_game"].notes[0]


def test_a_tie_at_the_maximum_takes_the_first_pixel_and_says_so():
    heat = np.zeros((H, W))
    heat[5, 15] = heat[1, 2] = 1.0
    got = run(heat, (0, 0, 4, 4), tolerance=0)["pointing_game"]
    assert got.details["point"] == (2, 1) and got.score == 1.0
    assert "2 pixels share the maximum" in got.notes[0]


@pytest.mark.parametrize("box", [None, (1, 2, 3), (5, 5, 2, 8), (0, 0, float("nan"), 3), "0,0,3,3",
                                 (30, 0, 40, 5), (0, -9, 5, -1)])
def test_bad_boxes_are_refused_in_one_line(box):
    with pytest.raises(CamError) as info:
        run(peaked(), box)
    assert "box" in str(info.value) and "\n" not in str(info.value)
