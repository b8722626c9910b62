"""The one batched forward: results equal a plain forward, and a one-image call never fixes the chunk size."""
import time

import pytest
import torch
from torch import nn

from cam_core import explain
from cam_core.batching import LEARN_FROM, TIMINGS, batched_forward, calibration, estimate_seconds, timing_key

from .nets import GapNet, seeded


def _net() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def test_a_one_image_call_gives_its_own_time_but_no_time_per_item_nor_a_chunk():
    net = _net()
    x = torch.randn(1, 3, 13, 13)
    TIMINGS.section("batches").pop(timing_key(net, x), None)
    calibration(net, x)
    batched_forward(net, x)  # a clean forward, as most methods make first
    assert TIMINGS.get("ratios", ("single", *timing_key(net, x))) is not None  # against the calibration
    assert timing_key(net, x) not in TIMINGS.section("batches") and estimate_seconds(net, x, 10) is None
    many = torch.randn(4 * LEARN_FROM, 3, 13, 13)
    got = batched_forward(net, many)  # the first real batch climbs the ladder: never chunks of 1
    with torch.no_grad():
        assert got == pytest.approx(net(many), abs=1e-5)
    timing = TIMINGS.section("batches")[timing_key(net, x)]
    assert timing.settled and timing.chunk >= 2


class _Formats(nn.Module):
    """_net() that notes whether each batch it is given is contiguous."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _net()
        self.contiguous: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.contiguous.append(x.is_contiguous())
        return self.inner(x)


def test_gradient_batches_stay_contiguous_whatever_layout_was_learned():
    """A max-pool after a ReLU meets exact ties on flat image regions; rounding that differs between layouts
    breaks them differently and the input gradient follows (1.5 % of the peak for Integrated Gradients on
    ResNet-18 at 120×500, against captum and a plain loop). A map must not depend on which layout a timing
    picked, so gradient batches are never channels_last unless a caller forces it."""
    from cam_core.batching import _Timing, batched_gradient

    net = _Formats().eval()
    items = torch.randn(2 * LEARN_FROM, 3, 13, 13)
    key = timing_key(net, items[:1], grad=True)
    try:
        TIMINGS.section("batches")[key] = _Timing(4, 1e-3, channels_last=True)  # as if channels_last had measured faster
        grads, _ = batched_gradient(net, items, lambda logits: logits[:, 1])
        assert net.contiguous and all(net.contiguous)
        TIMINGS.section("batches").pop(key)
        net.contiguous.clear()
        batched_gradient(net, items, lambda logits: logits[:, 1])  # a first call: the ladder, then settled
        assert net.contiguous and all(net.contiguous) and not TIMINGS.section("batches")[key].channels_last
        net.contiguous.clear()
        batched_gradient(net, items, lambda logits: logits[:, 1], chunk=8, channels_last=True)  # forced: obeyed
        assert not any(net.contiguous)
    finally:
        TIMINGS.section("batches").pop(key, None)
    leaf = items.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(net.inner(leaf)[:, 1].sum(), leaf)
    assert torch.equal(grads, expected)


def test_one_timing_store_holds_what_batches_ablation_cam_and_occlusion_measured():
    TIMINGS.clear()
    net = seeded(GapNet())
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    calibration(net, x)  # what the runs' times are kept against
    explain(net, x, "ablationcam", target_layer="relu2")
    explain(net, x, "occlusion", patch=4, stride=4)  # the incremental engine
    explain(net, x, "occlusion", patch=4, stride=4, engine="full")
    explain(net, x, "rise", masks=4, cells=2)  # its clean forward: one image's time
    sections = ("calibration", "ratios", "incremental", "batches")
    assert all(TIMINGS.section(what) for what in sections)
    TIMINGS.clear()
    assert not any(TIMINGS.section(what) for what in sections)


class _ColdFirstCall(nn.Module):
    """_net() that sleeps ``cold`` seconds the first time it meets a batch shape and layout, as a CPU's first call
    at a new shape picks kernels and allocates (measured 2–4× a warm call); later calls at that shape are quick."""

    def __init__(self, cold: float) -> None:
        super().__init__()
        self.inner, self.cold, self.seen = _net(), cold, set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], x.is_contiguous())
        if shape not in self.seen:
            self.seen.add(shape)
            time.sleep(self.cold)
        return self.inner(x)


def test_the_ladder_times_each_size_warm_so_the_time_per_item_is_not_a_first_calls():
    """Timing a rung on its first chunk gave 30 ms / 2 items = 15 ms per item where the steady cost is well
    under a millisecond; the estimate then over-stated every later run of the same work (up to 4.7×)."""
    net = _ColdFirstCall(0.03).eval()
    x = torch.randn(1, 3, 13, 13)
    key = timing_key(net, x)
    TIMINGS.section("batches").pop(key, None)
    try:
        batched_forward(net, torch.randn(24, 3, 13, 13))  # ladder 2, 2, 4, 4, 8 …: each size's second chunk timed
        assert estimate_seconds(net, x, 1) < 0.03 / 16  # below the coldest share any rung's first chunk had
    finally:
        TIMINGS.section("batches").pop(key, None)


def test_the_first_warm_chunk_replaces_a_cold_time_per_item_instead_of_averaging_with_it():
    from cam_core.batching import _Timing

    net = _net()
    x = torch.randn(1, 3, 13, 13)
    key = timing_key(net, x)
    try:
        TIMINGS.section("batches")[key] = _Timing(4, 1.0, False)  # as if the ladder had timed a first call
        batched_forward(net, torch.randn(8, 3, 13, 13))
        assert estimate_seconds(net, x, 1) < 0.1  # averaging would keep it above 0.5 s
        assert TIMINGS.section("batches")[key].warm
    finally:
        TIMINGS.section("batches").pop(key, None)
