"""Our maps against captum's, an independent implementation, on a small ResNet-like net with the traps of the
real one: an in-place ReLU module used twice, BatchNorm, max-pooling, a residual sum and a GAP→FC head."""
from __future__ import annotations

import copy

import pytest
import torch
from captum.attr import Deconvolution, GuidedBackprop, LayerGradCam, Occlusion, Saliency
from torch import nn

from cam_core import explain

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")  # its notes about hooks and requires_grad


class TinyResNet(nn.Module):
    def __init__(self, classes: int = 6) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)  # used twice, like torchvision's BasicBlock.relu
        self.pool = nn.MaxPool2d(2)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.bn1(self.stem(x))))
        x = self.relu(self.bn2(self.conv(x)) + x)
        return self.head(x.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def net_and_input() -> tuple[nn.Module, torch.Tensor, int]:
    torch.manual_seed(3)
    net = TinyResNet()
    for bn in (net.bn1, net.bn2):  # non-trivial running statistics, so eval-mode BN is a real affine map
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
    net = net.double().eval()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        cls = int(net(x).argmax())
    return net, x, cls


def _peer(net: nn.Module) -> nn.Module:
    """captum gets its own copy: its hooks and ours never meet on one module."""
    return copy.deepcopy(net)


def test_gradcam_equals_captum_layer_gradcam(net_and_input):
    net, x, cls = net_and_input
    ours = explain(net, x, "gradcam", target_layer="conv", target_class=cls).raw
    peer = _peer(net)
    theirs = LayerGradCam(peer, peer.conv).attribute(x, target=cls)[0, 0]  # signed, like our raw
    assert ours == pytest.approx(theirs.detach().numpy(), abs=1e-12)
    assert ours.max() > 0  # not a vacuous comparison of two blank maps


def test_occlusion_equals_captum_occlusion_of_the_probability(net_and_input):
    net, x, cls = net_and_input
    ours = explain(net, x, "occlusion", target_class=cls, patch=8, stride=4, fill=0.0).raw
    peer = _peer(net)
    theirs = Occlusion(lambda inp: peer(inp).softmax(dim=1)).attribute(
        x, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), target=cls, baselines=0.0)[0]
    assert torch.equal(theirs[0], theirs[2])  # one value per pixel, repeated over channels
    # captum accumulates occlusion in float32 even for a float64 input, hence the relative tolerance
    assert ours == pytest.approx(theirs[0].double().numpy(), rel=1e-6, abs=1e-12)
    assert abs(ours).max() > 1e-6


@pytest.mark.parametrize("method, peer_cls", [("guided_backprop", GuidedBackprop), ("deconvnet", Deconvolution)])
def test_modified_backprop_equals_captum(net_and_input, method, peer_cls):
    net, x, cls = net_and_input
    ours = explain(net, x, method, target_class=cls).gradient
    theirs = peer_cls(_peer(net)).attribute(x.clone(), target=cls)[0].detach().numpy()
    plain = Saliency(_peer(net)).attribute(x.clone(), target=cls, abs=False)[0].numpy()
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert abs(ours - plain).max() > 1e-6  # the rule changed the gradient: not plain backprop on both sides


def test_saliency_equals_captum_saliency(net_and_input):
    net, x, cls = net_and_input
    ours = explain(net, x, "saliency", target_class=cls).raw
    theirs = Saliency(_peer(net)).attribute(x.clone(), target=cls, abs=True)[0].amax(dim=0)
    assert ours == pytest.approx(theirs.numpy(), abs=1e-12)
