"""cam_core.invariance: the transforms against PIL / array shifts, and the sweep's probability and distance
against direct computation on a hand-built network."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cam_core.errors import CamError
from cam_core.invariance import GREY, default_values, sweep, transform_image
from cam_core.predict import predict
from tests.cam_core.nets import GapNet


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _preprocess(image: Image.Image) -> torch.Tensor:
    arr = torch.tensor(np.asarray(image.resize((24, 24), Image.Resampling.BILINEAR)), dtype=torch.float32)
    return ((arr / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None]


class InputProbe(nn.Module):
    """A GapNet whose first module passes the input through: its "feature vector" is the input itself."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Identity()
        self.net = GapNet(classes=5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.inp(x))


@pytest.fixture(scope="module")
def net() -> InputProbe:
    torch.manual_seed(0)
    return InputProbe().eval()


@pytest.mark.parametrize("edge", ["grey", "reflect"])
@pytest.mark.parametrize("kind,identity", [("translate", 0), ("rotate", 0), ("scale", 1)])
def test_identity_transform_returns_the_same_pixels(kind, identity, edge):
    img = _image(37, 23)
    assert np.array_equal(np.asarray(transform_image(img, kind, identity, edge)), np.asarray(img))


@pytest.mark.parametrize("edge", ["grey", "reflect"])
@pytest.mark.parametrize("size", [(16, 16), (17, 17)])
@pytest.mark.parametrize("degrees,transpose", [(90, Image.Transpose.ROTATE_90), (180, Image.Transpose.ROTATE_180),
                                               (270, Image.Transpose.ROTATE_270), (-90, Image.Transpose.ROTATE_270)])
def test_quarter_turns_equal_pil_transpose(size, degrees, transpose, edge):
    img = _image(*size, seed=1)
    got = np.asarray(transform_image(img, "rotate", degrees, edge))
    assert np.array_equal(got, np.asarray(img.transpose(transpose)))


def test_half_turn_of_a_wide_image_equals_pil_transpose():
    img = _image(30, 12, seed=2)
    assert np.array_equal(np.asarray(transform_image(img, "rotate", 180)),
                          np.asarray(img.transpose(Image.Transpose.ROTATE_180)))


def test_translation_shifts_right_with_grey_or_mirrored_edge():
    img = _image(20, 9, seed=3)
    a = np.asarray(img)
    d = 5
    grey = np.asarray(transform_image(img, "translate", d, "grey"))
    assert np.array_equal(grey[:, d:], a[:, :-d])
    assert (grey[:, :d] == np.array(GREY, dtype=np.uint8)).all()
    mirrored = np.asarray(transform_image(img, "translate", d, "reflect"))
    assert np.array_equal(mirrored[:, d:], a[:, :-d])
    assert np.array_equal(mirrored[:, :d], a[:, :d][:, ::-1])  # the left edge reflected
    left = np.asarray(transform_image(img, "translate", -d, "grey"))
    assert np.array_equal(left[:, :-d], a[:, d:])


def test_shrinking_leaves_grey_corners_and_keeps_the_centre():
    img = Image.new("RGB", (40, 40), (200, 10, 10))
    out = np.asarray(transform_image(img, "scale", 0.5))
    assert (out[0, 0] == GREY).all() and (out[-1, -1] == GREY).all()
    assert (out[20, 20] == (200, 10, 10)).all()


def test_identity_sweep_has_zero_distance_and_the_predicted_probability(net):
    img = _image(48, 36, seed=4)
    ref = predict(net, _preprocess(img), top=5)
    for kind, identity in (("translate", 0.0), ("rotate", 0.0), ("scale", 1.0)):
        s = sweep(net, _preprocess, img, kind, [identity], "net.conv2")
        assert s.class_idx == ref[0].class_idx  # None follows the original's top-1
        assert s.probs[0] == pytest.approx(ref[0].prob, abs=1e-6)
        assert s.distances[0] == pytest.approx(0.0, abs=1e-6)
        assert s.top_classes == [ref[0].class_idx] and s.layer == "net.conv2"


def test_distance_is_the_relative_change_of_the_feature_vector(net):
    img = _image(48, 36, seed=5)
    values = [-12.0, -4.0, 0.0, 7.0, 15.0]
    s = sweep(net, _preprocess, img, "translate", values, "inp", target_class=3, batch_size=2)
    x0 = _preprocess(img).flatten()
    for v, dist, prob in zip(values, s.distances, s.probs):
        xv = _preprocess(transform_image(img, "translate", v))
        assert dist == pytest.approx(float((xv.flatten() - x0).norm() / x0.norm()), rel=1e-5, abs=1e-7)
        with torch.no_grad():
            assert prob == pytest.approx(float(net(xv).softmax(dim=1)[0, 3]), abs=1e-6)
    assert s.distances[2] == pytest.approx(0.0, abs=1e-7) and min(s.distances[:2] + s.distances[3:]) > 0
    assert len(s.thumbs) == len(values) and max(s.thumbs[0].size) <= 160


def test_large_image_is_worked_on_a_smaller_copy_with_translation_scaled(net):
    img = _image(200, 100, seed=6)
    big = img.resize((400, 200), Image.Resampling.NEAREST)
    small = sweep(net, _preprocess, img, "translate", [10.0], "inp", work_side=200)
    scaled = sweep(net, _preprocess, big, "translate", [20.0], "inp", work_side=200)
    assert scaled.distances[0] == pytest.approx(small.distances[0], rel=0.05)


def test_progress_is_reported_per_batch(net):
    seen = []
    sweep(net, _preprocess, _image(30, 30), "rotate", [0, 10, 20, 30, 40], "net.conv1", batch_size=2,
          progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


@pytest.mark.parametrize("kind,values,match", [("shear", [1.0], "unknown transformation"),
                                               ("scale", [0.0], "outside"),
                                               ("rotate", list(range(65)), "limit of 64"),
                                               ("rotate", [], "at least one")])
def test_bad_requests_raise_cam_error(net, kind, values, match):
    with pytest.raises(CamError, match=match):
        sweep(net, _preprocess, _image(20, 20), kind, values, "net.conv1")


def test_unknown_layer_and_class_raise_cam_error(net):
    with pytest.raises(CamError, match="no layer named"):
        sweep(net, _preprocess, _image(20, 20), "rotate", [0], "nope")
    with pytest.raises(CamError, match="class 9"):
        sweep(net, _preprocess, _image(20, 20), "rotate", [0], "net.conv1", target_class=9)


def test_default_values_include_the_identity():
    assert default_values("rotate", -45, 45, 4) == [-45.0, -15.0, 0.0, 15.0, 45.0]
    assert default_values("scale", 0.5, 1.5, 3) == [0.5, 1.0, 1.5]
    assert default_values("translate", 10, 20, 2) == [10.0, 20.0]
