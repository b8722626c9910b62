"""ROAD: the imputation against pytorch-grad-cam's (a peer), the scores against a plain loop by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer

from cam_core import CamError, evaluate
from cam_core.metrics.road import Removals, impute, removal_counts, tie_broken_orders

from .hand import LinearNet, hand_prob, hand_top_class

H, W = 6, 9


def peer_impute(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's imputer (Rong et al.'s code), noise off; its mask is 1 where a pixel is KEPT."""
    keep = torch.from_numpy((~removed).astype(np.float32))
    return NoisyLinearImputer(noise=0.0)(torch.from_numpy(image).float(), keep).double().numpy()


@pytest.mark.parametrize("case", ["random", "block", "edges", "nearly_all"])
def test_imputation_matches_the_peer_imputer(case):
    rng = np.random.default_rng(7)
    image = rng.normal(size=(3, 17, 23))
    removed = np.zeros((17, 23), dtype=bool)
    if case == "random":
        removed = rng.random((17, 23)) < 0.5
    elif case == "block":
        removed[4:13, 6:20] = True
    elif case == "edges":
        removed[0, :] = removed[:, -1] = removed[-1, :5] = True
    else:
        removed[:] = True
        removed[8, 11] = False
    ours = impute(image, removed)
    np.testing.assert_allclose(ours, peer_impute(image, removed), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ours[:, ~removed], image[:, ~removed])


def test_an_imputed_pixel_is_the_weighted_mean_of_its_neighbours():
    """The defining identity, checked pixel by pixel in a loop: 1/6 edge, 1/12 diagonal, renormalised at borders."""
    rng = np.random.default_rng(2)
    image = rng.normal(size=(2, 7, 8))
    removed = rng.random((7, 8)) < 0.6
    out = impute(image, removed)
    for r, c in zip(*np.nonzero(removed)):
        total = weight_sum = 0.0
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if (dr or dc) and 0 <= r + dr < 7 and 0 <= c + dc < 8:
                    w = 1 / 12 if dr and dc else 1 / 6
                    total = total + w * out[:, r + dr, c + dc]
                    weight_sum += w
        np.testing.assert_allclose(out[:, r, c], total / weight_sum, rtol=1e-9, atol=1e-12)


def relu_map() -> np.ndarray:
    """Mostly zeros, as after a ReLU: MoRF at low fractions must still remove exactly the asked share."""
    heat = np.zeros((H, W))
    heat[1:3, 2:5] = [[0.2, 0.9, 0.5], [0.5, 1.0, 0.2]]
    return heat


def hand_road(net, x, heat, fractions, seed, cls=None):
    """The ROAD curves by a plain loop: Python sorts, the peer's imputer, probabilities by hand."""
    image = x[0].numpy()
    cls = hand_top_class(net, image) if cls is None else cls
    values = [float(v) for v in heat.ravel()]
    key = np.random.default_rng(seed).permutation(len(values)).tolist()  # the documented tie-breaker
    morf = sorted(range(len(values)), key=lambda i: (-values[i], key[i]))
    lerf = sorted(range(len(values)), key=lambda i: (values[i], key[i]))
    curves = {}
    for name, order in (("MoRF", morf), ("LeRF", lerf)):
        ys = []
        for f in fractions:
            k = int(f * len(values) + 0.5)
            removed = np.zeros(len(values), dtype=bool)
            removed[order[:k]] = True
            ys.append(hand_prob(net, peer_impute(image, removed.reshape(H, W)), cls))
        curves[name] = ys
    return cls, curves


def test_road_scores_match_a_plain_loop_with_the_peer_imputer():
    net = LinearNet(H, W, seed=1)
    x = torch.randn(1, 3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    heat = relu_map()
    fractions = (0.1, 0.25, 0.5, 0.9)
    got = evaluate(net, x, heat, ("road", "road_morf", "road_lerf"), road_noise=0.0, fractions=fractions, seed=3)
    cls, curves = hand_road(net, x, heat, fractions, seed=3)
    road = got["road"]
    assert road.class_idx == cls
    for name in ("MoRF", "LeRF"):
        np.testing.assert_allclose(road.curves[name].x, fractions)
        np.testing.assert_allclose(road.curves[name].y, curves[name], rtol=1e-4, atol=1e-6)
    assert road.score == pytest.approx(np.mean(curves["LeRF"]) - np.mean(curves["MoRF"]), abs=1e-5)
    assert got["road_morf"].score == pytest.approx(np.mean(curves["MoRF"]), abs=1e-5)
    assert got["road_lerf"].score == pytest.approx(np.mean(curves["LeRF"]), abs=1e-5)
    assert road.higher_is_better and not got["road_morf"].higher_is_better
    assert road.details["pixels_removed"] == [5, 14, 27, 49]  # the fraction REMOVED, ties or not


def test_the_fraction_named_is_the_share_removed_even_on_a_tied_plateau():
    x = torch.randn(1, 3, 10, 10, dtype=torch.float64)
    heat = np.zeros((10, 10))
    heat[0, :3] = 1.0  # 3 distinct pixels, 97 tied at zero
    morf, lerf = tie_broken_orders(heat, seed=0)
    counts = removal_counts(100, [0.1, 0.5])
    removals = Removals(x, [morf, morf, lerf], counts + counts[:1], [0.0] * 3, seed=0)
    for i, k in enumerate(counts + counts[:1]):
        changed = ~np.isclose(removals.item(i), x[0].numpy()).all(axis=0)
        assert changed.sum() <= k  # an imputed value may equal the original by chance, never more than k
        assert k == (10 if i in (0, 2) else 50)
    assert set(morf[:3].tolist()) == {0, 1, 2}  # the map's three pixels go first
    assert not set(lerf[:10].tolist()) & {0, 1, 2}


def test_noise_is_seeded_scaled_by_pixel_std_and_only_on_imputed_pixels():
    x = torch.randn(1, 3, 40, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    heat = np.random.default_rng(1).random((40, 40))
    morf, _ = tie_broken_orders(heat, seed=0)
    counts = removal_counts(1600, [0.5])
    quiet = Removals(x, [morf], counts, [0.0] * 3, seed=4).item(0)
    noisy = Removals(x, [morf], counts, [0.01 / 0.5] * 3, seed=4).item(0)
    again = Removals(x, [morf], counts, [0.01 / 0.5] * 3, seed=4).item(0)
    other = Removals(x, [morf], counts, [0.01 / 0.5] * 3, seed=5).item(0)
    removed = np.zeros(1600, dtype=bool)
    removed[morf[:800]] = True
    removed = removed.reshape(40, 40)
    np.testing.assert_array_equal(noisy, again)
    assert not np.array_equal(noisy, other)
    np.testing.assert_array_equal(noisy[:, ~removed], x[0].numpy()[:, ~removed])
    assert np.std(noisy[:, removed] - quiet[:, removed]) == pytest.approx(0.02, rel=0.1)


def test_results_do_not_depend_on_the_chunk_size():
    net = LinearNet(H, W, seed=2)
    x = torch.randn(1, 3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    heat = np.random.default_rng(0).random((H, W))
    one = evaluate(net, x, heat, "road", chunk=1, pixel_std=(0.2, 0.3, 0.4))["road"]
    seven = evaluate(net, x, heat, "road", chunk=7, pixel_std=(0.2, 0.3, 0.4))["road"]
    np.testing.assert_allclose(one.curves["MoRF"].y, seven.curves["MoRF"].y, rtol=1e-6)
    np.testing.assert_allclose(one.curves["LeRF"].y, seven.curves["LeRF"].y, rtol=1e-6)
    np.testing.assert_allclose(one.details["noise_normalized"], [0.05, 0.01 / 0.3, 0.025])


@pytest.mark.parametrize("settings", [{"fractions": (0.1, 1.0)}, {"fractions": ()}, {"fractions": "half"},
                                      {"pixel_std": 0}, {"pixel_std": (1, 2)}])
def test_bad_road_settings_are_refused_in_one_line(settings):
    net = LinearNet(H, W)
    with pytest.raises(CamError) as info:
        evaluate(net, torch.zeros(1, 3, H, W, dtype=torch.float64), np.zeros((H, W)), "road", **settings)
    assert "\n" not in str(info.value)
