"""Feature evolution on a hand-built net with a 1×1 convolution whose weights are set by hand: each state's map is
known in closed form, its visualization turns the colour the weights pick, and no model is changed."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cam_core import CamError
from cam_core.evolution import evolution, shared_scale, strip

STEPS, SIZE = 12, 32


def _net(weight, bias, relu=False):
    """conv (1×1, 3→2) [→ ReLU] → pool → fc; channel 1 of ``conv`` is ``weight · pixel + bias``."""
    head = OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(2, 3))
    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 2, 1), **({"relu": nn.ReLU()} if relu else {}), **head))
    with torch.no_grad():
        net.conv.weight.zero_()
        net.conv.weight[1, :, 0, 0] = torch.tensor(weight)
        net.conv.bias[:] = torch.tensor([0.0, bias])
    return net


def _state(model):
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
    return (hooks, [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [p.grad is None for p in model.parameters()], {k: v.clone() for k, v in model.state_dict().items()})


def _same(a, b):
    return a[:4] == b[:4] and all(torch.equal(a[4][k], b[4][k]) for k in a[4])


@pytest.fixture
def states():
    torch.manual_seed(0)
    red, green = _net([1.0, 0.0, 0.0], 0.0), _net([0.0, 2.0, 0.0], 0.5)
    red.train()  # a model left in training mode must come back in training mode
    return [red, green]


def test_each_column_is_its_states_closed_form_map_and_nothing_changes(states):
    x = torch.randn(1, 3, 7, 5)
    before = [_state(m) for m in states]
    cols = evolution(states, ["early", "late"], x, "conv", 1, visualize_steps=STEPS, size=SIZE, seed=2)
    assert all(_same(_state(m), b) for m, b in zip(states, before))
    assert [c.name for c in cols] == ["early", "late"]
    np.testing.assert_allclose(cols[0].fmap, x[0, 0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(cols[1].fmap, 2 * x[0, 1].numpy() + 0.5, rtol=0, atol=1e-6)
    assert cols[1].mean == pytest.approx(float((2 * x[0, 1] + 0.5).mean()), abs=1e-6)
    assert shared_scale(cols) == pytest.approx((min(float(x[0, 0].min()), float(2 * x[0, 1].min() + 0.5)),
                                                max(float(x[0, 0].max()), float(2 * x[0, 1].max() + 0.5))))
    # the channel reads red in one state and green in the other: each visualization turns that colour
    rgb = [c.visualization.image.reshape(-1, 3).astype(float).mean(axis=0) for c in cols]
    assert rgb[0].argmax() == 0 and rgb[1].argmax() == 1
    sheet = strip(cols, cell=40, gap=2)
    assert sheet.shape == (2 * 42 + 2, 2 * 42 + 2, 3) and sheet.dtype == np.uint8


def test_the_same_seed_gives_each_state_the_same_start(states):
    same = [_net([1.0, 0.0, 0.0], 0.0), _net([1.0, 0.0, 0.0], 0.0)]
    cols = evolution(same, ["a", "b"], torch.randn(1, 3, 4, 4), "conv", 1, visualize_steps=3, size=SIZE)
    assert np.array_equal(cols[0].visualization.image, cols[1].visualization.image)


def test_progress_counts_steps_over_all_columns_and_zero_steps_skips_visualization(states):
    seen = []
    evolution(states, ["a", "b"], torch.randn(1, 3, 4, 4), "conv", 0, visualize_steps=3, size=SIZE,
              progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)]
    cols = evolution(states, ["a", "b"], torch.randn(1, 3, 4, 4), "conv", 0, visualize_steps=0)
    assert all(c.visualization is None for c in cols)
    assert strip(cols, cell=10, gap=1).shape == (12, 23, 3)


def test_bad_input_is_one_clear_message(states):
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(CamError, match="2 to 5 weight files"):
        evolution(states[:1], ["a"], x, "conv", 0, visualize_steps=0)
    wider = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 1), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(),
                                      fc=nn.Linear(4, 3)))
    with pytest.raises(CamError, match="b: not the same architecture as a"):
        evolution([states[0], wider], ["a", "b"], x, "conv", 0, visualize_steps=0)
    with pytest.raises(CamError, match="has 2 channels; channel 5"):
        evolution(states, ["a", "b"], x, "conv", 5, visualize_steps=0)


def _image_set(folder, n=6):
    """``n`` small PNGs (two sizes) whose strongest red and green pixels differ from image to image: each state's
    ranking is then unique, and a plain loop can find it."""
    from PIL import Image

    from cam_core.audit.inputs import InputItem

    rng = np.random.default_rng(3)
    red_order, green_order = rng.permutation(n), rng.permutation(n)
    items = []
    for i in range(n):
        h, w = (8, 6) if i % 2 else (6, 8)
        rgb = rng.integers(0, 100, size=(h, w, 3), dtype=np.uint8)
        rgb[rng.integers(h), rng.integers(w), 0] = 110 + 20 * red_order[i]
        rgb[rng.integers(h), rng.integers(w), 1] = 110 + 20 * green_order[i]
        path = folder / f"img{i}.png"
        Image.fromarray(rgb).save(path)
        items.append(InputItem(str(path), path.name))
    return items


def _pixels(image):
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def test_top_patches_of_each_state_are_a_plain_loops_top_k(tmp_path):
    """The channel read after a ReLU (the deconvnet projects through ReLUs); pixels ≥ 0 and biases ≥ 0 leave the
    convolution's values as they were."""
    from PIL import Image

    torch.manual_seed(0)
    states = [_net([1.0, 0.0, 0.0], 0.0, relu=True), _net([0.0, 2.0, 0.0], 0.5, relu=True)]
    states[0].train()
    items, k = _image_set(tmp_path), 3
    before = [_state(m) for m in states]
    seen = []
    cols = evolution(states, ["early", "late"], torch.rand(1, 3, 5, 5), "relu", 1, visualize_steps=2, size=16,
                     items=items, preprocess=_pixels, categories=["a", "b", "c"], k=k, mean=(0, 0, 0),
                     std=(1, 1, 1), progress=lambda done, total: seen.append((done, total)))
    assert all(_same(_state(m), b) for m, b in zip(states, before))
    assert seen[-1] == (2 * (2 + len(items)), 2 * (2 + len(items)))
    for model, col in zip(states, cols):
        brute = []  # (value, index, row, col, pixel) of each image's strongest position, by a plain loop
        for index, item in enumerate(items):
            x = _pixels(Image.open(item.path).convert("RGB"))
            with torch.no_grad():
                a = model.conv(x)[0, 1]
            row, column = divmod(int(a.argmax()), a.shape[1])
            brute.append((float(a.max()), index, row, column, np.asarray(Image.open(item.path))[row, column]))
        brute.sort(key=lambda t: -t[0])
        assert [p.patch.index for p in col.patches] == [b[1] for b in brute[:k]]
        assert [p.name for p in col.patches] == [items[b[1]].name for b in brute[:k]]
        np.testing.assert_allclose([p.patch.value for p in col.patches], [b[0] for b in brute[:k]], atol=1e-6)
        for p, b in zip(col.patches, brute):
            assert (p.patch.row, p.patch.col) == b[2:4]
            assert (p.patch.box.top, p.patch.box.left, p.patch.box.bottom, p.patch.box.right) == (b[2], b[3]) * 2
            assert np.array_equal(p.crop[0, 0], b[4])  # a 1×1 convolution sees one pixel: the crop is that pixel
            assert p.projection.shape == (1, 1, 3)
        assert col.errors == ()
    assert [p.patch.index for p in cols[0].patches] != [p.patch.index for p in cols[1].patches]
    sheet = strip(cols, cell=40, gap=2)
    assert sheet.shape == (2 * 42 + 2 + k * 22, 2 * 42 + 2, 3)
