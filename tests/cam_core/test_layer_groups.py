"""Grouped target-layer lists (cam_core.layer_groups) on a hand-built network whose stages are known."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from cam_core.layer_groups import grouped_layers, stage_strip, useful
from cam_core.layers import LayerInfo, layers


class Block(nn.Module):
    """conv → (no-op slots like timm's .aa / .se) → ReLU, with a dropout and a stochastic depth (torchvision's
    ConvNeXt and EfficientNet blocks) that do nothing in eval."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.1)
        self.sd = StochasticDepth(0.5, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sd(self.drop(self.act(self.se(self.aa(self.conv(x))))))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, 1, 1),                                             # 16×16
        nn.Sequential(Block(4, 8, 1), Block(8, 8, 2)),                        # 16×16, then 8×8
        nn.Sequential(Block(8, 16, 2)),                                       # 4×4
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))


def test_no_ops_containers_and_points_are_left_out_and_stages_follow_resolution():
    net = _net().eval()
    x = torch.rand(2, 8, 4, 4)
    assert torch.equal(net[2][0].sd(x), x)  # a pass-through in eval, as the dropout
    infos = layers(net, torch.zeros(1, 3, 16, 16))
    names = [i.name for i in infos]
    assert "1.0.aa" in names and "1.0.sd" in names and "1" in names and "3" in names  # the raw list has them all
    grouped = grouped_layers(infos)
    got = [(c.stage, c.name) for c in grouped]
    assert got == [
        (1, "0"), (1, "1.0"), (1, "1.0.conv"), (1, "1.0.act"),
        (2, "1.1"), (2, "1.1.conv"), (2, "1.1.act"),
        (3, "2.0"), (3, "2.0.conv"), (3, "2.0.act"),
    ]
    assert grouped[1].label() == "stage 1 · 16×16 │ 1.0 · Block, 8 ch"
    # a container named as the model's default layer stays (its map is that of its last block)
    assert "2" in [c.name for c in grouped_layers(infos, keep=["2"])]


def test_useful_by_kind_and_size():
    assert not useful(LayerInfo("a", "Identity", (3, 4, 4)))
    assert not useful(LayerInfo("a", "Sequential", (3, 4, 4)))
    assert not useful(LayerInfo("a", "Conv2d", (3, 1, 1)))
    assert useful(LayerInfo("a", "Conv2d", (3, 2, 1)))


def test_stage_strip_spreads_from_input_to_head():
    infos = layers(_net(), torch.zeros(1, 3, 16, 16))
    strip = [i.name for i in stage_strip(infos)]
    assert strip[0] == "0" and strip[-1] in ("2", "2.0", "2.0.drop", "2.0.act")
    assert all(i.kind not in ("Identity", "AdaptiveAvgPool2d") for i in stage_strip(infos))
    assert len(stage_strip(infos, max_stages=2)) <= 2
