"""The walkthrough against the model itself: every written-out sum, norm, activation and pooling equals the value
the model's own module produced (read by plain forward hooks set here), receptive fields by composition equal a
gradient probe on hand-built nets, the softmax equals torch.softmax(logits / T), and the model is left as it was."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from cam_core.errors import CamError
from cam_core.features import first_layer_filters
from cam_core.walkthrough import (TRANSFORMER_NOTE, activation_step, classifier, conv_step, linear_step, norm_step,
                                  pooling_step, softmax, token_attention, walk)
from models import registry

from .test_transformers import hand_vit


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


class Captured:
    """Plain forward (and pre-) hooks of the test's own: every call's input and output, cloned at once."""

    def __init__(self, model):
        self.inputs, self.outputs, self.handles = {}, {}, []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(
                lambda m, a, name=name: self.inputs.setdefault(name, []).append(a[0].detach().clone())))
            self.handles.append(module.register_forward_hook(
                lambda m, a, out, name=name: self.outputs.setdefault(name, []).append(out.detach().clone())
                if isinstance(out, torch.Tensor) else None))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def _captured(model, x):
    with Captured(model) as cap, torch.no_grad():
        model(x)
    return cap


def _base(name):
    return name.split("#")[0]


def _call(name):
    return int(name.split("#")[1]) - 1 if "#" in name else 0


class Hand(nn.Module):
    """Every kind of convolution and pooling the walkthrough writes out: strided, grouped + dilated + reflect-padded,
    depthwise with padding="same", BN before an in-place ReLU, max / ceil-mode average / adaptive pooling, a head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, padding_mode="reflect")
        self.dw = nn.Conv2d(6, 6, 3, padding="same", groups=6, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.act = nn.SiLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.avgpool = nn.AvgPool2d(2, ceil_mode=True, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.dw(self.conv2(x))))
        x = self.relu(self.avgpool(self.maxpool(x)))  # the one ReLU module, called a second time
        return self.fc(self.gap(x).flatten(1))


@pytest.fixture(scope="module")
def hand():
    torch.manual_seed(0)
    model = Hand().double()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()
            bn.bias.normal_()
    return model.eval()


def _positions(stage, n=2, seed=0):
    c, h, w = stage.shape
    rng = np.random.default_rng(seed)
    corners = [(0, 0, 0), (c - 1, h - 1, w - 1), (0, 0, w - 1), (c - 1, h - 1, 0)]
    return corners + [(int(rng.integers(c)), int(rng.integers(h)), int(rng.integers(w))) for _ in range(n)]


def _check_every_stage(model, x, tol):
    """Every stage of the walk written out and compared with the test's own hooks (the model's own values)."""
    wt = walk(model, x)
    cap = _captured(model, x)
    seen = set()
    for s in wt.stages:
        seen.add(s.kind)
        base, k = _base(s.name), _call(s.name)
        if s.kind == "linear":
            unit = int(torch.argmax(wt.logits)) if s is classifier(wt) else 0
            got = linear_step(wt, s.index, unit)
            assert got.total == pytest.approx(float(cap.outputs[base][k][0].flatten()[unit]), abs=tol)
            continue
        if not s.is_map:  # an activation between linear layers (VGG's classifier)
            for unit in (0, s.output.numel() - 1):
                got = activation_step(wt, s.index, unit)
                assert got.y == pytest.approx(float(cap.outputs[base][k][0, unit]), abs=tol)
            continue
        for c, i, j in _positions(s):
            if s.kind == "conv":
                want = float(cap.outputs[base][k][0, c, i, j])
                assert conv_step(wt, s.index, c, i, j).sum.total == pytest.approx(want, abs=tol)
                norm = wt.consumer(s.index, "norm")
                if norm is not None:  # folded: the sum is the norm's output (before any activation inside it)
                    inner = [a for a in wt.stages if a.parent == norm.index and a.kind == "activation"]
                    if inner:
                        want = float(cap.inputs[_base(inner[0].name)][_call(inner[0].name)][0, c, i, j])
                    else:
                        want = float(cap.outputs[_base(norm.name)][_call(norm.name)][0, c, i, j])
                    folded = conv_step(wt, s.index, c, i, j, fold_bn=True)
                    assert folded.folded == norm.name and folded.sum.total == pytest.approx(want, abs=tol)
            elif s.kind == "norm":
                got = norm_step(wt, s.index, c, i, j)
                assert got.z == pytest.approx(float(cap.inputs[base][k][0, c, i, j]), abs=tol)
            elif s.kind == "activation":
                got = activation_step(wt, s.index, c, i, j)
                assert got.x == pytest.approx(float(cap.inputs[base][k][0, c, i, j]), abs=tol)
                assert got.y == pytest.approx(float(cap.outputs[base][k][0, c, i, j]), abs=tol)
                assert got.ys.min() <= got.y <= got.ys.max()
            elif s.kind == "pooling":
                got = pooling_step(wt, s.index, c, i, j)
                assert got.result == pytest.approx(float(cap.outputs[base][k][0, c, i, j]), abs=tol)
    return wt, seen


def test_every_stage_of_a_hand_built_net_equals_its_module(hand):
    x = torch.randn(1, 3, 21, 19, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    wt, seen = _check_every_stage(hand, x, 1e-9)
    assert seen == {"conv", "norm", "activation", "pooling", "linear"}
    names = [s.name for s in wt.stages]
    assert names.count("relu") == 1 and "relu#2" in names  # one stage per call of a reused module
    step = conv_step(wt, names.index("conv2"), 5, 0, 0)
    assert step.channels == (2, 3) and step.patch.shape == (2, 3, 3)  # second group reads channels 2 and 3
    assert step.sum.rest_count == 18 - len(step.sum.terms)


def test_written_sum_adds_up_in_its_own_text(hand):
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    wt = walk(hand, x)
    step = conv_step(wt, 0, 1, 3, 4, top=4)
    s = step.sum
    assert sum(t.product for t in s.terms) + s.rest + s.bias == pytest.approx(s.total, abs=1e-12)
    assert len(s.terms) == 4 and s.rest_count == 27 - 4 and s.text().endswith(f"= {s.total:.4g}")
    mags = [abs(t.product) for t in s.terms]
    assert mags == sorted(mags, reverse=True)


@pytest.fixture(scope="module")
def lite0():
    return registry.load("efficientnet_lite0", device="cpu").model


def test_lite0_same_padding_depthwise_and_batchnormact_equal_the_model(lite0):
    """timm's TF-SAME convolutions (odd pixel padded at the bottom/right), depthwise convs, BN with ReLU6 inside."""
    x = torch.randn(1, 3, 65, 57, generator=torch.Generator().manual_seed(3))  # odd sizes: asymmetric padding
    wt, seen = _check_every_stage(lite0, x, 2e-4)
    assert seen == {"conv", "norm", "activation", "pooling", "linear"}
    first = conv_step(wt, 0, 0, 0, 0)
    assert first.reads_rgb and first.kernel.shape == (3, 3, 3)
    assert np.allclose(first.kernel_rgb(), first_layer_filters(lite0)[0], atol=1e-6)  # the Layers page's tile
    dw = next(s for s in wt.stages if s.kind == "conv" and s.module.groups > 1 and s.module.stride[0] == 2)
    assert conv_step(wt, dw.index, 7, 2, 3).channels == (7,)


def test_what_the_page_opens_on_and_draws_equals_a_plain_loop(lite0):
    """The strongest channel, its peak, the first layer's patch as photo pixels and the input channel adding up to
    the most: each against a loop over the recorded numbers or the photo's own pixels."""
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    x = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(5)) * 2 - 1  # a photo in 0..1, normalised
    wt = walk(lite0, x)
    stage = wt.stages[0]
    out = stage.output.double().numpy()
    means = [out[c].mean() for c in range(out.shape[0])]
    strongest = max(range(len(means)), key=lambda c: means[c])
    assert stage.strongest_channel() == strongest
    plane = out[strongest]
    best = max(((r, c) for r in range(plane.shape[0]) for c in range(plane.shape[1])), key=lambda rc: plane[rc])
    assert stage.peak(strongest) == best
    step = conv_step(wt, 0, strongest, 5, 6)  # an inner position: no padding in its patch
    photo = np.clip(x[0].permute(1, 2, 0).numpy() * 0.5 + 0.5, 0, 1)
    box = wt.receptive_field(0, 5, 6)
    pixels = (photo[box.top:box.bottom + 1, box.left:box.right + 1] * 255).round().astype(np.uint8)
    assert np.array_equal(step.patch_rgb(mean, std), pixels)
    block = next(s for s in wt.stages if s.kind == "conv" and s.module.groups == 1 and s.index > 0)
    inner = conv_step(wt, block.index, 0, 1, 1)
    totals = [sum(abs(float(k) * float(p)) for k, p in zip(inner.kernel[i].ravel(), inner.patch[i].ravel()))
              for i in range(len(inner.channels))]
    assert inner.strongest_input() == totals.index(max(totals))
    with pytest.raises(CamError, match="first-layer"):
        inner.patch_rgb(mean, std)


@pytest.mark.parametrize("arch", ["resnet18", "vgg11"])
def test_torchvision_cnns_with_random_weights_equal_the_model(arch):
    torch.manual_seed(4)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    wt, seen = _check_every_stage(model, x, 2e-4)
    assert seen == {"conv", "norm", "activation", "pooling", "linear"} - ({"norm"} if arch == "vgg11" else set())
    head = classifier(wt)
    assert torch.equal(head.output, wt.logits.float())
    if arch == "vgg11":  # 2×2 → 7×7 adaptive average pooling: overlapping windows of one or two cells
        pool = next(s for s in wt.stages if isinstance(s.module, nn.AdaptiveAvgPool2d))
        assert pooling_step(wt, pool.index, 0, 3, 3).values.shape == (2, 2)


def test_softmax_with_temperature_is_torch_softmax_of_logits_over_t():
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(6)) * 4
    for t in (0.1, 0.5, 1.0, 3.0, 20.0):
        got = softmax(logits, t, k=5)
        want = torch.softmax(logits.double() / t, dim=0)
        assert np.allclose(got.probs, want.numpy(), atol=1e-12)
        assert [i for i, _ in got.top] == torch.topk(want, 5).indices.tolist()
    assert softmax(logits, 0.5).top[0][1] > softmax(logits, 1).top[0][1] > softmax(logits, 3).top[0][1]
    with pytest.raises(CamError, match="temperature"):
        softmax(logits, 0)


# ------------------------------------------------------------------ receptive fields


def _probe_box(model, module, x, row, col):
    """Bounding box of the input pixels whose gradient on the module's output at (row, col) is non-zero."""
    box = {}
    handle = module.register_forward_hook(lambda m, a, out: box.setdefault("out", out))
    try:
        x = x.clone().requires_grad_(True)
        with torch.enable_grad():
            model(x)
            g, = torch.autograd.grad(box["out"][0, :, row, col].sum(), x)
    finally:
        handle.remove()
    rows, cols = np.nonzero(g[0].abs().sum(0).numpy())
    return rows.min(), cols.min(), rows.max(), cols.max()


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 3, stride=2, padding=2, dilation=2)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.c = nn.Conv2d(2, 2, 5, stride=1, padding=0)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(self.c(self.pool(torch.relu(self.b(self.a(x))))).mean((2, 3)))


class Residual(nn.Module):
    """A 3×3 → 3×3 branch added to a strided 1×1 shortcut (the shape of ResNet's downsampling block)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 3, stride=2, padding=1)
        self.b = nn.Conv2d(2, 2, 3, padding=1)
        self.short = nn.Conv2d(3, 2, 1, stride=2)
        self.c = nn.Conv2d(2, 2, 3, padding=1)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        y = self.b(self.a(x)) + self.short(x)
        return self.fc(self.c(y).mean((2, 3)))


@pytest.mark.parametrize("net", [Chain, Residual])
def test_composed_receptive_field_equals_the_gradient_probe(net):
    """Positive weights and a positive input: every pixel inside the field reaches the output, none outside."""
    torch.manual_seed(7)
    model = net().double().eval()
    for p in model.parameters():
        nn.init.uniform_(p, 0.1, 1.0)
    x = torch.rand(1, 3, 21, 19, generator=torch.Generator().manual_seed(8), dtype=torch.float64) + 0.1
    wt = walk(model, x)
    for stage in wt.of_kind("conv", "pooling"):
        _, h, w = stage.shape
        for row in sorted({0, 1, h // 2, h - 2, h - 1} & set(range(h))):  # the edges, where padding clips the box
            for col in sorted({0, 1, w // 2, w - 2, w - 1} & set(range(w))):
                box = wt.receptive_field(stage.index, row, col)
                got = (box.top, box.left, box.bottom, box.right)
                assert got == _probe_box(model, stage.module, x, row, col), (stage.name, row, col)


@pytest.mark.parametrize("arch", ["lite0", "resnet18"])
def test_gradient_support_lies_inside_the_composed_field_on_real_cnns(arch, lite0):
    """Dead ReLUs and max pooling shrink what a gradient reaches; it never reaches outside the composed box."""
    torch.manual_seed(9)
    model = lite0 if arch == "lite0" else torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(10))
    wt = walk(model, x)
    maps = [s for s in wt.stages if s.is_map and s.kind == "conv"]
    for stage in (maps[3], maps[len(maps) // 2], maps[-1]):
        _, h, w = stage.shape
        for row, col in ((0, 0), (h // 2, w // 2), (h - 1, w - 1)):
            box = wt.receptive_field(stage.index, row, col)
            top, left, bottom, right = _probe_box(model, stage.module, x, row, col)
            assert box.top <= top and box.left <= left and bottom <= box.bottom and right <= box.right


# ------------------------------------------------------------------ the model untouched, errors, transformers


def test_model_left_as_it_was_and_errors_in_one_line(hand):
    model = Hand()
    model.train()
    model.conv1.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wt = walk(model, torch.randn(2, 3, 16, 16))
    assert all(m.training for m in model.modules()) and _hooks(model) == 0
    assert not model.conv1.weight.requires_grad and model.conv2.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # BN running stats too
    with pytest.raises(CamError, match="outside"):
        conv_step(wt, 0, 0, 99, 0)
    with pytest.raises(CamError, match="not a convolution"):
        conv_step(wt, 1, 0, 0, 0)
    with pytest.raises(CamError, match="stage 999"):
        wt.stage(998)


def test_a_vit_gets_the_sentence_and_its_tokens_attention():
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                            num_classes=5).double().eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with pytest.raises(CamError) as err:
        walk(vit, x)
    assert str(err.value) == TRANSFORMER_NOTE
    att = token_attention(vit, x)
    with torch.no_grad():
        _, hand = hand_vit(vit, x)
    assert att.grid == (4, 4) and att.prefix == 1 and att.patch == (16, 16) and len(att.blocks) == 2
    for block in range(2):
        for head in (0, 1, None):
            a = hand[block][0].mean(0) if head is None else hand[block][0, head]
            want = a[1 + 2 * 4 + 3, 1:].reshape(4, 4).numpy()
            assert np.allclose(att.of_patch(block, 2, 3, head), want, atol=1e-10)
    assert _hooks(vit) == 0
