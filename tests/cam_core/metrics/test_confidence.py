"""Average drop and increase in confidence against probabilities computed by hand on x ⊙ map."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cam_core import evaluate

from .hand import LinearNet, hand_prob, hand_top_class

H, W = 4, 4


@pytest.mark.parametrize("seed", range(6))
def test_drop_and_increase_match_the_definitions(seed):
    net = LinearNet(H, W, seed=seed)
    x = torch.randn(1, 3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    heat = 3.0 * np.random.default_rng(seed).random((H, W))  # not in [0, 1]: scaled by its maximum first
    got = evaluate(net, x, heat, ("average_drop", "increase_in_confidence"))
    image = x[0].numpy()
    cls = hand_top_class(net, image)
    clean = hand_prob(net, image, cls)
    kept = hand_prob(net, image * (heat / heat.max()), cls)
    assert got["average_drop"].class_idx == cls
    assert got["average_drop"].score == pytest.approx(max(0.0, clean - kept) / clean, abs=1e-6)
    assert got["increase_in_confidence"].score == float(kept > clean)
    assert got["average_drop"].details["masked_prob"] == pytest.approx(kept, rel=1e-5)


def test_both_outcomes_of_increase_are_seen_across_maps():
    net = LinearNet(H, W, seed=0)
    x = torch.randn(1, 3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    outcomes = {evaluate(net, x, np.random.default_rng(s).random((H, W)), "increase_in_confidence")
                ["increase_in_confidence"].score for s in range(40)}
    assert outcomes == {0.0, 1.0}


def test_an_all_ones_map_scores_perfectly_and_the_text_says_so():
    net = LinearNet(H, W)
    x = torch.randn(1, 3, H, W, dtype=torch.float64)
    got = evaluate(net, x, np.ones((H, W)), ("average_drop", "increase_in_confidence"))
    assert got["average_drop"].score == pytest.approx(0.0, abs=1e-6)
    assert "all ones" in got["average_drop"].explanation
    assert "all ones" in got["increase_in_confidence"].explanation
    assert not got["average_drop"].higher_is_better and got["increase_in_confidence"].higher_is_better


def test_a_blank_map_shows_the_mean_image_and_says_so():
    net = LinearNet(H, W)
    x = torch.randn(1, 3, H, W, dtype=torch.float64)
    got = evaluate(net, x, np.zeros((H, W)), "average_drop")["average_drop"]
    cls = hand_top_class(net, x[0].numpy())
    assert got.details["masked_prob"] == pytest.approx(hand_prob(net, np.zeros((3, H, W)), cls), rel=1e-5)
    assert any("blank" in note for note in got.notes)
