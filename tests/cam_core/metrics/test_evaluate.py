"""``evaluate`` as a whole: its inputs checked, one progress bar, and the model left exactly as it was."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from cam_core import CamError, MetricResult, evaluate, explain
from cam_core.metrics import METRICS, SETTINGS

from ..nets import GapNet
from .hand import LinearNet, hooks

ALL_MODEL_METRICS = ("deletion", "insertion", "road", "average_drop", "increase_in_confidence")


class TrainableNet(nn.Module):
    """BatchNorm and Dropout: in train mode their output changes, so eval mode must be in force."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_the_model_is_unchanged_and_eval_mode_was_used():
    torch.manual_seed(0)
    net = TrainableNet()
    net.body[1].running_mean.normal_()
    net.train()
    net.head.eval()  # a mixed state must come back as it was
    frozen = copy.deepcopy(net).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = {name: m.training for name, m in net.named_modules()}
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    heat = np.random.default_rng(0).random((12, 12))
    got = evaluate(net, x, heat, ALL_MODEL_METRICS)
    want = evaluate(frozen, x, heat, ALL_MODEL_METRICS)
    for name in ALL_MODEL_METRICS:
        assert got[name].score == pytest.approx(want[name].score, abs=1e-6)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # bit-identical, BN stats too
    assert {name: m.training for name, m in net.named_modules()} == flags
    assert hooks(net) == 0 and all(p.grad is None for p in net.parameters())


def test_progress_follows_one_run_of_every_perturbed_input():
    net = LinearNet(6, 6)
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    calls = []
    evaluate(net, x, np.random.default_rng(0).random((6, 6)), ALL_MODEL_METRICS, steps=10,
             progress=lambda done, total: calls.append((done, total)), chunk=4)
    total = 1 + 10 + 10 + 2 * 9 + 1  # clean, deletion, insertion, ROAD MoRF+LeRF, masked
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert [d for d, _ in calls][:2] == [4, 8]


def test_results_are_metric_results_in_the_order_asked():
    net = LinearNet(4, 4)
    x = torch.randn(3, 4, 4, dtype=torch.float64)  # C×H×W is accepted
    got = evaluate(net, x, torch.rand(4, 4), ("insertion", "road_lerf", "deletion"))
    assert list(got) == ["insertion", "road_lerf", "deletion"]
    for name, result in got.items():
        assert isinstance(result, MetricResult) and result.name == name
        assert isinstance(result.curve.x, np.ndarray) and isinstance(result.curve.y, np.ndarray)
        assert result.higher_is_better == METRICS[name].higher_is_better


def test_an_explanation_brings_its_class():
    net = GapNet(classes=5).double().eval()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exp = explain(net, x, "gradcam", target_class=3)
    got = evaluate(net, x, exp, "deletion", steps=4)
    assert got["deletion"].class_idx == 3
    assert evaluate(net, x, exp.heatmap, "deletion", steps=4)["deletion"].class_idx == int(net(x).argmax())
    assert evaluate(net, x, exp, "deletion", target_class=1, steps=4)["deletion"].class_idx == 1


@pytest.mark.parametrize("heat, words", [
    (np.zeros((4, 5)), "4×4"), (np.zeros((1, 4, 4)), "4×4"), (np.zeros(16), "4×4"),
    (np.full((4, 4), np.nan), "NaN"), (np.full((4, 4), np.inf), "NaN or Inf"), ("map", "array"),
])
def test_a_wrong_map_is_refused_in_one_line(heat, words):
    with pytest.raises(CamError) as info:
        evaluate(LinearNet(4, 4), torch.zeros(1, 3, 4, 4, dtype=torch.float64), heat)
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, words", [
    ({"metrics": ("deletion", "accuracy")}, "unknown metric 'accuracy'"),
    ({"metrics": ()}, "no metric"),
    ({"stepz": 3}, "no setting stepz"),
    ({"steps": 0}, "'steps' must be between"),
    ({"deletion_fill": (1, 2)}, "deletion_fill"),
    ({"blur_size": 10, "metrics": "insertion"}, "odd"),
    ({"target_class": 7}, "class 7 does not exist"),
    ({"metrics": "pointing_game"}, "box=(x0, y0, x1, y1)"),
])
def test_person_made_errors_are_one_line_cam_errors(kwargs, words):
    kwargs = {"metrics": "deletion", **kwargs}
    with pytest.raises(CamError) as info:
        evaluate(LinearNet(4, 4), torch.zeros(1, 3, 4, 4, dtype=torch.float64), np.zeros((4, 4)), **kwargs)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_one_image_at_a_time():
    with pytest.raises(CamError, match="one image at a time"):
        evaluate(LinearNet(4, 4), torch.zeros(2, 3, 4, 4, dtype=torch.float64), np.zeros((4, 4)))


def test_every_metric_is_registered_with_a_paper_and_existing_settings():
    for name, spec in METRICS.items():
        assert spec.name == name and spec.citation and spec.paper_url.startswith("https://")
        assert set(spec.settings) <= set(SETTINGS)
        assert "better" in spec.explanation and "\n" not in spec.explanation


@pytest.mark.slow
def test_on_the_embedded_model_deleting_grad_cams_pixels_first_hurts_more_than_its_reverse():
    """A sanity check, not a reference: on chelsea the blurred image alone already scores above the clean one
    (0.43 vs 0.37 for class 285), so insertion does not separate the two maps there; deletion does."""
    models = pytest.importorskip("models")
    from PIL import Image
    from skimage import data

    backbone = models.load("efficientnet_lite0", device="cpu")
    x = backbone.preprocess(Image.fromarray(data.chelsea()))
    exp = explain(backbone.model, x, "gradcam", target_layer=backbone.spec.default_layer)
    good = evaluate(backbone.model, x, exp, "deletion", steps=14)["deletion"]
    bad = evaluate(backbone.model, x, 1.0 - exp.heatmap, "deletion", target_class=exp.class_idx, steps=14)["deletion"]
    assert good.class_idx == bad.class_idx == exp.class_idx
    assert good.curve.y[0] == pytest.approx(exp.prob, abs=1e-4)
    assert good.score < bad.score
