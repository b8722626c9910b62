"""Grad-CAM family and CAM against formulas evaluated here on independently captured A and G."""
import pytest
import torch
import torch.nn.functional as F

from cam_core import CamError, explain

from .nets import GapNet, MlpHeadNet, capture, seeded

X = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_gradcam_is_relu_of_cam_over_z_on_a_gap_fc_net():
    """On GAP→FC, ∂y^c/∂A_kij = W[c,k]/Z exactly, so Grad-CAM = ReLU(CAM)/Z — an identity."""
    net = seeded(GapNet())
    for cls in range(5):
        cam = explain(net, X, "cam", target_layer="relu2", target_class=cls)
        grad_cam = explain(net, X, "gradcam", target_layer="relu2", target_class=cls)
        A, _ = capture(net, X, net.relu2, cls)
        by_hand = torch.einsum("k,kuv->uv", net.fc.weight[cls].detach(), A[0]).numpy()
        z = A.shape[2] * A.shape[3]
        assert cam.raw == pytest.approx(by_hand, abs=1e-10)
        assert grad_cam.raw == pytest.approx(by_hand / z, abs=1e-10)
        assert grad_cam.heatmap == pytest.approx(cam.heatmap, abs=1e-6)


def test_gradcam_equals_formula_on_captured_activations():
    net = seeded(MlpHeadNet())
    for cls in range(4):
        A, G = capture(net, X[..., :8, :8], net.relu, cls)
        alpha = G.mean(dim=(2, 3))
        expected = (alpha[0, :, None, None] * A[0]).sum(0)
        result = explain(net, X[..., :8, :8], "gradcam", target_layer="relu", target_class=cls)
        assert result.raw == pytest.approx(expected.numpy(), abs=1e-10)
        positive = expected.clamp(min=0)
        if positive.max() > 0:
            assert result.heatmap == pytest.approx((positive / positive.max()).numpy(), abs=1e-6)
        else:
            assert not result.heatmap.any() and result.notes


def test_gradcampp_equals_paper_eq19_evaluated_by_loop():
    net = seeded(MlpHeadNet(), seed=3)
    x = X[..., :8, :8]
    for cls in range(4):
        A, G = capture(net, x, net.relu, cls)
        K, U, V = A.shape[1:]
        weights = torch.zeros(K, dtype=torch.float64)
        for k in range(K):
            total_a = A[0, k].sum()
            for i in range(U):
                for j in range(V):
                    g = G[0, k, i, j]
                    den = 2 * g**2 + total_a * g**3
                    a = g**2 / den if den != 0 else 0.0
                    weights[k] += a * max(float(g), 0.0)
        expected = (weights[:, None, None] * A[0]).sum(0)
        result = explain(net, x, "gradcam++", target_layer="relu", target_class=cls)
        assert result.raw == pytest.approx(expected.numpy(), rel=1e-8, abs=1e-10)


def test_cam_refuses_a_head_that_is_not_gap_linear():
    net = seeded(MlpHeadNet())
    with pytest.raises(CamError, match="Grad-CAM"):
        explain(net, X[..., :8, :8], "cam", target_layer="relu")


def test_cam_refuses_a_layer_that_does_not_feed_the_pool():
    net = seeded(GapNet())
    with pytest.raises(CamError, match="Grad-CAM"):
        explain(net, X, "cam", target_layer="conv1")


def test_heatmap_is_bilinear_upsampling_of_the_positive_map():
    net = seeded(GapNet())
    result = explain(net, X, "gradcam", target_layer="relu2", target_class=1)
    positive = torch.from_numpy(result.raw).clamp(min=0)[None, None]
    up = F.interpolate(positive, size=(16, 16), mode="bilinear", align_corners=False)[0, 0]
    assert result.heatmap.shape == (16, 16) and result.heatmap.dtype.name == "float32"
    assert result.heatmap == pytest.approx((up / up.max()).numpy(), abs=1e-6)


def test_top_class_is_used_when_none_given_and_reported_with_score_and_prob():
    net = seeded(GapNet())
    with torch.no_grad():
        logits = net(X)[0]
    result = explain(net, X, "gradcam", target_layer="relu2")
    assert result.class_idx == int(logits.argmax())
    assert result.score == pytest.approx(float(logits.max()))
    assert result.prob == pytest.approx(float(logits.softmax(0).max()))
    assert result.layer == "relu2"


def test_auto_layer_is_the_last_spatial_layer_and_is_reported():
    net = seeded(GapNet())
    assert explain(net, X, "gradcam").layer == "relu2"


def test_batch_gives_one_result_per_image_with_its_own_class():
    net = seeded(GapNet())
    batch = torch.cat([X, X.flip(-1)])
    results = explain(net, batch, "gradcam", target_layer="relu2", target_class=[0, 3])
    assert [r.class_idx for r in results] == [0, 3]
    single = explain(net, batch[1:], "gradcam", target_layer="relu2", target_class=3)
    assert results[1].raw == pytest.approx(single.raw)


@pytest.mark.parametrize("bad", [{"target_class": 99}, {"target_layer": "nope"}, {"method": "magic"}])
def test_bad_requests_raise_one_clear_error(bad):
    net = seeded(GapNet())
    args = {"method": "gradcam", **bad}
    with pytest.raises(CamError):
        explain(net, X, args.pop("method"), **args)


def test_class_with_no_positive_evidence_gives_zeros_and_a_note_never_nan():
    net = seeded(GapNet())
    with torch.no_grad():
        net.fc.weight[2].fill_(-1.0)  # every channel (≥ 0 after ReLU) votes against class 2
    result = explain(net, X, "gradcam", target_layer="relu2", target_class=2)
    assert not result.heatmap.any() and result.is_blank
    assert any("no positive evidence" in note for note in result.notes)


def test_a_network_with_tiny_logits_gets_the_same_map_not_a_blank_one():
    """Grad-CAM is linear in the last layer's scale: fc weights × 1e-16 (logits near 1e-16, as a randomly
    initialised network can have) must give the same normalized map, not "no positive evidence"."""
    net = seeded(GapNet())
    reference = explain(net, X, "gradcam", target_layer="relu2", target_class=1)
    with torch.no_grad():
        net.fc.weight.mul_(1e-16)
        net.fc.bias.mul_(1e-16)
    tiny = explain(net, X, "gradcam", target_layer="relu2", target_class=1)
    assert not reference.is_blank and reference.heatmap.max() == 1.0
    assert not tiny.is_blank and not any("no positive evidence" in n for n in tiny.notes)
    assert tiny.heatmap == pytest.approx(reference.heatmap, abs=1e-5)


def test_a_one_by_one_layer_says_its_map_carries_no_position():
    net = seeded(GapNet())
    small = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(0), dtype=X.dtype)
    shape = {}
    handle = net.relu2.register_forward_hook(lambda m, i, o: shape.update(hw=tuple(o.shape[-2:])))
    net(small)
    handle.remove()
    result = explain(net, small, "gradcam", target_layer="relu2", target_class=0)
    notes = " ".join(result.notes)
    assert shape["hw"] == (1, 1)  # conv2 (stride 2) on a 2×2 input
    assert "is 1×1 at this input size" in notes
    big = explain(net, X, "gradcam", target_layer="relu2", target_class=0)
    assert not any("1×1" in n for n in big.notes)
