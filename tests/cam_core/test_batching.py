"""The one batched forward: results equal a plain forward, and a one-image call never fixes the chunk size."""
import pytest
import torch
from torch import nn

from cam_core.batching import LEARN_FROM, _learned, batched_forward, estimate_seconds, timing_key


def _net() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def test_a_one_image_call_gives_an_estimate_but_does_not_choose_the_chunk():
    net = _net()
    x = torch.randn(1, 3, 13, 13)
    _learned.pop(timing_key(net, x), None)
    batched_forward(net, x)  # a clean forward, as most methods make first
    timing = _learned[timing_key(net, x)]
    assert not timing.settled and estimate_seconds(net, x, 10) is not None
    many = torch.randn(4 * LEARN_FROM, 3, 13, 13)
    got = batched_forward(net, many)  # the first real batch climbs the ladder: never chunks of 1
    with torch.no_grad():
        assert got == pytest.approx(net(many), abs=1e-5)
    timing = _learned[timing_key(net, x)]
    assert timing.settled and timing.chunk >= 2
