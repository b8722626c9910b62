"""``cam-explorer walkthrough``: the stage list, one position's document checked against the test's own forward
hooks and torch.softmax, and one-line usage errors (exit code 2), on the embedded model and a skimage photo."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from skimage import data

import models
from cam_core.walkthrough import Box, walk
from cam_explorer.cli import main

SIZE = "64"


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("wt") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)  # 451×300: the file's two axes scale differently
    return path


@pytest.fixture(scope="module")
def lite0(photo):
    backbone = models.load(models.DEFAULT_MODEL, device="cpu", input_size=int(SIZE))
    return backbone, backbone.preprocess(Image.open(photo).convert("RGB"))


def _run(capsys, *argv):
    code = main(["walkthrough", *map(str, argv), "--input-size", SIZE, "--device", "cpu"])
    out = capsys.readouterr()
    return code, out


def _hooked(model, x, module_name, pre=False):
    """The test's own reference: batch item 0 of one module's output (or input) in a plain forward pass."""
    module = dict(model.named_modules())[module_name]
    seen = {}

    def keep(_m, args, output=None):
        seen["t"] = (args[0] if pre else output)[0].detach().clone()

    handle = module.register_forward_pre_hook(keep) if pre else module.register_forward_hook(keep)
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    return seen["t"], logits[0]


def test_stage_list_matches_the_library(photo, lite0, capsys):
    code, out = _run(capsys, photo)
    assert code == 0, out.err
    listed = [json.loads(line) for line in out.out.splitlines()]
    backbone, x = lite0
    wt = walk(backbone.model, x)
    assert [(r["index"], r["kind"], r["name"], r["shape"]) for r in listed] == \
        [(s.index + 1, s.kind, s.name, list(s.shape)) for s in wt.stages]


def test_position_document_equals_the_models_own_values(photo, lite0, capsys):
    backbone, x = lite0
    row, col, channel, t = 9, 30, 4, 0.5
    code, out = _run(capsys, photo, "--stage", 1, "--row", row, "--col", col, "--channel", channel,
                     "--temperature", t)
    assert code == 0, out.err
    doc = json.loads(out.out)
    conv = doc["steps"][0]
    assert conv["name"] == "conv_stem" and conv["folded"] is None
    written = sum(term["product"] for term in conv["terms"]) + conv["rest"] + conv["bias"]
    assert written == pytest.approx(conv["sum"], abs=1e-9)
    hooked, logits = _hooked(backbone.model, x, "conv_stem")
    assert conv["sum"] == pytest.approx(conv["model_value"], rel=1e-4, abs=1e-5)
    assert conv["sum"] == pytest.approx(float(hooked[channel, row, col]), rel=1e-4, abs=1e-5)
    probs = torch.softmax(logits.double() / t, dim=0)
    expected = torch.topk(probs, 5)
    assert [c["class"] for c in doc["softmax"]["top"]] == expected.indices.tolist()
    assert [c["probability"] for c in doc["softmax"]["top"]] == pytest.approx(expected.values.tolist(), abs=1e-6)
    assert doc["classifier"]["class"] == expected.indices[0].item()
    assert doc["classifier"]["sum"] == pytest.approx(float(logits[expected.indices[0]]), rel=1e-4, abs=1e-4)
    # The receptive field in the file's pixels: every file pixel whose span meets the input box's span, by a loop.
    (fw, fh), (h, w) = doc["file_size"], doc["input_size"]
    box, file_box = doc["receptive_field"]["input"], doc["receptive_field"]["file"]

    def meets(j, lo, hi, n, big):
        return j < (hi + 1) * big / n and j + 1 > lo * big / n

    rows = [j for j in range(fh) if meets(j, box["top"], box["bottom"], h, fh)]
    cols = [j for j in range(fw) if meets(j, box["left"], box["right"], w, fw)]
    assert (file_box["top"], file_box["bottom"], file_box["left"], file_box["right"]) == \
        (rows[0], rows[-1], cols[0], cols[-1])


def test_folded_sum_equals_the_norm_output_and_the_activation_follows(photo, lite0, capsys):
    backbone, x = lite0
    row, col, channel = 3, 11, 2
    code, out = _run(capsys, photo, "--stage", "bn1.act", "--row", row, "--col", col, "--channel", channel,
                     "--fold-bn")
    assert code == 0, out.err
    steps = json.loads(out.out)["steps"]
    assert [s["kind"] for s in steps] == ["conv", "norm", "activation"] and steps[0]["folded"] == "bn1"
    before_act, _ = _hooked(backbone.model, x, "bn1.act", pre=True)  # timm's BatchNormAct2d: norm, then act
    after_act, _ = _hooked(backbone.model, x, "bn1.act")
    assert steps[0]["sum"] == pytest.approx(float(before_act[channel, row, col]), rel=1e-4, abs=1e-5)
    assert steps[2]["y"] == pytest.approx(float(after_act[channel, row, col]), rel=1e-6, abs=1e-6)


def test_box_in_file_rounds_outwards():
    assert Box(0, 0, 0, 0).in_file((64, 64), (100, 50)) == Box(0, 0, 0, 1)
    assert Box(1, 1, 2, 2).in_file((4, 4), (8, 8)) == Box(2, 2, 5, 5)


@pytest.mark.parametrize("argv, words", [
    (["--stage", "999", "--row", "0", "--col", "0"], "does not exist"),
    (["--stage", "nope", "--row", "0", "--col", "0"], "stage number or name"),
    (["--stage", "1", "--row", "0"], "give --row and --col"),
    (["--stage", "1", "--row", "500", "--col", "0"], "outside"),
])
def test_bad_stage_or_position_is_a_one_line_usage_error(photo, capsys, argv, words):
    code, out = _run(capsys, photo, *argv)
    assert code == 2 and out.out == ""
    assert out.err.count("\n") == 1 and words in out.err


def test_bad_temperature_is_refused_by_the_parser(photo, capsys):
    with pytest.raises(SystemExit) as stop:
        _run(capsys, photo, "--temperature", "0")
    assert stop.value.code == 2 and "outside" in capsys.readouterr().err
