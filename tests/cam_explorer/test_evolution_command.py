"""``cam-explorer evolution`` with two random-weight EfficientNet-Lite0 files (4 classes) written as safetensors:
each state's reported channel mean is that state's own channel mean (a plain forward hook on a model built and
loaded here), one PNG strip, one JSON line; bad input is one line and the right exit code."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from skimage import data

import models
from cam_explorer.cli import main
from models.preprocess import preprocess as model_preprocess

ARCH, LAYER, CHANNEL, SIZE = "efficientnet_lite0", "blocks.1", 3, 64


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("evolution")
    states = []
    for i in range(2):
        torch.manual_seed(i)
        net = models.SPECS[ARCH].build(4)
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(state, root / f"epoch{i}.safetensors")
        states.append(state)
    Image.fromarray(data.chelsea()).resize((80, 64)).save(root / "cat.png")
    return root, states


def _channel_map(state, x):
    """The channel's map on ``x`` by a plain forward hook on a net built and loaded here."""
    net = models.SPECS[ARCH].build(4)
    net.load_state_dict(state)
    net.eval()
    kept = {}
    handle = net.get_submodule(LAYER).register_forward_hook(lambda _m, _i, out: kept.setdefault("out", out))
    try:
        with torch.no_grad():
            net(x)
    finally:
        handle.remove()
    return kept["out"][0, CHANNEL]


def _channel_mean(state, x):
    return float(_channel_map(state, x).mean())


def test_each_state_reports_its_own_channel(files, tmp_path, capsys):
    root, states = files
    weights = f"{root / 'epoch0.safetensors'},{root / 'epoch1.safetensors'}"
    code = main(["evolution", "--model", ARCH, "--weights", weights, str(root / "cat.png"), "--layer", LAYER,
                 "--channel", str(CHANNEL), "--steps", "2", "--size", "32", "--input-size", str(SIZE),
                 "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(out) == 1
    rec = json.loads(out[0])
    spec = models.SPECS[ARCH]
    x = model_preprocess(Image.open(root / "cat.png").convert("RGB"), SIZE, spec.mean, spec.std, "cpu")
    assert [s["weights"] for s in rec["states"]] == ["epoch0.safetensors", "epoch1.safetensors"]
    for s, state in zip(rec["states"], states):
        assert s["mean"] == pytest.approx(_channel_mean(state, x), rel=1e-4, abs=1e-5)
        assert s["visualization"] is not None
    assert rec["states"][0]["mean"] != pytest.approx(rec["states"][1]["mean"])
    strip = np.asarray(Image.open(rec["png"]))
    assert strip.shape[0] > strip.shape[1] / 2 and strip.ndim == 3  # two rows of two tiles


def test_bad_input_is_one_line(files, tmp_path, capsys):
    root, _ = files
    base = ["evolution", "--model", ARCH, str(root / "cat.png"), "--layer", LAYER, "--channel", "0", "--steps", "0",
            "--out", str(tmp_path), "--device", "cpu"]
    assert main([*base, "--weights", str(root / "epoch0.safetensors")]) == 2
    assert "give 2 to 5" in capsys.readouterr().err
    pickled = tmp_path / "hostile.pth"
    pickled.write_bytes(b"\x80\x02cos\nsystem\nq\x00.")
    assert main([*base, "--weights", f"{root / 'epoch0.safetensors'},{pickled}"]) == 1
    assert "hostile.pth: refused" in capsys.readouterr().err
    assert main([*base, "--model", "resnet18", "--weights",
                 f"{root / 'epoch0.safetensors'},{root / 'epoch1.safetensors'}"]) == 1
    assert "do not fit resnet18" in capsys.readouterr().err


def test_images_add_each_states_top_patches_as_a_plain_loop_finds_them(files, tmp_path, capsys):
    root, states = files
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        photo = {"a.png": data.coffee(), "b.png": data.chelsea(), "c.png": data.astronaut()}[name]
        Image.fromarray(photo).resize((64, 64)).save(folder / name)
    weights = f"{root / 'epoch0.safetensors'},{root / 'epoch1.safetensors'}"
    code = main(["evolution", "--model", ARCH, "--weights", weights, str(root / "cat.png"), "--layer", LAYER,
                 "--channel", str(CHANNEL), "--steps", "0", "--input-size", str(SIZE), "--images", str(folder),
                 "--top", "2", "--out", str(tmp_path / "out"), "--device", "cpu"])
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    spec = models.SPECS[ARCH]
    for s, state in zip(rec["states"], states):
        brute = []
        for path in sorted(folder.iterdir()):
            x = model_preprocess(Image.open(path).convert("RGB"), SIZE, spec.mean, spec.std, "cpu")
            brute.append((float(_channel_map(state, x).max()), path.name))
        brute.sort(key=lambda t: -t[0])
        assert [p["image"] for p in s["patches"]] == [b[1] for b in brute[:2]]
        assert [p["value"] for p in s["patches"]] == pytest.approx([b[0] for b in brute[:2]], rel=1e-4, abs=1e-5)
    strip = np.asarray(Image.open(rec["png"]))
    assert strip.shape[0] > 128 + 2 * 64  # a map row and two rows of patches
