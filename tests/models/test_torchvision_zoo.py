"""The torchvision zoo: every architecture builds and runs with its registered preprocessing; weights come from the
TORCH_HOME cache with no network; offline, the error names the file and the folder."""
from __future__ import annotations

import hashlib
import os
import socket

import pytest
import torch
from PIL import Image
from torch import nn

import models
from cam_core.adapters import adapter_for
from cam_core.errors import CamError
from models import torchvision_zoo
from models.labels import IMAGENET_CATEGORIES

ZOO = [name for name, spec in models.SPECS.items() if spec.source == "torchvision"]


def test_registry_lists_the_zoo():
    assert set(ZOO) >= {"resnet18", "resnet50", "vgg16", "mobilenet_v3_large", "efficientnet_b0", "densenet121",
                        "convnext_tiny", "vit_b_16", "vit_b_32", "swin_t"}
    assert models.available()[0] == models.DEFAULT_MODEL == "efficientnet_lite0"
    for name in ZOO:
        assert list(torchvision_zoo.weights_of(name).meta["categories"]) == list(IMAGENET_CATEGORIES)
        assert models.SPECS[name].weights == os.path.basename(torchvision_zoo.weights_of(name).url)


def test_unknown_model_is_refused():
    with pytest.raises(CamError, match="'alexnet': unknown; choose one of efficientnet_lite0"):
        models.load("alexnet", device="cpu")


@pytest.mark.parametrize("name", ZOO)
def test_builds_runs_and_layers_resolve(name):
    torch.manual_seed(0)
    spec = models.SPECS[name]
    model = spec.build().eval()
    backbone = models.Backbone(spec, model, IMAGENET_CATEGORIES, "cpu")
    x = backbone.preprocess(Image.new("RGB", (90, 60), (120, 200, 40)))
    assert x.shape == (1, 3, spec.input_size, 352) and x.device.type == "cpu"
    modules = dict(model.named_modules())
    assert spec.default_layer in modules
    assert isinstance(modules[spec.classifier], nn.Linear) and modules[spec.classifier].out_features == 1000

    captured = {}
    handles = [modules[spec.default_layer].register_forward_hook(lambda m, i, o: captured.__setitem__("layer", o))]
    if spec.cam_head:
        handles.append(modules[spec.cam_head[0]].register_forward_hook(lambda m, i, o: captured.__setitem__("f", o)))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
    adapter = adapter_for(model, spec.default_layer, captured["layer"], x)  # ViT tokens, Swin's N×h×w×C
    fmap = captured["layer"] if adapter is None else adapter.to_map(captured["layer"])
    assert fmap.dim() == 4 and fmap.shape[2] * fmap.shape[3] > 1  # a spatial map for CAM methods
    if spec.cam_head:
        fc = modules[spec.cam_head[1]]
        assert isinstance(fc, nn.Linear) and fc.in_features == captured["f"].shape[1]
        # the head really is GAP → Linear: logits = fc(mean over space of the feature map)
        assert torch.allclose(fc(captured["f"].mean(dim=(2, 3))), logits, atol=1e-4)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME for this test only."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # forget any torch.hub.set_dir of the session
    assert torch.hub.get_dir() == os.path.join(str(tmp_path), "hub")
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every connection, so the test is offline even on a machine that has a network."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_cached_file_loads_without_network(torch_home, no_network):
    torch.manual_seed(1)
    saved = models.SPECS["resnet18"].build().state_dict()
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(saved, folder / "resnet18-f37072fd.pth")
    assert torchvision_zoo.is_cached("resnet18")
    backbone = models.load("resnet18", device="cpu")
    loaded = backbone.model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert backbone.categories == list(IMAGENET_CATEGORIES) and backbone.model.training is False


def test_offline_download_names_file_and_folder(torch_home, no_network):
    with pytest.raises(CamError) as err:
        models.load("resnet18", device="cpu")
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message
    assert os.path.join(str(torch_home), "hub", "checkpoints") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "\n" not in message
    folder = torch_home / "hub" / "checkpoints"
    assert not folder.exists() or not os.listdir(folder)  # no half-written file left behind


def test_offline_download_with_progress_callback(torch_home, no_network):
    calls = []
    with pytest.raises(CamError, match="resnet18-f37072fd.pth"):
        models.load("resnet18", device="cpu", progress=lambda done, total: calls.append((done, total)))
    assert calls == []


def test_corrupt_cached_file_says_delete_it(torch_home, no_network):
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CamError, match="cannot load the weight file .*delete it"):
        models.load("resnet18", device="cpu")


def test_download_reports_progress_and_checks_the_hash(tmp_path):
    payload = os.urandom(3 * (1 << 20) + 123)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    calls = []
    target = tmp_path / "out" / f"weights-{prefix}.pth"
    torchvision_zoo._download(source.as_uri(), str(target), lambda d, t: calls.append((d, t)))
    assert target.read_bytes() == payload
    assert calls[-1] == (len(payload), len(payload)) and len(calls) == 4

    bad = tmp_path / "out" / "weights-00000000.pth"
    with pytest.raises(CamError, match="does not match its hash"):
        torchvision_zoo._download(source.as_uri(), str(bad), lambda d, t: None)
    assert sorted(os.listdir(tmp_path / "out")) == [target.name]  # no partial file left behind
