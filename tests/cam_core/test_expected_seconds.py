"""Every long method's up-front time estimate (``MethodSpec.expected_seconds``): present, scaled by the work."""
import pytest
import torch

from cam_core.explain import explain
from cam_core.methods.occlusion import window_count
from cam_core.registry import METHODS, get_method

from .nets import GapNet, seeded

X = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def test_only_long_methods_have_estimates():
    assert all(spec.long_running for spec in METHODS.values() if spec.estimate is not None)
    assert get_method("gradcam").expected_seconds(None, X, {}) is None


def test_occlusion_estimate_scales_with_the_number_of_windows():
    net = seeded(GapNet())
    spec = get_method("occlusion")
    explain(net, X, "occlusion", patch=4, stride=2, engine="full")  # measured: seconds per window
    coarse = spec.expected_seconds(net, X, {"patch": 4, "stride": 4, "engine": "full"})
    fine = spec.expected_seconds(net, X, {"patch": 4, "stride": 2, "engine": "full"})
    assert coarse is not None and coarse > 0
    ratio = window_count(X, 4, 2) / window_count(X, 4, 4)
    assert fine == pytest.approx(coarse * ratio)


def test_rise_estimate_is_unknown_until_timed_then_proportional_to_the_masks():
    net = seeded(GapNet(classes=3))
    x = X[:, :, :15, :15].clone()  # a size no other test timed
    spec = get_method("rise")
    assert spec.expected_seconds(net, x, {"masks": 64}) is None
    explain(net, x, "rise", masks=64, cells=4)
    few, many = spec.expected_seconds(net, x, {"masks": 64}), spec.expected_seconds(net, x, {"masks": 640})
    assert few is not None and few > 0 and many == pytest.approx(10 * few)


@pytest.mark.parametrize("method,count,kw", [("smoothgrad", "samples", {}),
                                             ("integrated_gradients", "steps", {})])
def test_gradient_methods_estimate_from_their_own_timing(method, count, kw):
    net = seeded(GapNet(classes=2))
    x = X[:, :, :14, :14].clone() if method == "smoothgrad" else X[:, :, :12, :12].clone()
    spec = get_method(method)
    assert spec.expected_seconds(net, x, {count: 8}) is None
    explain(net, x, method, **{count: 8}, **kw)
    eight = spec.expected_seconds(net, x, {count: 8})
    assert eight is not None and eight > 0
    assert spec.expected_seconds(net, x, {count: 80}) == pytest.approx(10 * eight)


def test_scorecam_estimate_is_distinct_masks_times_the_measured_forward():
    """One forward per distinct mask: the batched forward's measured time × the layer's channels (or the cap),
    less the channels that are scaled copies of others (the same mask: one forward for both)."""
    from cam_core.batching import estimate_seconds

    net = seeded(GapNet())
    x = X[:, :, :13, :13].clone()  # a size no other test timed
    spec = get_method("scorecam")
    assert spec.expected_seconds(net, x, {}, None) is None  # no layer: nothing to count
    explain(net, x, "rise", masks=32, cells=4)  # times the batched forward at this size
    per = estimate_seconds(net, x, 1)
    assert spec.expected_seconds(net, x, {}, "relu2") == pytest.approx(8 * per)  # relu2 has 8 channels
    assert spec.expected_seconds(net, x, {"max_channels": 3}, "relu2") == pytest.approx(3 * per)
    with torch.no_grad():  # channels 4–7 become 2 × channels 0–3 (exact in floats): four distinct masks
        net.conv2.weight[4:] = 2 * net.conv2.weight[:4]
        net.conv2.bias[4:] = 2 * net.conv2.bias[:4]
    assert spec.expected_seconds(net, x, {}, "relu2") == pytest.approx(4 * per)


def test_ablationcam_estimate_comes_from_its_own_timing_per_channel():
    net = seeded(GapNet())
    x = X[:, :, :11, :11].clone()
    spec = get_method("ablationcam")
    assert spec.expected_seconds(net, x, {}, "relu2") is None
    explain(net, x, "ablationcam", target_layer="relu2")
    seconds = spec.expected_seconds(net, x, {}, "relu2")
    assert seconds is not None and seconds > 0
