"""The CAM family beyond Grad-CAM, Integrated Gradients and RISE against references derived here:
formulas on independently captured A and G, plain loops, and identities."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cam_core import CamError, explain
from cam_core.methods.integrated_gradients import completeness_note, gauss_legendre
from cam_core.methods.rise import rise_mask
from cam_core.methods.wrappers import sample_noise

from .nets import GapNet, MlpHeadNet, capture, seeded

X = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
X8 = X[..., :8, :8]


def _loop_map(weights, a):
    """Σ_k w_k A_k with a plain Python loop over channels."""
    out = torch.zeros_like(a[0])
    for k in range(a.shape[0]):
        out += float(weights[k]) * a[k]
    return out


@pytest.mark.parametrize("cls", range(4))
def test_xgradcam_hirescam_layercam_gradcampp_equal_their_formulas(cls):
    net = seeded(MlpHeadNet())
    A, G = capture(net, X8, net.relu, cls)
    a, g = A[0], G[0]
    k = a.shape[0]
    xgrad_w = [float((a[i] * g[i]).sum() / a[i].sum()) if float(a[i].sum()) != 0 else 0.0 for i in range(k)]
    expected = {
        "xgradcam": _loop_map(xgrad_w, a),
        "hirescam": sum(g[i] * a[i] for i in range(k)),
        "layercam": sum(g[i].clamp(min=0) * a[i] for i in range(k)),
    }
    g2, g3 = g ** 2, g ** 3
    pp_w = []
    for i in range(k):
        den = 2 * g2[i] + a[i].sum() * g3[i]
        alpha = torch.where(den != 0, g2[i] / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(den))
        pp_w.append(float((alpha * g[i].clamp(min=0)).sum()))
    expected["gradcam++"] = _loop_map(pp_w, a)
    for method, want in expected.items():
        got = explain(net, X8, method, target_layer="relu", target_class=cls)
        assert got.raw == pytest.approx(want.numpy(), abs=1e-10), method
        assert got.class_idx == cls


def test_hirescam_equals_gradcam_and_cam_on_a_gap_fc_head():
    """On GAP→FC at the last layer G = W[c]/Z everywhere, so HiResCAM = Grad-CAM = CAM / Z."""
    net = seeded(GapNet())
    for cls in range(5):
        cam = explain(net, X, "cam", target_layer="relu2", target_class=cls)
        hires = explain(net, X, "hirescam", target_layer="relu2", target_class=cls)
        grad = explain(net, X, "gradcam", target_layer="relu2", target_class=cls)
        z = cam.raw.size
        assert hires.raw == pytest.approx(cam.raw / z, abs=1e-10)
        assert hires.raw == pytest.approx(grad.raw, abs=1e-10)


class BiasFreeReluNet(nn.Module):
    """ReLU convolutions and a linear head without biases: y is positively homogeneous of degree 1 in A."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 5, 3, padding=1, bias=False)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(5, 6, 3, padding=1, bias=False)
        self.relu2 = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 8 * 8, 4, bias=False))

    def forward(self, x):
        return self.head(self.relu2(self.conv2(self.relu1(self.conv1(x)))))


def test_xgradcam_conserves_the_score_on_a_bias_free_relu_net():
    """Fu et al.'s conservation axiom: Σ_ij XGrad-CAM = Σ_k Σ_ij A G = y^c (Euler, degree-1 homogeneity)."""
    net = seeded(BiasFreeReluNet())
    with torch.no_grad():
        y = net(X8)[0]
    for cls in range(4):
        got = explain(net, X8, "xgradcam", target_layer="relu1", target_class=cls)
        assert float(got.raw.sum()) == pytest.approx(float(y[cls]), rel=1e-9)


def test_eigencam_is_the_first_principal_component_with_the_stated_sign():
    net = seeded(MlpHeadNet())
    A, _ = capture(net, X8, net.relu, 0)
    flat = A[0].reshape(A.shape[1], -1).T.numpy()  # uv × K
    centred = flat - flat.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projection = centred @ vt[0]
    mean_map = flat.mean(axis=1)
    if np.sum(projection * (mean_map - mean_map.mean())) < 0:
        projection = -projection
    got = explain(net, X8, "eigencam", target_layer="relu")
    assert got.raw == pytest.approx(projection.reshape(8, 8), abs=1e-8)
    # class-agnostic: the same map whatever the class
    assert explain(net, X8, "eigencam", target_layer="relu", target_class=3).raw == pytest.approx(got.raw)


def _plain_probs(net, inputs, cls):
    with torch.no_grad():
        return torch.stack([net(i[None]).softmax(dim=1)[0, cls] for i in inputs])


def test_scorecam_equals_a_plain_loop_over_channels():
    net = seeded(GapNet())
    cls = 2
    A, _ = capture(net, X, net.relu2, cls)
    a = A[0]
    weights = []
    for k in range(a.shape[0]):
        up = F.interpolate(a[k][None, None], size=X.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        if float(up.max() - up.min()) == 0:
            weights.append(0.0)
            continue
        mask = (up - up.min()) / (up.max() - up.min())
        with torch.no_grad():
            weights.append(float(net(X * mask).softmax(dim=1)[0, cls]))
    expected = _loop_map(weights, a)
    got = explain(net, X, "scorecam", target_layer="relu2", target_class=cls, chunk=3)
    assert got.raw == pytest.approx(expected.numpy(), abs=1e-10)
    capped = explain(net, X, "scorecam", target_layer="relu2", target_class=cls, max_channels=3)
    assert any("approximation" in note for note in capped.notes)


def test_scorecam_channels_with_the_same_normalised_map_share_one_forward():
    """Channels 4–7 are copies of 0–3 scaled by 2, with twice the bias (a power of two: exact in floats), so
    after ReLU A_{k+4} = 2·A_k and their masks are the same; the map still equals the per-channel plain loop."""
    net = seeded(GapNet())
    with torch.no_grad():
        net.conv2.weight[4:] = 2 * net.conv2.weight[:4]
        net.conv2.bias[4:] = 2 * net.conv2.bias[:4]
    cls = 1
    A, _ = capture(net, X, net.relu2, cls)
    a = A[0]
    weights, varying = [], 0
    for k in range(a.shape[0]):
        up = F.interpolate(a[k][None, None], size=X.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        if float(up.max() - up.min()) == 0:
            weights.append(0.0)
            continue
        varying += 1
        with torch.no_grad():
            weights.append(float(net((X * (up - up.min()) / (up.max() - up.min()))).softmax(dim=1)[0, cls]))
    rows = []
    handle = net.register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[0]))
    try:
        got = explain(net, X, "scorecam", target_layer="relu2", target_class=cls, chunk=2)
    finally:
        handle.remove()
    assert got.raw == pytest.approx(_loop_map(weights, a).numpy(), abs=1e-10)
    assert varying > 2 and sum(rows) - 1 == varying // 2  # one clean forward, then one per distinct mask
    assert got.extras["masked_forwards"] == varying // 2


class ResidualTail(nn.Module):
    """A layer whose output is later added to a tensor computed before it (batch 1 + batch K broadcasts)."""

    def __init__(self, concat: bool = False):
        super().__init__()
        self.concat = concat
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.block = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(8 if concat else 4, 3)

    def forward(self, x):
        s = self.stem(x)
        b = self.act(self.block(s))
        h = torch.cat([s, b], dim=1) if self.concat else s + b
        return self.fc(h.mean(dim=(2, 3)))


def _ablation_loop(net, module, cls):
    """Ablation-CAM's weights by zeroing one channel at a time with a forward hook, one full forward each."""
    with torch.no_grad():
        clean = float(net(X)[0, cls])
        A, _ = capture(net, X, module, cls)
        weights = []
        for k in range(A.shape[1]):
            def zero(_m, _i, out, k=k):
                out = out.clone()
                out[:, k] = 0
                return out
            handle = module.register_forward_hook(zero)
            try:
                ablated = float(net(X)[0, cls])
            finally:
                handle.remove()
            weights.append((clean - ablated) / clean)
    return _loop_map(weights, A[0])


@pytest.mark.parametrize("net", [GapNet(), ResidualTail(), ResidualTail(concat=True)],
                         ids=["gap", "residual", "concat"])
def test_ablationcam_equals_zeroing_each_channel_in_a_plain_loop(net):
    net = seeded(net)
    layer = "relu2" if isinstance(net, GapNet) else "act"
    expected = _ablation_loop(net, getattr(net, layer), 1)
    got = explain(net, X, "ablationcam", target_layer=layer, target_class=1, chunk=3)
    assert got.raw == pytest.approx(expected.numpy(), abs=1e-9)


def test_ablationcam_does_not_run_channels_that_are_zero_everywhere():
    """Channels 0 and 3 are dead after ReLU (a bias of −1000), maybe others too: zeroing them changes nothing,
    so they are not run — the map still equals the plain loop, which runs them."""
    net = seeded(GapNet())
    with torch.no_grad():
        net.conv2.bias[[0, 3]] = -1e3
    expected = _ablation_loop(net, net.relu2, 1)
    A, _ = capture(net, X, net.relu2, 1)
    live = sum(bool((A[0, k] != 0).any()) for k in range(A.shape[1]))
    assert live <= 6
    rows = []
    handle = net.pool.register_forward_hook(lambda _m, args, _out: rows.append(args[0].shape[0]))
    try:
        got = explain(net, X, "ablationcam", target_layer="relu2", target_class=1, chunk=4)
    finally:
        handle.remove()
    assert got.raw == pytest.approx(expected.numpy(), abs=1e-9)
    assert sum(rows) == 1 + live  # the clean forward, then each live channel once, after the layer
    assert got.extras["channel_weights"][[0, 3]].tolist() == [0.0, 0.0]


class InPlaceAfter(nn.Module):
    """The target layer's output is rewritten in place after it ran: ``out += skip`` then ReLU(inplace=True),
    as after torchvision ResNet's ``bn2`` and DenseNet's last norm (``F.relu(features, inplace=True)``)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.bn = nn.BatchNorm2d(5)
        self.skip = nn.Conv2d(3, 5, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        out = self.bn(self.conv(x))
        out += self.skip(x)
        return self.fc(self.relu(out).mean(dim=(2, 3)))


@pytest.mark.parametrize("method", ["eigencam", "scorecam", "ablationcam", "gradcam"])
def test_gradient_free_cams_use_the_layer_output_not_what_later_in_place_ops_made_of_it(method):
    """Regression: the gradient-free CAMs kept a view of the output, so ResNet's ``layer4.1.bn2`` or DenseNet's
    ``features.norm5`` were mapped as ReLU(bn2 + identity) (EigenCAM off by 33 on ResNet-18's scale)."""
    from cam_core.methods.layer_cam import eigencam

    net = seeded(InPlaceAfter())
    box = {}

    def keep(_m, _i, out):  # returns None: the output is not replaced
        box["A"] = out.detach().clone()

    handle = net.bn.register_forward_hook(keep)
    try:
        with torch.no_grad():
            net(X)
    finally:
        handle.remove()
    a = box["A"][0]
    assert float(a.min()) < 0  # what ReLU(inplace) would have clipped
    got = explain(net, X, method, target_layer="bn", target_class=1)
    if method == "eigencam":
        expected = eigencam(a[None])[0]
    elif method == "gradcam":
        def live(_m, _i, out):  # a leaf for ∂y/∂A; the in-place ops act on the product handed on
            box["live"] = out.detach().clone().requires_grad_(True)
            return box["live"] * 1.0

        h = net.bn.register_forward_hook(live)
        try:
            (g,) = torch.autograd.grad(net(X)[0, 1], box["live"])
        finally:
            h.remove()
        expected = _loop_map(g[0].mean(dim=(1, 2)), a)
    else:
        expected = _loop_map(got.extras["channel_weights"], a)
    assert got.raw == pytest.approx(expected.numpy(), abs=1e-9)
    if method == "scorecam":
        assert got.raw == pytest.approx(explain(net, X, method, target_layer="bn", target_class=1, chunk=2).raw)


class Smooth(nn.Module):
    """A smooth model (softplus, tanh): IG's Riemann sum converges fast."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.tanh(F.softplus(self.conv(x))).mean(dim=(2, 3)))


def test_integrated_gradients_completeness_and_a_plain_trapezoid_loop():
    net = seeded(Smooth())
    cls = 0
    got = explain(net, X8, "integrated_gradients", target_class=cls, steps=256, rule="trapezoid")
    with torch.no_grad():
        difference = float(net(X8)[0, cls] - net(torch.zeros_like(X8))[0, cls])
    assert float(got.gradient.sum()) == pytest.approx(difference, rel=0.01)
    assert got.extras["completeness_gap"] == pytest.approx(float(got.gradient.sum()) - difference, abs=1e-9)
    # a plain loop: trapezoid on 5 points of the straight path from the zero baseline
    steps = 5
    total = torch.zeros_like(X8)
    for i in range(steps):
        alpha = i / (steps - 1)
        point = (alpha * X8).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(point)[0, cls], point)
        total += grad * (0.5 if i in (0, steps - 1) else 1.0) / (steps - 1)
    few = explain(net, X8, "integrated_gradients", target_class=cls, steps=steps, chunk=2, rule="trapezoid")
    assert few.gradient == pytest.approx((X8 * total)[0].numpy(), abs=1e-10)


def test_integrated_gradients_agrees_with_captum_riemann_trapezoid():
    """Same α points as captum's riemann_trapezoid; captum's step weights are 1/n where the trapezoid rule's are
    1/(n − 1) (its weights sum to (n − 1)/n, ours to 1 — completeness is checked above), so the two differ by
    exactly that factor."""
    from captum.attr import IntegratedGradients

    net = seeded(Smooth())
    baseline = torch.full_like(X8, 0.3)
    theirs = IntegratedGradients(net).attribute(X8, baselines=baseline, target=2, n_steps=32,
                                                method="riemann_trapezoid")
    ours = explain(net, X8, "integrated_gradients", target_class=2, steps=32, fill=0.3, rule="trapezoid")
    assert ours.gradient * 31 / 32 == pytest.approx(theirs[0].detach().numpy(), abs=1e-10)


def test_integrated_gradients_gauss_legendre_equals_captum_default():
    """captum's default rule is Gauss–Legendre on [0, 1]; at equal steps the attributions are the same."""
    from captum.attr import IntegratedGradients

    net = seeded(Smooth())
    theirs = IntegratedGradients(net).attribute(X8, baselines=0.0, target=1, n_steps=12)
    ours = explain(net, X8, "integrated_gradients", target_class=1, steps=12, rule="gauss_legendre")
    assert ours.gradient == pytest.approx(theirs[0].detach().numpy(), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_gauss_legendre_is_exact_for_polynomials_up_to_degree_2n_minus_1(steps):
    alphas, weights = gauss_legendre(steps)
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-14)
    for degree in range(2 * steps):  # ∫₀¹ α^k dα = 1 / (k + 1)
        assert float((weights * alphas ** degree).sum()) == pytest.approx(1 / (degree + 1), rel=1e-12)
    assert float((weights * alphas ** (2 * steps)).sum()) != pytest.approx(1 / (2 * steps + 1), rel=1e-12)


class Exponential(nn.Module):
    """y_0 = exp(s), s = Σ w ⊙ x: from the zero baseline IG_i = w_i x_i (e^s − 1) / s exactly."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w, requires_grad=False)

    def forward(self, x):
        s = (x * self.w).sum(dim=(1, 2, 3))
        return torch.stack([torch.exp(s), -s], dim=1)


@pytest.mark.parametrize("rule, steps, rel", [("gauss_legendre", 8, 1e-9), ("adaptive", 64, 2e-3),
                                              ("trapezoid", 64, 2e-3)])
def test_integrated_gradients_equals_the_closed_form_path_integral(rule, steps, rel):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    w = torch.randn(1, 3, 4, 4, dtype=torch.float64) * 0.1
    s = float((w * x).sum())
    expected = (w * x * (math.exp(s) - 1) / s)[0]
    got = explain(Exponential(w), x, "integrated_gradients", target_class=0, steps=steps, rule=rule, fill=0.0)
    assert got.gradient == pytest.approx(expected.numpy(), rel=rel, abs=1e-12)
    assert got.extras["completeness_gap"] == pytest.approx(0.0, abs=rel * abs(math.exp(s) - 1))


class Switch(nn.Module):
    """A score that rises steeply near the start of the path, as Lite0's do on photos: 4·tanh(100·(s − 0.03))."""

    def forward(self, x):
        s = x.mean(dim=(1, 2, 3))
        return torch.stack([4 * torch.tanh(100 * (s - 0.03)), -s], dim=1)


def test_adaptive_rule_closes_the_gap_where_equal_steps_do_not():
    """Completeness against the closed-form score difference; the adaptive grid equals a plain trapezoid loop
    on the same points."""
    net = Switch()
    x = torch.full((1, 3, 4, 4), 0.5, dtype=torch.float64)
    difference = float(net(x)[0, 0] - net(torch.zeros_like(x))[0, 0])
    uniform = explain(net, x, "integrated_gradients", target_class=0, steps=32, rule="trapezoid")
    adaptive = explain(net, x, "integrated_gradients", target_class=0, steps=32, rule="adaptive", chunk=3)
    assert abs(uniform.extras["completeness_gap"]) > 0.02 * difference  # measured: 3.3 %
    assert abs(adaptive.extras["completeness_gap"]) < 0.005 * difference  # measured: 0.08 %
    assert float(adaptive.gradient.sum()) - difference == pytest.approx(adaptive.extras["completeness_gap"], abs=1e-9)
    alphas = adaptive.extras["alphas"]
    assert len(alphas) == 32 and alphas == sorted(alphas) and alphas[0] == 0 and alphas[-1] == 1
    total = torch.zeros_like(x)
    for i, alpha in enumerate(alphas):
        point = (alpha * x).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(point)[0, 0], point)
        left = alpha - alphas[i - 1] if i > 0 else 0.0
        right = alphas[i + 1] - alpha if i + 1 < len(alphas) else 0.0
        total += grad * (left + right) / 2
    assert adaptive.gradient == pytest.approx((x * total)[0].numpy(), rel=1e-10, abs=1e-12)
    assert adaptive.notes == []  # within 1 %: nothing to say
    assert uniform.notes == [completeness_note(uniform.extras["completeness_gap"], difference)]


def test_completeness_note_says_the_share_in_plain_words():
    assert completeness_note(-0.2, 8.0).startswith("The attributions add up to 98% of the class score's change")
    assert "More steps" not in completeness_note(-0.2, 8.0) and "More steps" in completeness_note(1.0, 8.0)


def test_rise_equals_a_plain_loop_over_the_same_seeded_masks():
    """The contrast map Σ (p_i − p̄) m_i / (N·p), computed here in two passes (p̄ first)."""
    net = seeded(GapNet())
    cls, n, p = 3, 24, 0.5
    masks = [rise_mask(i, (16, 16), 4, p, 7).double() for i in range(n)]
    with torch.no_grad():
        probs = [float(net(X * m).softmax(dim=1)[0, cls]) for m in masks]
    mean = sum(probs) / n
    expected = sum((prob - mean) * m for prob, m in zip(probs, masks)) / (n * p)
    got = explain(net, X, "rise", target_class=cls, masks=n, cells=4, p=p, seed=7, chunk=5)
    assert got.raw == pytest.approx(expected.numpy(), rel=1e-5, abs=1e-9)
    assert got.extras["mean_score"] == pytest.approx(mean, rel=1e-6)
    other_chunk = explain(net, X, "rise", target_class=cls, masks=n, cells=4, p=p, seed=7, chunk=7)
    assert other_chunk.raw == pytest.approx(got.raw, abs=1e-12)


class CornerNet(nn.Module):
    """Class 0's logit is 8 × the mean of the top-left 8×8 corner: only those pixels matter."""

    def forward(self, x):
        corner = x[..., :8, :8].mean(dim=(1, 2, 3))
        return torch.stack([8 * corner, torch.zeros_like(corner)], dim=1)


def test_rise_contrast_is_dark_where_the_model_does_not_look():
    """The paper's Σ p_i m_i is about p̄ everywhere (a wash); the contrast is positive on the corner that
    drives the score and about zero elsewhere."""
    x = torch.ones(1, 3, 16, 16)
    got = explain(CornerNet(), x, "rise", target_class=0, masks=200, cells=4, p=0.5, seed=1)
    positive = torch.as_tensor(got.raw).clamp(min=0)
    inside, outside = float(positive[:8, :8].mean()), float(positive[8:, 8:].mean())
    assert inside > 5 * outside
    assert float(torch.as_tensor(got.heatmap)[12:, 12:].mean()) < 0.1  # the far corner is dark on screen


def test_layercam_fusion_equals_tanh_max_of_normalised_layer_maps():
    net = seeded(GapNet())
    cls = 0
    maps = []
    for module in (net.relu1, net.relu2):
        A, G = capture(net, X, module, cls)
        m = (G[0].clamp(min=0) * A[0]).sum(0).clamp(min=0)
        m = F.interpolate((m / m.max())[None, None], size=(16, 16), mode="bilinear", align_corners=False)[0, 0]
        maps.append(torch.tanh(2.0 * m))
    expected = torch.maximum(maps[0], maps[1])
    got = explain(net, X, "layercam", target_layer="relu2", target_class=cls, fuse_layers="relu1")
    assert got.raw == pytest.approx(expected.numpy(), abs=1e-6)


def test_smoothgradcampp_is_the_mean_gradcampp_map_over_seeded_noisy_copies():
    net = seeded(MlpHeadNet())
    cls, n, noise = 1, 4, 0.2
    sigma = noise * float(X8.max() - X8.min())
    total = torch.zeros(8, 8, dtype=torch.float64)
    for i in range(n):
        noisy = X8 + sample_noise(X8.shape, sigma, 5, i).double()
        total += torch.from_numpy(explain(net, noisy, "gradcam++", target_layer="relu", target_class=cls).raw)
    got = explain(net, X8, "smoothgradcam++", target_layer="relu", target_class=cls, samples=n, noise=noise,
                  seed=5, chunk=3)
    assert got.raw == pytest.approx((total / n).numpy(), abs=1e-10)


def test_path_composes_with_a_layer_cam_as_the_weighted_sum_of_its_maps_along_the_path():
    """Path(Grad-CAM): Σ_i w_i · Grad-CAM(α_i x) on Gauss–Legendre nodes, against a plain loop of explain calls;
    a layer map is not multiplied by x − x' and the adaptive rule (which needs an input gradient) refuses it."""
    from cam_core.methods.base import Target
    from cam_core.methods.layer_cam import GRADCAM
    from cam_core.methods.wrappers import Path

    net = seeded(GapNet())
    target = Target(net, X, 1, "relu2", net.relu2)
    got = Path(GRADCAM).run(target, steps=3, rule="gauss_legendre", baseline="fill", fill=0.0, chunk=2)
    alphas, weights = gauss_legendre(3)
    expected = sum(float(w) * explain(net, float(a) * X, "gradcam", target_layer="relu2", target_class=1).raw
                   for a, w in zip(alphas, weights))
    assert got.raw.numpy() == pytest.approx(expected, abs=1e-12)
    assert got.class_idx == 1 and "completeness_gap" not in got.extras
    with pytest.raises(CamError, match="input gradient"):
        Path(GRADCAM).run(target, steps=4, rule="adaptive", baseline="fill", fill=0.0, chunk=None)
