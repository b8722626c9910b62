"""Our layer CAMs against pytorch-grad-cam's (a second, independent implementation) on the same net and layer.

The target layer keeps the input's resolution, so neither library resizes; pytorch-grad-cam min–max scales
its ReLU'd map, so ours is compared after the same scaling (≤ 1e-4). Score-CAM is not compared: pytorch-grad-cam
softmaxes the masked logits over channels, where the authors (and we) take each masked image's class
probability. Grad-CAM++ is compared where pytorch-grad-cam's ε in eq. 19's denominator is negligible (see
bench/peer_agreement.py for where it is not). Deliberate differences: docs/design.md, "Agreement with the
peer libraries".
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from cam_core import explain

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402


class FullResNet(nn.Module):
    """conv → BN → ReLU → conv → ReLU (target, full resolution) → a two-layer head (CAM does not apply)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(12 * 16, 16), nn.ReLU(), nn.Linear(16, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.relu2(self.conv2(self.relu1(self.bn(self.conv1(x)))))))


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, int]:
    torch.manual_seed(11)
    net = FullResNet()
    net.bn.running_mean.uniform_(-0.3, 0.3)
    net.bn.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():  # maps of order 1, not 1e-4: pytorch-grad-cam divides by (1e-7 + max)
        net.head[3].weight.mul_(1000)
    net = net.eval()
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        cls = int(net(x).argmax())
    return net, x, cls


def _minmax(a: np.ndarray) -> np.ndarray:
    a = a - a.min()
    return a / (1e-7 + a.max())


def _theirs(kind: type, net: nn.Module, x: torch.Tensor, cls: int, layer: str = "relu2") -> np.ndarray:
    peer = copy.deepcopy(net)
    with kind(model=peer, target_layers=[peer.get_submodule(layer)]) as cam:
        return cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(cls)])[0]


@pytest.mark.parametrize("method, peer", [
    ("gradcam", "GradCAM"), ("xgradcam", "XGradCAM"), ("hirescam", "HiResCAM"), ("layercam", "LayerCAM"),
    ("ablationcam", "AblationCAM"),
])
def test_layer_cams_equal_pytorch_grad_cam(setup, method, peer):
    net, x, cls = setup
    ours = explain(net, x, method, target_layer="relu2", target_class=cls)
    theirs = _theirs(getattr(pgc, peer), net, x, cls)
    assert _minmax(np.maximum(ours.raw, 0)) == pytest.approx(theirs, abs=1e-4)


def test_eigencam_equals_pytorch_grad_cam_up_to_the_svd_sign(setup):
    """pytorch-grad-cam leaves the SVD's sign as it comes; we fix it (positive correlation with the mean map)."""
    net, x, cls = setup
    ours = explain(net, x, "eigencam", target_layer="relu2").raw
    theirs = _theirs(pgc.EigenCAM, net, x, cls)
    candidates = [_minmax(np.maximum(sign * ours, 0)) for sign in (1, -1)]
    assert min(float(np.abs(c - theirs).max()) for c in candidates) <= 1e-4


def test_gradcampp_equals_pytorch_grad_cam_where_its_epsilon_is_negligible(setup):
    """pytorch-grad-cam adds ε = 1e-6 to eq. 19's denominator 2G² + ΣA·G³; with this head's gradients (G² ≫ ε)
    that changes nothing, so the formulas agree. Where G² ≲ 1e-6 (early layers of real networks) the ε
    dominates and the maps differ by up to the whole range: docs/design.md, "Agreement with the peer libraries"."""
    net, x, cls = setup
    ours = explain(net, x, "gradcam++", target_layer="relu2", target_class=cls)
    theirs = _theirs(pgc.GradCAMPlusPlus, net, x, cls)
    assert _minmax(np.maximum(ours.raw, 0)) == pytest.approx(theirs, abs=1e-4)


class Strided(nn.Module):
    """A stride-2 and a stride-3 stage: the target grid is smaller than the input, and not a divisor of it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv2(torch.tanh(self.conv1(x)))).mean(dim=(2, 3)))


@pytest.mark.parametrize("method, peer", [("gradcam", "GradCAM"), ("hirescam", "HiResCAM"), ("layercam", "LayerCAM")])
@pytest.mark.parametrize("hw", [(23, 37), (40, 9)])
def test_heatmap_upsampled_to_an_odd_input_equals_pytorch_grad_cams(method, peer, hw):
    """Our heatmap (torch bilinear, half-pixel centres, / max) against theirs (cv2.resize, min–max) on a 4×7 or
    7×2 grid upsampled to 23×37 or 40×9: the same numbers wherever the map has a clipped (zero) part."""
    torch.manual_seed(5)
    net = Strided().eval()
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(6))
    for cls in range(4):
        ours = explain(net, x, method, target_layer="relu", target_class=cls)
        if ours.raw.min() <= 0 < ours.raw.max():
            break
    assert ours.heatmap.shape == hw and ours.raw.min() <= 0 < ours.raw.max()
    theirs = _theirs(getattr(pgc, peer), net, x, cls, layer="relu")
    assert ours.heatmap == pytest.approx(theirs, abs=1e-4)
