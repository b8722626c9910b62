"""A person's own weights: round trips through .safetensors and .pth, and every unsafe or unfit file refused."""
from __future__ import annotations

import os
import pathlib

import pytest
import torch
from PIL import Image
from safetensors.torch import save as save_file_bytes, save_file

import models
from cam_core.errors import CamError
from models.labels import IMAGENET_CATEGORIES


@pytest.fixture(scope="module")
def resnet10():
    torch.manual_seed(3)
    return models.SPECS["resnet18"].build(10).state_dict()


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_safetensors_round_trip_with_labels(tmp_path, resnet10):
    path = tmp_path / "birds.safetensors"
    save_file({k: v.contiguous() for k, v in resnet10.items()}, path)
    labels = tmp_path / "birds.txt"
    names = [f"bird {i}" for i in range(10)]
    labels.write_text("\n".join(names) + "\n\n")
    backbone = models.load_own_weights("resnet18", path, labels, device="cpu")
    assert _equal(backbone.model.state_dict(), resnet10)
    assert backbone.model.fc.out_features == 10 and backbone.categories == names
    assert backbone.spec.source == "own" and "birds.safetensors" in backbone.spec.display
    top = backbone.predict(Image.new("RGB", (64, 48), (10, 120, 200)), top=3)
    assert len(top) == 3 and all(p.label in names for p in top)


def test_safetensors_from_bytes(tmp_path, resnet10):
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in resnet10.items()}, path)
    backbone = models.load_own_weights("resnet18", path.read_bytes(), ["x"] * 10, device="cpu",
                                       filename="upload.safetensors")
    assert _equal(backbone.model.state_dict(), resnet10)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix"])
def test_pth_round_trip(tmp_path, resnet10, wrap):
    if wrap == "plain":
        obj = resnet10
    elif wrap == "module_prefix":
        obj = {f"module.{k}": v for k, v in resnet10.items()}
    else:
        obj = {wrap: resnet10, "epoch": 7}
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    labels = "\n".join(f"c{i}" for i in range(10)).encode()
    backbone = models.load_own_weights("resnet18", path.read_bytes(), labels, device="cpu", filename="ckpt.pth")
    assert _equal(backbone.model.state_dict(), resnet10)
    assert backbone.categories == [f"c{i}" for i in range(10)]


def test_default_labels(tmp_path, resnet10):
    path = tmp_path / "w.pt"
    torch.save(resnet10, path)
    assert models.load_own_weights("resnet18", path, device="cpu").categories == [f"class {i}" for i in range(10)]
    full = tmp_path / "full.pt"
    torch.save(models.SPECS["resnet18"].build().state_dict(), full)
    assert models.load_own_weights("resnet18", full, device="cpu").categories == list(IMAGENET_CATEGORIES)


class _Touch:
    """Unpickling this calls pathlib.Path.touch(marker): code that must never run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path, resnet10):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": resnet10, "payload": _Touch(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(CamError) as err:
        models.load_own_weights("resnet18", path, device="cpu")
    assert str(err.value).startswith("evil.pth: refused")
    assert "could run code" in str(err.value)
    assert not marker.exists()
    with pytest.raises(CamError, match="refused"):
        models.load_own_weights("resnet18", path.read_bytes(), device="cpu", filename="evil.pt")
    assert not marker.exists()


def test_wrong_architecture_is_refused(tmp_path):
    path = tmp_path / "mobilenet.safetensors"
    save_file({k: v.contiguous() for k, v in models.SPECS["mobilenet_v3_large"].build(5).state_dict().items()}, path)
    with pytest.raises(CamError) as err:
        models.load_own_weights("resnet18", path, device="cpu")
    message = str(err.value)
    assert message.startswith("mobilenet.safetensors: these weights do not fit resnet18 (missing ")
    assert "unexpected" in message and "conv1.weight" in message and "\n" not in message


def test_wrong_shapes_are_refused(tmp_path, resnet10):
    bad = dict(resnet10)
    bad["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in bad.items()}, path)
    with pytest.raises(CamError, match=r"bad.safetensors: .*layer1.0.conv1.weight is \(64, 64, 1, 1\)"):
        models.load_own_weights("resnet18", path, device="cpu")


def test_label_count_must_match(tmp_path, resnet10):
    path = tmp_path / "w.pt"
    torch.save(resnet10, path)
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    with pytest.raises(CamError, match="labels.txt: 3 labels but the weights have 10 classes"):
        models.load_own_weights("resnet18", path, labels, device="cpu")


@pytest.mark.parametrize("name,content,reason", [
    ("w.ckpt", b"whatever", "unknown weights format '.ckpt'"),
    ("w.safetensors", b"\x00" * 64, "not a valid safetensors file"),
    ("w.pth", b"garbage bytes", "not a readable PyTorch weights file"),
    ("w.pth", b"", "empty file"),
])
def test_unreadable_files_are_refused(name, content, reason):
    with pytest.raises(CamError, match=f"{name}: .*{reason}"):
        models.load_own_weights("resnet18", content, device="cpu", filename=name)


def test_non_tensor_entries_are_refused(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CamError, match="meta.pth: refused, entry 'epoch' is not a tensor"):
        models.load_own_weights("resnet18", path, device="cpu")


def test_size_cap(tmp_path, resnet10):
    path = tmp_path / "w.pt"
    torch.save(resnet10, path)
    with pytest.raises(CamError, match="w.pt: .* is over the .* limit"):
        models.load_own_weights("resnet18", path, device="cpu", max_bytes=os.path.getsize(path) - 1)


def test_unknown_architecture(tmp_path):
    with pytest.raises(CamError, match="'lenet': unknown"):
        models.load_own_weights("lenet", b"x", filename="w.pt")


def test_lite_architecture_accepts_own_weights(tmp_path):
    torch.manual_seed(0)
    state = models.SPECS["efficientnet_lite0"].build(3).state_dict()
    path = tmp_path / "lite.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    backbone = models.load_own_weights("efficientnet_lite0", path, ["a", "b", "c"], device="cpu")
    assert backbone.model.classifier.out_features == 3 and _equal(backbone.model.state_dict(), state)


def _record_builds(monkeypatch, arch: str) -> list[tuple[int, str]]:
    """Every model built for ``arch`` from now on, as (classes, device of its parameters): a "meta" build
    allocates nothing, a "cpu" one allocates the whole model."""
    import dataclasses

    from models import registry

    spec, built = registry.SPECS[arch], []

    def recording(num_classes: int):
        model = spec.builder(num_classes)
        built.append((num_classes, next(model.parameters()).device.type))
        return model

    monkeypatch.setitem(registry.SPECS, arch, dataclasses.replace(spec, builder=recording))
    return built


def test_a_view_claiming_far_more_than_the_file_holds_is_refused(tmp_path, resnet10, monkeypatch):
    """A small .pth whose head is a stride-0 view of one float "holds" 200,000 classes: refused before any model
    is built (its head alone would need 400 MB)."""
    state = dict(resnet10)
    state["fc.weight"] = torch.zeros(1).expand(200_000, 512)
    state["fc.bias"] = torch.zeros(1).expand(200_000)
    path = tmp_path / "tiny.pth"
    torch.save(state, path)
    assert path.stat().st_size < 50_000_000
    built = _record_builds(monkeypatch, "resnet18")
    with pytest.raises(CamError) as err:
        models.load_own_weights("resnet18", path, device="cpu")
    assert str(err.value).startswith("tiny.pth: refused, tensor 'fc.weight' of shape (200000, 512) is a view on 4 bytes")
    assert built == []


def test_a_head_of_the_wrong_width_is_refused_before_the_model_is_built(tmp_path, resnet10, monkeypatch):
    """300,000 rows of width 1 (1.2 MB) would make a 300,000 × 512 head (600 MB) before the shapes were compared:
    they are compared against a model on the meta device, and no real one is built."""
    state = dict(resnet10)
    state["fc.weight"] = torch.zeros(300_000, 1)
    state["fc.bias"] = torch.zeros(300_000)
    path = tmp_path / "narrow.safetensors"
    save_file(state, path)
    built = _record_builds(monkeypatch, "resnet18")
    with pytest.raises(CamError, match=r"narrow.safetensors: these weights do not fit resnet18 \(1 tensors have the "
                                       r"wrong shape, e.g. fc.weight is \(300000, 1\) but resnet18 needs \(300000, 512\)"):
        models.load_own_weights("resnet18", path, device="cpu")
    assert built == [(300_000, "meta")]
    assert models.load_own_weights("resnet18", save_file_bytes(resnet10), device="cpu", filename="ok.safetensors")
    assert built[1:] == [(10, "meta"), (10, "cpu")]


def test_integer_weights_are_refused(tmp_path, resnet10):
    state = dict(resnet10)
    state["fc.weight"] = torch.zeros(10, 512, dtype=torch.int8)
    path = tmp_path / "quantized.safetensors"
    save_file(state, path)
    with pytest.raises(CamError, match="quantized.safetensors: .*wrong kind of number, e.g. fc.weight is int8 but "
                                       "resnet18 needs float32"):
        models.load_own_weights("resnet18", path, device="cpu")


def test_labels_in_utf16_with_a_bom_are_read_and_latin1_is_refused_with_what_to_do(tmp_path, resnet10):
    path = tmp_path / "w.pt"
    torch.save(resnet10, path)
    names = [f"Vogel {i} – Größe" for i in range(10)]
    utf16 = tmp_path / "windows.txt"
    utf16.write_bytes("\r\n".join(names).encode("utf-16"))  # Notepad's "Unicode": a BOM, then UTF-16-LE
    assert models.load_own_weights("resnet18", path, utf16, device="cpu").categories == names
    latin1 = tmp_path / "old.txt"
    latin1.write_bytes("\n".join(n.replace("–", "-") for n in names).encode("latin-1"))
    with pytest.raises(CamError) as err:
        models.load_own_weights("resnet18", path, latin1, device="cpu")
    assert str(err.value) == ("old.txt: the labels file is not UTF-8 text (byte 0xf6 at offset 12); save it as "
                              "UTF-8, one label per line")
