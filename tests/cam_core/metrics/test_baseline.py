"""The baseline of random smooth maps: a map known to be right beats them all, a blind model ties, one draw."""
from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch
from torch import nn

from cam_core import CamError, evaluate
from cam_core.metrics import Baseline, random_maps

SIZE = 16
REGION = (slice(4, 8), slice(9, 13))  # rows, columns: the only pixels the model looks at


class RegionNet(nn.Module):
    """Class 0's logit is 3 × the mean of the region's pixels (all channels); class 1's is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inside = x[:, :, REGION[0], REGION[1]].mean(dim=(1, 2, 3))
        return torch.stack([3.0 * inside, torch.zeros_like(inside)], dim=1)


class BlindNet(nn.Module):
    """The same logits whatever the image: no map can explain it better than another."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[1.0, 0.0]], dtype=x.dtype).expand(x.shape[0], 2) + 0 * x.sum()


def image() -> torch.Tensor:
    x = torch.zeros(1, 3, SIZE, SIZE, dtype=torch.float64)
    x[:, :, REGION[0], REGION[1]] = 2.0
    return x


def region_map(inside: float = 1.0, outside: float = 0.0) -> np.ndarray:
    heat = np.full((SIZE, SIZE), outside)
    heat[REGION] = inside
    return heat


class Counter:
    """Images the model has been run on, counted by a forward hook."""

    def __init__(self, model: nn.Module) -> None:
        self.items = 0
        self.handle = model.register_forward_hook(self.hook)

    def hook(self, _module: nn.Module, args: tuple, _out: torch.Tensor) -> None:
        self.items += args[0].shape[0]


def test_the_map_of_the_only_region_the_model_reads_beats_every_random_map():
    # deleting (inserting) the region first lowers (raises) the logit fastest at every step: the region map's
    # curve bounds every other map's, so no random map can score as well
    got = evaluate(RegionNet(), image(), region_map(), baseline=Baseline(16), steps=16, target_class=0)
    for name in ("deletion", "insertion"):
        r = got[name]
        assert r.baseline.n == 16 and r.standing == "better"
        assert r.verdict.startswith("better than all 16 random maps (random: ")
        assert r.baseline.beaten(r.score, r.higher_is_better) == 16


def test_the_reversed_map_and_a_blind_model_are_no_better_than_random():
    reversed_map = evaluate(RegionNet(), image(), region_map(0.0, 1.0), baseline=Baseline(8), steps=16,
                            target_class=0)
    blind = evaluate(BlindNet(), image(), region_map(), baseline=Baseline(8), steps=16, target_class=0)
    for r in (*reversed_map.values(), *blind.values()):
        assert r.standing == "no better"
        assert r.verdict.startswith("no better than a random map (better than 0 of 8; random: ")
    assert blind["deletion"].baseline.spread == pytest.approx(0.0, abs=1e-12)  # every map scores the same


def test_the_baseline_is_the_random_maps_scored_one_by_one():
    maps = random_maps(SIZE, SIZE, 5, seed=3)
    got = evaluate(RegionNet(), image(), region_map(), baseline=Baseline(5, seed=3), steps=8, target_class=0)
    for name in ("deletion", "insertion"):
        alone = [evaluate(RegionNet(), image(), m, name, 0, steps=8)[name].score for m in maps]
        base = got[name].baseline
        assert base.scores == pytest.approx(alone, abs=1e-12)
        assert base.mean == pytest.approx(statistics.mean(alone), abs=1e-12)
        assert base.spread == pytest.approx(statistics.stdev(alone), abs=1e-12)


def test_random_maps_are_seeded_smooth_and_in_range():
    a, b, c = random_maps(12, 20, 4, seed=1), random_maps(12, 20, 4, seed=1), random_maps(12, 20, 4, seed=2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not any(np.array_equal(p, q) for p, q in zip(a, c))
    for m in a:
        assert m.shape == (12, 20) and m.min() == 0.0 and m.max() == 1.0
        assert len(np.unique(m)) > 100  # no plateaus for the ranking to break
    for m in random_maps(70, 100, 3):  # 7 cells of 10 pixels on the short side: no pixel noise
        assert np.abs(np.diff(m, axis=0)).max() < 0.15 and np.abs(np.diff(m, axis=1)).max() < 0.15


def test_the_baseline_runs_once_per_image_class_and_settings():
    net, x = RegionNet(), image()
    counter, base = Counter(net), Baseline(4)
    evaluate(net, x, region_map(), baseline=base, steps=8, target_class=0)
    assert counter.items == 1 + 2 * 8 + 4 * 2 * 8  # clean, the map's two curves, four random maps' curves
    counter.items = 0
    evaluate(net, x, np.random.default_rng(0).random((SIZE, SIZE)), baseline=base, steps=8, target_class=0)
    assert counter.items == 1 + 2 * 8 and base.runs == 1  # another method's map: the same random scores
    evaluate(net, x, region_map(), baseline=base, steps=4, target_class=0)  # other settings
    evaluate(net, x, region_map(), baseline=base, steps=8, target_class=1)  # another class
    evaluate(net, x + 0.5, region_map(), baseline=base, steps=8, target_class=0)  # another image
    assert base.runs == 4
    counter.handle.remove()


def test_no_baseline_by_default_and_bad_values_refused():
    r = evaluate(RegionNet(), image(), region_map(), "deletion", 0, steps=4)["deletion"]
    assert r.baseline is None and r.verdict == "" and r.standing is None
    for bad in (-1, "many", 2.5):
        with pytest.raises(CamError, match="baseline"):
            evaluate(RegionNet(), image(), region_map(), "deletion", 0, baseline=bad)


@pytest.mark.parametrize("metrics", [("deletion", "insertion"), ("road", "average_drop"), ("pointing_game",)])
def test_model_runs_foretells_the_images_evaluate_runs(metrics):
    from cam_core.metrics import model_runs

    net, x, base = RegionNet(), image(), Baseline(3)
    settings = {"steps": 5, "box": (9, 4, 13, 8)}
    counter = Counter(net)
    for heat in (region_map(), region_map(0.0, 1.0)):  # the second map finds the baseline kept
        own, extra = model_runs(net, x, metrics, 0, baseline=base, **settings)
        counter.items = 0
        evaluate(net, x, heat, metrics, 0, baseline=base, **settings)
        assert own + extra == counter.items
        assert model_runs(net, x, metrics, 0, baseline=base, **settings) == (own, 0)
    assert model_runs(net, x, metrics, 0, **settings)[1] == 0  # no baseline asked
    counter.handle.remove()
