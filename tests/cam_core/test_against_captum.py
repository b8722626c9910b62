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


def test_smoothgrad_equals_captum_noise_tunnel_fed_the_same_noise(net_and_input, monkeypatch):
    """captum's NoiseTunnel draws its noise with one ``torch.normal(0, σ)`` call; handing it our seeded samples
    makes the comparison exact (the mean signed gradient, before our |·|-max over colour channels)."""
    from captum.attr import NoiseTunnel

    from cam_core.methods.wrappers import sample_noise

    net, x, cls = net_and_input
    samples, seed = 6, 3
    ours = explain(net, x, "smoothgrad", target_class=cls, samples=samples, noise=0.2, seed=seed, chunk=4)
    sigma = ours.extras["sigma"]
    noise = torch.cat([sample_noise(x.shape, sigma, seed, i) for i in range(samples)])
    real = torch.normal
    monkeypatch.setattr(torch, "normal", lambda mean, std, *a, **k:
                        noise.to(std.dtype) if torch.is_tensor(std) else real(mean, std, *a, **k))
    theirs = NoiseTunnel(Saliency(_peer(net))).attribute(
        x.clone(), nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=samples, stdevs=sigma,
        target=cls, abs=False)[0].detach().numpy()
    assert ours.gradient == pytest.approx(theirs, abs=1e-12)
    assert ours.raw == pytest.approx(abs(theirs).max(axis=0), abs=1e-12)


def test_integrated_gradients_with_learned_chunks_equals_captum_on_flat_regions(net_and_input):
    """A flat patch gives exact ties in the max-pool after the ReLU. Gradient batches stay contiguous (a learned
    channels_last layout broke those ties by rounding and moved ResNet-18's map 1.5 % away from captum's)."""
    from captum.attr import IntegratedGradients

    net, x, cls = net_and_input
    flat = x.clone()
    flat[..., 4:20, 6:26] = 0.25
    ours = explain(net, flat, "integrated_gradients", target_class=cls, steps=24, fill=0.0,
                   rule="trapezoid")  # chunk learned
    theirs = IntegratedGradients(_peer(net)).attribute(flat.clone(), baselines=0.0, target=cls, n_steps=24,
                                                       method="riemann_trapezoid")[0].detach().numpy()
    # captum: trapezoid weights summing to 23/24, and its α points rounded to float32 by torch.linspace
    assert ours.gradient * 23 / 24 == pytest.approx(theirs, rel=1e-6, abs=1e-12)


def test_guided_gradcam_equals_captum_with_bilinear_upsampling(net_and_input):
    """captum upsamples its Grad-CAM with "nearest" by default; ours is bilinear (as the paper's figures), so
    captum's bilinear option gives our map (Product scales nothing on its own)."""
    from captum.attr import GuidedGradCam

    net, x, cls = net_and_input
    ours = explain(net, x, "guided_gradcam", target_layer="conv", target_class=cls)
    peer = _peer(net)
    theirs = GuidedGradCam(peer, peer.conv).attribute(x.clone(), target=cls, interpolate_mode="bilinear")[0]
    assert ours.gradient == pytest.approx(theirs.detach().numpy(), abs=1e-12)
