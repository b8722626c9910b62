"""Saliency, guided backprop and deconvnet against derivations by hand on two-layer nets."""
import pytest
import torch
import torch.nn.functional as F

from cam_core import CamError, explain

from .nets import GapNet, ReusedRelu, TwoLayer, seeded

X = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def _by_hand(net: TwoLayer, cls: int, rule: str) -> torch.Tensor:
    """Backward through y = W2·act(W1·x + b1) with the rule applied at the one activation."""
    W1, b1, W2 = net.fc1.weight.detach(), net.fc1.bias.detach(), net.fc2.weight.detach()
    z = W1 @ X.flatten() + b1
    g = W2[cls]
    upper = 6.0 if net.act == "relu6" else float("inf")
    if rule == "plain":
        passed = g * ((z > 0) & (z < upper))
    elif rule == "guided":
        passed = g * ((z > 0) & (z < upper)) * (g > 0)
    else:  # deconvnet ignores the forward: ReLU(g)
        passed = g.clamp(min=0)
    return (W1.T @ passed).view(3, 4, 4)


@pytest.mark.parametrize("act", ["module", "functional", "method_inplace", "relu6"])
@pytest.mark.parametrize("method,rule", [("saliency", "plain"), ("guided_backprop", "guided"), ("deconvnet", "deconv")])
def test_pixel_gradients_match_hand_derivation(act, method, rule):
    net = seeded(TwoLayer(act=act), seed=4)
    if act == "relu6":
        with torch.no_grad():  # put some hidden units above 6 so the ReLU6 ceiling matters
            net.fc1.bias[:3] = 8.0
    for cls in range(3):
        result = explain(net, X, method, target_class=cls)
        expected = _by_hand(net, cls, rule)
        assert result.gradient == pytest.approx(expected.numpy(), abs=1e-12)
        assert result.raw == pytest.approx(expected.abs().amax(0).numpy(), abs=1e-12)


def test_guided_rule_holds_at_every_call_of_a_reused_relu_module():
    net = seeded(ReusedRelu(), seed=5)
    W1, W2, W3 = (m.weight.detach() for m in (net.fc1, net.fc2, net.fc3))
    z1 = W1 @ X.flatten() + net.fc1.bias.detach()
    z2 = W2 @ z1.clamp(min=0) + net.fc2.bias.detach()
    for cls in range(3):
        g2 = W3[cls] * (z2 > 0) * (W3[cls] > 0)
        g1 = W2.T @ g2
        g1 = g1 * (z1 > 0) * (g1 > 0)
        expected = (W1.T @ g1).view(3, 4, 4)
        result = explain(net, X, "guided_backprop", target_class=cls)
        assert result.gradient == pytest.approx(expected.numpy(), abs=1e-12)


def test_saliency_matches_finite_differences():
    net = seeded(GapNet(), seed=6)
    x = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    result = explain(net, x, "saliency", target_class=1)
    eps = 1e-6
    for (c, i, j) in [(0, 0, 0), (1, 2, 3), (2, 5, 5), (0, 3, 1)]:
        hi, lo = x.clone(), x.clone()
        hi[0, c, i, j] += eps
        lo[0, c, i, j] -= eps
        with torch.no_grad():
            numeric = (net(hi)[0, 1] - net(lo)[0, 1]) / (2 * eps)
        assert result.gradient[c, i, j] == pytest.approx(float(numeric), abs=1e-6)


def test_feature_map_target_projects_only_the_strongest_unit_of_that_channel():
    """Zeiler & Fergus fig. 2: one activation kept, every other activation of the layer zeroed."""
    net = seeded(GapNet(), seed=7)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    channel = 2
    xg = x.clone().requires_grad_(True)
    A = net.relu2(net.conv2(torch.relu(net.conv1(xg))))
    fmap = A[0, channel]
    row, col = divmod(int(fmap.argmax()), fmap.shape[1])
    (expected,) = torch.autograd.grad(A[0, channel, row, col] * fmap[row, col].detach(), xg)
    result = explain(net, x, "saliency", target_layer="relu2", target_channel=channel)
    assert result.class_idx is None and result.extras["unit"] == (row, col)
    assert result.gradient == pytest.approx(expected[0].numpy(), abs=1e-12)


def test_feature_target_with_a_class_only_method_is_refused():
    net = seeded(GapNet())
    with pytest.raises(CamError, match="feature-map target"):
        explain(net, X, "gradcam", target_layer="relu2", target_channel=0)


def test_guided_backprop_refuses_a_model_without_relus():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)).double()
    with pytest.raises(CamError, match="ReLU"):
        explain(net, X, "guided_backprop")


def test_guided_gradcam_is_guided_backprop_times_upsampled_gradcam():
    net = seeded(GapNet(), seed=8)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    guided = explain(net, x, "guided_backprop", target_class=0)
    cam = explain(net, x, "gradcam", target_layer="relu2", target_class=0)
    both = explain(net, x, "guided_gradcam", target_layer="relu2", target_class=0)
    up = F.interpolate(torch.from_numpy(cam.raw).clamp(min=0)[None, None], size=(8, 8), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    assert both.gradient == pytest.approx(guided.gradient * up[None], abs=1e-12)
