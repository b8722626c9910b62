"""Incremental occlusion equals a plain loop of full forwards — on ResNet-18, VGG-, MobileNet-style nets and
timm's tf_efficientnet_lite0 ("SAME" padding) — and falls back, still right, where it cannot apply."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cam_core import explain
from cam_core.errors import CamError
from cam_core.incremental import summary
from cam_core.methods.occlusion import occlusion_map, occlusion_windows


def randomize(model: nn.Module, seed: int = 0, dtype=torch.float64) -> nn.Module:
    """Random weights and BN statistics (so BN in eval is not the identity), in eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
            if m.bias is not None:
                m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.1
    return model.to(dtype).eval()


def plain_probs(model, x, patch, stride, fill=0.0):
    """One full forward per window (starts every stride plus one flush with each far edge), probabilities."""
    def starts(length):
        s = list(range(0, max(length - patch, 0) + 1, stride))
        if s[-1] + patch < length:
            s.append(length - patch)
        return s

    out = []
    fill = torch.as_tensor(fill, dtype=x.dtype).reshape(-1, 1, 1)
    with torch.no_grad():
        for r in starts(x.shape[-2]):
            for c in starts(x.shape[-1]):
                occluded = x.clone()
                occluded[0, :, r:r + patch, c:c + patch] = fill
                out.append(model(occluded).softmax(1)[0])
    return torch.stack(out)


def check(model, x, patch, stride, fill=0.0, chunk=None):
    grid = occlusion_windows(model, x, patch, stride, fill, chunk=chunk, engine="incremental")
    expected = plain_probs(model, x, patch, stride, fill)
    assert grid.probs.shape == expected.shape
    assert torch.allclose(grid.probs, expected, rtol=0, atol=1e-12)
    full = occlusion_windows(model, x, patch, stride, fill, engine="full")
    c = grid.top_class
    a, b = occlusion_map(grid, c), occlusion_map(full, c)
    assert float((a - b).abs().max()) <= 1e-10 * max(float(b.abs().max()), 1e-30)
    return grid


class VggStyle(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, padding=1),
            nn.Conv2d(12, 12, 5, padding=2, dilation=1), nn.ReLU(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.LazyLinear(6))

    def forward(self, x):
        return self.classifier(self.features(x))


class InvertedResidual(nn.Module):
    def __init__(self, c, expand, stride, act=nn.ReLU6):
        super().__init__()
        h = c * expand
        self.stride = stride
        self.body = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), act(inplace=True),
                                  nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), act(),
                                  nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.body(x)
        return x + y if self.stride == 1 else y


class MobileStyle(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish())
        self.blocks = nn.Sequential(InvertedResidual(8, 3, 1), InvertedResidual(8, 2, 2, nn.Hardswish),
                                    InvertedResidual(8, 2, 1, nn.ReLU))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.blocks(self.stem(x)))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class SqueezeExcite(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class SeNet(nn.Module):
    """Conv → SE (a global op inside the trunk) → conv → attention-like spatial softmax → pool."""

    def __init__(self):
        super().__init__()
        self.conv1, self.se, self.conv2 = nn.Conv2d(3, 6, 3, padding=1), SqueezeExcite(6), nn.Conv2d(6, 6, 3, 2, 1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = self.conv2(self.se(F.relu(self.conv1(x))))
        weights = x.flatten(2).softmax(-1).view_as(x)
        return self.fc((x * weights).sum((2, 3)))


X64 = torch.randn(1, 3, 64, 56, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.slow
def test_resnet18_equals_plain_forwards_including_borders_and_uneven_strides():
    model = randomize(torchvision.models.resnet18(num_classes=10), seed=1)
    counts = summary(model, X64, 12)
    assert counts["plan"] and counts["sparse"] > 30  # most of the trunk runs locally
    check(model, X64, patch=12, stride=9, chunk=7)  # 56-12 and 64-12 are not multiples of 9


def test_vgg_style_equals_plain_forwards():
    model = VggStyle()
    model(X64.float())  # materialise the lazy layer
    model = randomize(model, seed=2)
    check(model, X64, patch=10, stride=7, fill=(0.5, -1.0, 2.0))
    check(model, X64, patch=64, stride=5)  # one window covering the whole height


def test_mobilenet_style_equals_plain_forwards():
    model = randomize(MobileStyle(), seed=3)
    assert summary(model, X64, 8)["sparse"] > 10
    check(model, X64, patch=8, stride=5, chunk=4)


@pytest.mark.slow
def test_tf_efficientnet_lite0_same_padding_equals_plain_forwards():
    timm = pytest.importorskip("timm")
    model = randomize(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=7), seed=4)
    x = torch.randn(1, 3, 45, 38, generator=torch.Generator().manual_seed(5), dtype=torch.float64)  # odd sizes
    assert summary(model, x, 9)["sparse"] > 20
    check(model, x, patch=9, stride=8, chunk=16)


def test_squeeze_excite_and_attention_fall_back_to_whole_tensors_and_stay_right():
    model = randomize(SeNet(), seed=5)
    counts = summary(model, X64, 8)
    assert counts["sparse"] >= 1 and counts["dense"] > 0  # conv1 locally, everything after SE's pooling whole
    check(model, X64, patch=8, stride=6, chunk=5)


def test_hooks_or_untraceable_models_use_plain_forwards():
    model = randomize(MobileStyle(), seed=6)
    seen = []
    handle = model.stem[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    try:
        with pytest.raises(CamError):
            occlusion_windows(model, X64, 8, 8, engine="incremental")
        grid = occlusion_windows(model, X64, 8, 8)  # auto: plain forwards, the hook sees whole batches
        assert torch.allclose(grid.probs, plain_probs(model, X64, 8, 8), atol=1e-12)
    finally:
        handle.remove()

    class Branchy(nn.Module):  # data-dependent control flow: torch.fx cannot trace it
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 3)

        def forward(self, x):
            y = self.conv(x)
            if y.sum() > 0:
                y = -y
            return self.fc(y.mean((2, 3)))

    branchy = randomize(Branchy(), seed=7)
    grid = occlusion_windows(branchy, X64, 8, 8)
    assert torch.allclose(grid.probs, plain_probs(branchy, X64, 8, 8), atol=1e-12)


def test_explain_occlusion_runs_incrementally_and_leaves_the_model_alone():
    model = randomize(MobileStyle(), seed=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = explain(model, X64, "occlusion", target_class=2, patch=8, stride=4)
    slow = occlusion_map(occlusion_windows(model, X64, 8, 4, engine="full"), 2)
    assert fast.raw == pytest.approx(slow.numpy(), abs=1e-12)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.slow
def test_float32_resnet18_is_as_close_to_float64_as_plain_forwards_are():
    model = randomize(torchvision.models.resnet18(num_classes=10), seed=9, dtype=torch.float32)
    x = X64.float()
    truth = occlusion_windows(model.double(), x.double(), 16, 12, engine="full")
    model.float()
    c = truth.top_class
    ref = occlusion_map(truth, c)
    err = {}
    for engine in ("incremental", "full"):
        got = occlusion_map(occlusion_windows(model, x, 16, 12, engine=engine), c).double()
        err[engine] = float((got - ref).abs().max() / ref.abs().max())
    assert err["incremental"] <= max(1e-5, 2 * err["full"])
