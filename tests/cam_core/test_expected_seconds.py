"""Every long method's up-front time estimate (``MethodSpec.expected_seconds``) is its clean forward plus its
count of batched items (forwards, forward+backwards, windows, chunks of channels) × this model's time per item
at this input (a ratio runs measured × the calibrated forward): the count is checked against the forwards a
run really makes (a forward hook counts the items), the calibration and ratios are set by hand in ``TIMINGS``
(no timing is asserted); with nothing measured the estimate times the model now and leaves it as it was."""
import math
import time

import pytest
import torch

from cam_core.batching import GRAD_FACTOR, TIMINGS, timing_key
from cam_core.explain import explain
from cam_core.methods import ablation_cam
from cam_core.methods.occlusion import window_count
from cam_core.registry import METHODS, get_method

from .nets import GapNet, seeded

X = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
SINGLE, FORWARD, GRAD, LAYER_GRAD = 0.0125, 0.001, 0.0037, 0.0021  # seconds, set by hand


class Items:
    """Counts the images ``model`` is called on (a forward hook on the whole model) and its calls."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.items = self.calls = 0
        self.handle = model.register_forward_hook(self._count)

    def _count(self, _module, inputs, _output) -> None:
        self.items += int(inputs[0].shape[0])
        self.calls += 1

    def __enter__(self) -> "Items":
        return self

    def __exit__(self, *_exc) -> None:
        self.handle.remove()


def _calibrated(net: torch.nn.Module, x: torch.Tensor) -> None:
    """A calibration of ``net`` at ``x``'s shape made just now: SINGLE for one image, FORWARD per item."""
    TIMINGS.put("calibration", timing_key(net, x), (time.monotonic(), SINGLE, FORWARD))


def _set_times(net: torch.nn.Module, x: torch.Tensor, layer: str | None = None) -> None:
    """Known times for ``net`` at ``x``'s shape, in place of whatever a run measured: the calibration and
    the ratios to it (one image: 1; a batched forward: 1; gradients: GRAD or LAYER_GRAD)."""
    _calibrated(net, x)
    TIMINGS.put("ratios", ("single", *timing_key(net, x)), 1.0)
    TIMINGS.put("ratios", ("batch", *timing_key(net, x)), 1.0)
    TIMINGS.put("ratios", ("batch", *timing_key(net, x, True)), GRAD / FORWARD)
    if layer is not None:
        TIMINGS.put("ratios", ("batch", *timing_key(net, x, True, f"layer:{layer}")), LAYER_GRAD / FORWARD)


def test_only_long_methods_have_estimates():
    assert all(spec.long_running for spec in METHODS.values() if spec.estimate is not None)
    assert get_method("gradcam").expected_seconds(None, X, {}) is None


@pytest.mark.parametrize("patch,stride", [(4, 2), (4, 4), (5, 3), (16, 4), (7, 16)])
def test_occlusion_window_count_is_the_windows_a_run_makes(patch, stride):
    net = seeded(GapNet())
    x = X[:, :, :16, :13].clone()
    with Items(net) as seen:
        explain(net, x, "occlusion", patch=patch, stride=stride, engine="full")
    assert window_count(x, patch, stride) == seen.items - 1  # less the clean forward


def test_occlusion_estimate_is_the_clean_forward_plus_windows_times_the_time_per_window():
    net = seeded(GapNet())
    x = X.clone()
    spec = get_method("occlusion")
    explain(net, x, "occlusion", patch=4, stride=2)  # the incremental engine: prepared for this x
    _set_times(net, x)
    windows = window_count(x, 4, 2)
    full = spec.expected_seconds(net, x, {"patch": 4, "stride": 2, "engine": "full"})
    assert full == pytest.approx(SINGLE + windows * FORWARD)
    shape = (type(net).__qualname__, tuple(x.shape), x.dtype, str(x.device))
    TIMINGS.put("ratios", ("window", *shape, 4), 0.0004 / FORWARD)
    TIMINGS.put("ratios", ("setup", *shape), 0.3 / FORWARD)
    assert spec.expected_seconds(net, x, {"patch": 4, "stride": 2}) == pytest.approx(SINGLE + windows * 0.0004)
    other = x.flip(-1).contiguous()  # another image of this size: the engine's set-up is still to pay
    assert spec.expected_seconds(net, other, {"patch": 4, "stride": 2}) == pytest.approx(
        SINGLE + 0.3 + windows * 0.0004)


@pytest.mark.parametrize("method,count,params,clean,per_item", [
    ("smoothgrad", "samples", {"samples": 7}, 1, GRAD),
    ("integrated_gradients", "steps", {"steps": 20}, 2, GRAD),  # the clean batch holds x and the baseline
    ("integrated_gradients", "steps", {"steps": 9, "rule": "gauss_legendre"}, 2, GRAD),
    ("rise", "masks", {"masks": 30, "cells": 4}, 1, FORWARD),
    ("smoothgradcam++", "samples", {"samples": 5}, 1, LAYER_GRAD),
])
def test_batched_method_estimate_is_the_clean_forward_plus_its_items(method, count, params, clean, per_item):
    net = seeded(GapNet(classes=3))
    x = X.clone()
    layer = "relu2" if METHODS[method].needs_layer else None
    with Items(net) as seen:
        explain(net, x, method, layer, **params)
    assert seen.items - clean == params[count]  # the count the estimate uses is the run's
    _set_times(net, x, layer)
    assert METHODS[method].expected_seconds(net, x, params, layer) == pytest.approx(
        SINGLE + params[count] * per_item)


def test_scorecam_estimate_is_the_clean_forward_plus_one_forward_per_distinct_mask():
    """Channels that are scaled copies of others make the same mask: one forward for both."""
    net = seeded(GapNet())
    x = X.clone()
    spec = get_method("scorecam")
    assert spec.expected_seconds(net, x, {}, None) is None  # no layer: nothing to count
    with torch.no_grad():  # channels 4–7 become 2 × channels 0–3 (exact in floats): four distinct masks
        net.conv2.weight[4:] = 2 * net.conv2.weight[:4]
        net.conv2.bias[4:] = 2 * net.conv2.bias[:4]
    for params in ({}, {"max_channels": 3}):
        with Items(net) as seen:
            explain(net, x, "scorecam", "relu2", **params)
        _set_times(net, x)
        masks = seen.items - 1  # less the clean forward
        assert masks == 4 if not params else masks <= 3  # a cap of 3 may pick a channel and its double
        assert spec.expected_seconds(net, x, params, "relu2") == pytest.approx(SINGLE + masks * FORWARD)


def test_ablationcam_estimate_is_the_clean_forward_plus_a_pass_per_chunk_of_live_channels():
    net = seeded(GapNet())
    x = X.clone()
    spec = get_method("ablationcam")
    with Items(net) as seen:
        explain(net, x, "ablationcam", "relu2", chunk=3)
    passes = seen.calls - 1  # less the clean forward
    with torch.no_grad():
        live = sum(bool((net.relu2(net.conv2(net.relu1(net.conv1(x))))[0, k] != 0).any()) for k in range(8))
    assert passes == math.ceil(live / 3)
    _set_times(net, x)
    TIMINGS.put("ratios", ("ablation", *ablation_cam._timing_key(net, x, "relu2"), 3), 0.02 / FORWARD)
    assert spec.expected_seconds(net, x, {"chunk": 3}, "relu2") == pytest.approx(SINGLE + passes * 0.02)


def test_a_gradient_never_timed_counts_as_grad_factor_forwards():
    net = seeded(GapNet(classes=2))
    x = X[:, :, :12, :12].clone()  # a size no other test timed
    _calibrated(net, x)
    for key in (timing_key(net, x), timing_key(net, x, True), timing_key(net, x, True, "layer:relu2")):
        TIMINGS.section("ratios").pop(("batch", *key), None)
    TIMINGS.section("ratios").pop(("single", *timing_key(net, x)), None)
    assert get_method("smoothgrad").expected_seconds(net, x, {"samples": 10}) == pytest.approx(
        SINGLE + 10 * FORWARD * GRAD_FACTOR["input"])
    assert get_method("smoothgradcam++").expected_seconds(net, x, {"samples": 10}, "relu2") == pytest.approx(
        SINGLE + 10 * FORWARD * GRAD_FACTOR["layer"])


@pytest.mark.parametrize("method,layer", [("rise", None), ("occlusion", None), ("scorecam", "relu2"),
                                          ("ablationcam", "relu2"), ("integrated_gradients", None)])
def test_with_nothing_measured_the_estimate_times_the_model_and_leaves_it_as_it_was(method, layer):
    TIMINGS.clear()
    net = seeded(GapNet()).train()
    x = X[:, :, :15, :15].clone()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    seconds = METHODS[method].expected_seconds(net, x, {}, layer)
    assert seconds is not None and seconds > 0
    assert TIMINGS.get("calibration", timing_key(net, x)) is not None
    assert net.training and all(m.training for m in net.modules())  # eval only while timing
    assert all(p.grad is None for p in net.parameters())
    assert not net._forward_hooks and not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert timing_key(net, x) not in TIMINGS.section("batches")  # a calibration never fixes the chunk size


def test_an_estimate_follows_the_machine_now():
    """The same method, same ratios: a calibration twice as slow (a busier machine) gives twice the estimate."""
    net = seeded(GapNet())
    x = X.clone()
    _set_times(net, x)
    before = get_method("rise").expected_seconds(net, x, {"masks": 50})
    TIMINGS.put("calibration", timing_key(net, x), (time.monotonic(), 2 * SINGLE, 2 * FORWARD))
    assert get_method("rise").expected_seconds(net, x, {"masks": 50}) == pytest.approx(2 * before)
