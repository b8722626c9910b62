"""cam_core.predict: top-k against a hand-computed softmax, eval mode borrowed and restored, NaN refused."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cam_core.errors import CamError
from cam_core.predict import Prediction, predict, predict_batch


class MeanLinear(nn.Module):
    """Logits = W · (per-channel mean of x) + b, with a dropout that only acts in training mode."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.drop = nn.Dropout(p=0.9)
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x.mean(dim=(2, 3))))


def _model() -> MeanLinear:
    weight = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    return MeanLinear(weight, torch.tensor([0.0, 0.1, 0.2, -0.3]))


def _softmax_by_hand(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    return [e / sum(exps) for e in exps]


def _input(values=(0.3, -0.2, 0.7)) -> torch.Tensor:
    return torch.tensor(values).view(1, 3, 1, 1).expand(1, 3, 4, 5).contiguous()


def test_top_k_matches_hand_computed_softmax():
    model = _model().eval()
    c = (0.3, -0.2, 0.7)
    logits = [c[0], 2 * c[1] + 0.1, -c[2] + 0.2, 0.5 * sum(c) - 0.3]
    probs = _softmax_by_hand(logits)
    order = sorted(range(4), key=lambda i: -probs[i])
    names = ["ant", "bee", "cat", "dog"]
    result = predict(model, _input(c), names, top=3)
    assert [p.class_idx for p in result] == order[:3]
    for p in result:
        assert p.label == names[p.class_idx]
        assert p.prob == pytest.approx(probs[p.class_idx], abs=1e-6)


def test_default_labels_and_top_larger_than_classes():
    result = predict(_model().eval(), _input(), top=10)
    assert len(result) == 4
    assert sorted(p.class_idx for p in result) == [0, 1, 2, 3]
    assert all(p.label == f"class {p.class_idx}" for p in result)
    assert sum(p.prob for p in result) == pytest.approx(1.0, abs=1e-6)


def test_training_mode_is_borrowed_and_restored():
    model = _model()
    model.train()
    model.fc.eval()  # mixed flags must come back exactly as they were
    reference = predict(_model().eval(), _input(), top=4)
    for _ in range(3):  # dropout p=0.9 would change the answer if it were active
        assert predict(model, _input(), top=4) == reference
    assert model.training is True and model.drop.training is True and model.fc.training is False


def test_training_mode_restored_when_forward_fails():
    model = _model().train()
    with pytest.raises(RuntimeError):
        predict(model, torch.zeros(1, 5, 2, 2))  # wrong channel count for the Linear
    assert model.training is True


def test_no_gradients_are_recorded():
    model = _model().eval()
    x = _input().requires_grad_(True)
    predict(model, x)
    assert model.fc.weight.grad is None and x.grad is None


def test_nan_output_is_refused():
    model = _model().eval()
    with torch.no_grad():
        model.fc.weight[1, 1] = float("nan")
    with pytest.raises(CamError, match="NaN or Inf"):
        predict(model, _input())


def test_inf_output_is_refused():
    with pytest.raises(CamError, match="NaN or Inf"):
        predict(_model().eval(), _input((float("inf"), 0.0, 0.0)))


def test_batch_equals_one_by_one():
    model = _model().eval()
    a, b = _input((0.3, -0.2, 0.7)), _input((-1.0, 0.5, 0.1))
    batch = predict_batch(model, torch.cat([a, b]), top=2)
    assert batch == [predict(model, a, top=2), predict(model, b, top=2)]


def test_bad_arguments():
    model = _model().eval()
    with pytest.raises(CamError, match="1×3×H×W"):
        predict(model, torch.zeros(2, 3, 4, 4))
    with pytest.raises(CamError, match="top"):
        predict(model, _input(), top=0)
    with pytest.raises(CamError, match="3 labels for a model with 4 classes"):
        predict(model, _input(), ["a", "b", "c"])


def test_to_dict():
    assert Prediction(7, "seven", 0.25).to_dict() == {"class_idx": 7, "label": "seven", "prob": 0.25}
