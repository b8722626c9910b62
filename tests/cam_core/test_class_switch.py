"""Changing the class of an occlusion explanation without a forward pass equals recomputing it."""
import numpy as np
import pytest
import torch

from cam_core.class_switch import for_class, switchable
from cam_core.explain import explain

from .nets import GapNet, seeded
from .test_occlusion_grid import Counting, plain_map

X = torch.randn(1, 3, 13, 11, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
PARAMS = {"patch": 4, "stride": 3, "engine": "full"}


@pytest.mark.parametrize("cls", [0, 2, 4, None])
def test_other_class_equals_a_fresh_explain_and_a_plain_loop(cls):
    counting = Counting(seeded(GapNet()))
    net = counting.net
    first = explain(counting, X, "occlusion", target_class=1, **PARAMS)
    assert switchable(first)
    seen = counting.seen
    got = for_class(first, cls)
    assert counting.seen == seen  # no forward pass
    direct = explain(net, X, "occlusion", target_class=cls, **PARAMS)
    assert got.class_idx == direct.class_idx
    assert got.heatmap.shape == direct.heatmap.shape == tuple(X.shape[-2:])
    np.testing.assert_allclose(got.heatmap, direct.heatmap, atol=1e-6)
    np.testing.assert_allclose(got.raw, direct.raw, atol=1e-6)
    assert got.prob == pytest.approx(direct.prob, abs=1e-9) and got.score == pytest.approx(direct.score, abs=1e-9)
    # independent reference: one forward per window by hand
    c = direct.class_idx
    np.testing.assert_allclose(got.raw, plain_map(net, X, c, 4, 3).numpy(), atol=1e-9)
    np.testing.assert_allclose(got.extras["prob_grid"], direct.extras["prob_grid"], atol=1e-9)
    assert got.extras["base_prob"] == pytest.approx(direct.extras["base_prob"])


def test_a_method_without_every_class_refuses():
    net = seeded(GapNet())
    exp = explain(net, X, "gradcam", target_layer="conv2", target_class=1)
    assert not switchable(exp)
    with pytest.raises(ValueError):
        for_class(exp, 0)


@pytest.mark.parametrize("cls", [3, None])
def test_progressive_explanation_equals_explain_and_draws_the_coarse_windows_first(cls):
    from cam_core.progressive import explain_progressive

    counting = Counting(seeded(GapNet(), seed=2))
    coarse = []

    def on_step(step):
        if step.stage == "coarse":
            coarse.append(step.coarse())

    params = {"patch": 4, "stride": 2, "engine": "full"}
    got = explain_progressive(counting, X, cls, on_step=on_step, **params)
    grid = got.extras["grid"]
    assert counting.seen == 1 + len(grid.rows) * len(grid.cols)  # every window once
    direct = explain(counting.net, X, "occlusion", target_class=cls, **params)
    assert got.class_idx == direct.class_idx and got.params == direct.params and got.notes == direct.notes
    np.testing.assert_allclose(got.heatmap, direct.heatmap, atol=1e-9)
    np.testing.assert_allclose(got.raw, plain_map(counting.net, X, direct.class_idx, 4, 2).numpy(), atol=1e-9)
    for name in ("prob_grid", "top_class_grid"):
        np.testing.assert_allclose(got.extras[name], direct.extras[name], atol=1e-9)
    assert got.prob == pytest.approx(direct.prob, abs=1e-12) and switchable(got)
    # the coarse grid (every patch//stride-th start, and the last): complete, its own windows' plain map
    (view,) = coarse
    # fine starts 0,2,4,6,8,9 (rows, 13 px) and 0,2,4,6,7 (cols, 11 px); every 2nd one and the last
    assert view.complete and view.rows == [0, 4, 8, 9] and view.cols == [0, 4, 7]
    np.testing.assert_allclose(occlusion_map_of(view, direct.class_idx),
                               plain_map(counting.net, X, direct.class_idx, 4, 2, rows=[0, 4, 8, 9], cols=[0, 4, 7]).numpy(),
                               atol=1e-9)


def occlusion_map_of(grid, cls):
    from cam_core.methods.occlusion import occlusion_map

    return occlusion_map(grid, cls).numpy()
