"""Occlusion's all-classes grid, progressive refinement and the batched forward's layouts, against plain loops."""
import pytest
import torch
from torch import nn

from cam_core.batching import TIMINGS, Stack, batched_forward, estimate_seconds
from cam_core.methods.occlusion import estimate_occlusion_seconds, occlusion_map, occlusion_windows
from cam_core.progressive import progressive_maps, progressive_occlusion

from .nets import GapNet, seeded

X = torch.randn(1, 3, 13, 11, generator=torch.Generator().manual_seed(4), dtype=torch.float64)


def plain_map(net, x, cls, patch, stride, fill=0.0, rows=None, cols=None):
    """Zeiler & Fergus by hand: one forward per window, each pixel the mean drop of the windows covering it."""
    def starts(length):
        s = list(range(0, max(length - patch, 0) + 1, stride))
        if s[-1] + patch < length:
            s.append(length - patch)
        return s

    H, W = x.shape[-2:]
    rows = starts(H) if rows is None else rows
    cols = starts(W) if cols is None else cols
    with torch.no_grad():
        base = net(x).softmax(1)[0, cls]
        total, count = torch.zeros(H, W, dtype=x.dtype), torch.zeros(H, W, dtype=x.dtype)
        for r in rows:
            for c in cols:
                occluded = x.clone()
                occluded[0, :, r:r + patch, c:c + patch] = fill
                total[r:r + patch, c:c + patch] += base - net(occluded).softmax(1)[0, cls]
                count[r:r + patch, c:c + patch] += 1
    return total / count


class Counting(nn.Module):
    """Wraps a net and counts the images it is run on."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.net(x)


def test_every_class_map_comes_from_one_pass():
    net = Counting(seeded(GapNet(), seed=3))
    grid = occlusion_windows(net, X, patch=4, stride=3, engine="full")
    seen = net.seen
    for cls in range(5):
        assert occlusion_map(grid, cls) == pytest.approx(plain_map(net.net, X, cls, 4, 3), abs=1e-12)
    assert net.seen == seen == 1 + len(grid.rows) * len(grid.cols)  # the maps above ran no forward pass
    top = grid.top_class_grid().flatten().tolist()
    for i, (r, c) in enumerate(grid.positions):
        occluded = X.clone()
        occluded[0, :, r:r + 4, c:c + 4] = 0.0
        with torch.no_grad():
            assert top[i] == int(net.net(occluded).argmax())


@pytest.mark.parametrize("patch,stride", [(4, 2), (5, 2), (6, 6), (4, 1)])
def test_progressive_coarse_first_then_the_direct_map_without_running_a_window_twice(patch, stride):
    net = Counting(seeded(GapNet(), seed=5))
    cls = 1
    steps, maps, seen = [], [], []
    for step in progressive_occlusion(net, X, patch, stride, progress=lambda d, n: seen.append((d, n)),
                                      updates=3, engine="full"):
        steps.append((step.stage, step.done, step.total))
        maps.append(step.map(cls).clone())
    grid = step.grid
    total = len(grid.rows) * len(grid.cols)
    assert net.seen == 1 + total  # coarse windows are reused by the refinement
    assert steps[0][0] == "coarse" and steps[-1][1:] == (total, total)
    assert seen[-1] == (total, total) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # the coarse map is the plain map of the coarse windows (every patch//stride-th start and the last)
    k = max(1, patch // stride)
    pick = lambda s: sorted(set(s[::k]) | {s[-1]})  # noqa: E731
    coarse = plain_map(net.net, X, cls, patch, stride, rows=pick(grid.rows), cols=pick(grid.cols))
    assert maps[0] == pytest.approx(coarse, abs=1e-12)
    assert maps[-1] == pytest.approx(plain_map(net.net, X, cls, patch, stride), abs=1e-12)
    direct = occlusion_map(occlusion_windows(net.net, X, patch, stride, engine="full"), cls)
    assert maps[-1] == pytest.approx(direct, abs=1e-12)


def test_progressive_callback_form_and_estimate():
    net = seeded(GapNet(), seed=6)
    got = []
    grid = progressive_maps(net, X, 4, 2, class_idx=0, on_map=lambda m, s: got.append(s.stage))
    assert got[0] == "coarse" and grid.complete
    assert estimate_occlusion_seconds(net, X, 4, 2) is not None


@pytest.mark.parametrize("layout", [True, False])
def test_batched_forward_layouts_give_the_same_scores_and_leave_the_model_alone(layout):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    items = torch.randn(7, 3, 16, 16)
    with torch.no_grad():
        expected = net(items)
    got = batched_forward(net, Stack(items), chunk=3, channels_last=layout)
    assert got == pytest.approx(expected, abs=1e-5)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.is_contiguous() for p in net.parameters())


def test_first_call_learns_chunk_and_layout():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    items = torch.randn(40, 3, 12, 12)
    TIMINGS.clear()
    got = batched_forward(net, items)
    with torch.no_grad():
        assert got == pytest.approx(net(items), abs=1e-5)
    assert estimate_seconds(net, items[:1], 10) is not None


@pytest.mark.parametrize("engine", ["full", "incremental"])
def test_float32_maps_equal_the_float64_plain_loop_after_normalization(engine):
    net64 = seeded(GapNet(), seed=7)
    cls = 3
    expected = plain_map(net64, X, cls, 4, 3)
    net32 = seeded(GapNet(), seed=7).float()
    got = occlusion_map(occlusion_windows(net32, X.float(), 4, 3, engine=engine), cls).double()
    assert float((got - expected).abs().max() / expected.abs().max()) <= 1e-5


def test_preview_comes_first_covers_every_pixel_and_the_end_is_the_direct_map():
    net = Counting(seeded(GapNet(), seed=8))
    x = torch.randn(1, 3, 24, 22, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    steps = list((s.stage, s.done, s.map(0).clone()) for s in progressive_occlusion(net, x, 3, 1, preview=4,
                                                                                    engine="full"))
    assert [s[0] for s in steps[:2]] == ["preview", "coarse"]
    assert steps[0][1] <= 4 and torch.isfinite(steps[0][2]).all()
    assert net.seen == 1 + steps[-1][1]
    assert steps[-1][2] == pytest.approx(plain_map(net.net, x, 0, 3, 1), abs=1e-12)


def test_tracing_for_the_incremental_engine_leaves_the_models_attributes_alone():
    """torch.fx runs forward with proxies: a counter the forward updates must still be a plain int afterwards."""
    net = Counting(seeded(GapNet(), seed=3))
    auto = occlusion_windows(net, X, patch=4, stride=3)  # "auto" traces the model
    assert type(net.seen) is int
    full = occlusion_windows(net.net, X, patch=4, stride=3, engine="full")
    assert auto.probs == pytest.approx(full.probs, abs=1e-12)
