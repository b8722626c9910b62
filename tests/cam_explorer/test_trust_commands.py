"""``evaluate`` and ``sanity`` on the command line: usage errors before any model loads, the box mapped from
the file's pixels to x's, one JSON line per image and method with the library's own numbers, a bad file
reported on its own line while the others go on."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from cam_explorer import parsing
from cam_explorer.cli import main
from cam_core.audit.rows import box_in_input
from cam_explorer.parsing import UsageError, parse_metrics, parse_settings


def run(capsys, *args: str) -> tuple[int, list[dict], str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines() if line.strip()], captured.err


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("trust")
    cat = folder / "cat64.png"
    Image.fromarray(data.chelsea()).resize((64, 64), Image.BILINEAR).save(cat)
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    return {"cat": cat, "empty": empty}


# --------------------------------------------------------------------------- no model


def test_metrics_and_settings_are_checked_against_the_metric_registry():
    from cam_core.metrics import METRICS, SETTINGS

    assert parse_metrics(None) == ["deletion", "insertion"]
    assert parse_metrics(["Deletion,road", "ROAD-MoRF", "deletion"]) == ["deletion", "road", "road_morf"]
    with pytest.raises(UsageError, match="--metrics: unknown metric 'nope'"):
        parse_metrics(["nope"])
    got = parse_settings(["steps=7", "fractions=0.2,0.5", "seed=3", "chunk=4"], ["deletion", "road"])
    assert got == {"steps": 7, "fractions": [0.2, 0.5], "seed": 3, "chunk": 4}
    assert type(got["steps"]) is int
    assert parse_settings(["deletion_fill=gray"], ["deletion"]) == {"deletion_fill": "gray"}  # a colour, later
    steps = SETTINGS["steps"]
    for wrong, match in ((f"steps={steps.max + 1}", "--setting steps="), ("steps=x", "--setting steps=x"),
                         ("blur_size=5", "no chosen metric reads it"), ("box=1,2,3,4", "--box"),
                         ("steps", "key=value"), ("road_noise=nan", "finite")):
        with pytest.raises(UsageError, match=match):
            parse_settings([wrong], ["deletion", "road"])
    assert "box" in METRICS["pointing_game"].settings  # the one setting with a flag of its own


def test_box_flag_and_its_mapping_to_the_models_pixels():
    assert parsing.box_value("1,2.5,30,40") == (1.0, 2.5, 30.0, 40.0)
    for wrong in ("1,2,3", "3,0,1,5", "0,0,nan,1", "a,b,c,d"):
        with pytest.raises(Exception):
            parsing.box_value(wrong)
    # chelsea() is 451×300; preprocessing gives x 224 high × 352 wide (short side 224, multiples of 32)
    from models.preprocess import target_size

    assert target_size(451, 300, 224) == (224, 352)
    shape = (1, 3, 224, 352)  # the evaluate command and the audit scale a file box with the same function
    got = box_in_input((0.0, 0.0, 451.0, 300.0), 451, 300, shape)
    assert got == pytest.approx((0.0, 0.0, 352.0, 224.0))
    got = box_in_input((45.1, 30.0, 225.5, 150.0), 451, 300, shape)
    assert got == pytest.approx((35.2, 22.4, 176.0, 112.0))


def test_settings_get_the_models_colours_and_std():
    from cam_explorer.evaluate_command import with_model_settings

    class Backbone:  # normalization (v/255 - 0.5) / 0.25 per channel
        spec = SimpleNamespace(std=(0.25, 0.25, 0.25))

        def fill_value(self, rgb):
            return [(v / 255 - 0.5) / 0.25 for v in rgb]

    given = parse_settings(["deletion_fill=black"], ["deletion", "road"])
    got = with_model_settings(given, ["deletion", "road"], Backbone())
    assert got == {"deletion_fill": [-2.0, -2.0, -2.0], "pixel_std": [0.25, 0.25, 0.25]}
    assert given == {"deletion_fill": "black"}  # the parsed settings are not changed in place
    assert with_model_settings({"pixel_std": 0.5}, ["road"], Backbone()) == {"pixel_std": 0.5}  # given wins
    assert with_model_settings({}, ["deletion"], Backbone()) == {}  # only where a metric reads it
    with pytest.raises(UsageError, match="--setting deletion_fill=purple"):
        with_model_settings({"deletion_fill": "purple"}, ["deletion"], Backbone())


def test_usage_errors_come_before_any_model_loads(capsys):
    cases = [
        (["evaluate", "a.png", "--metrics", "pointing_game"], "--box"),
        (["evaluate", "a.png", "--box", "0,0,5,5"], "no chosen metric uses a box"),
        (["evaluate", "a.png", "--metrics", "deletion", "--setting", "fractions=0.5"], "no chosen metric reads it"),
        (["sanity", "a.png", "--method", "gradcam,occlusion"], "one method at a time"),
        (["sanity", "a.png", "--method", "nope"], "unknown"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("error: ") and match in captured.err
        assert len(captured.err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["sanity", "a.png", "--mode", "sideways"])
    assert exit_info.value.code == 2
    capsys.readouterr()


# --------------------------------------------------------------------------- with the embedded model


def _curve_ok(curve: dict) -> None:
    assert set(curve) == {"x_label", "y_label", "x", "y"}
    assert len(curve["x"]) == len(curve["y"]) >= 2 and all(isinstance(v, float) for v in curve["x"] + curve["y"])


@pytest.mark.slow
def test_evaluate_lines_match_the_library_and_a_bad_file_goes_on(photos, capsys):
    from cam_core import evaluate, explain
    from cam_core.imaging import load_image
    from models import DEFAULT_MODEL, SPECS, load

    settings = ["steps=4", "fractions=0.25,0.5", "chunk=16"]
    code, lines, err = run(capsys, "evaluate", str(photos["empty"]), str(photos["cat"]), "--method", "gradcam",
                           "--metrics", "deletion,insertion,road,energy_in_box", "--box", "0,0,32,64",
                           "--device", "cpu", "--baseline", "2", *[a for s in settings for a in ("--setting", s)])
    assert code == 1, err
    bad, rec = lines
    assert bad == {"image": str(photos["empty"]), "error": bad["error"]} and "empty.png" in bad["error"]
    assert {"image", "model", "method", "layer", "class_idx", "label", "prob", "metrics", "elapsed_ms"} <= set(rec)
    assert rec["image"] == str(photos["cat"]) and rec["method"] == "gradcam" and rec["model"] == DEFAULT_MODEL
    assert list(rec["metrics"]) == ["deletion", "insertion", "road", "energy_in_box"]
    for name, m in rec["metrics"].items():
        assert set(m) == {"score", "higher_is_better", "class_idx", "curve", "curves", "details", "notes",
                          "explanation", "baseline", "verdict"}
        assert m["baseline"]["n"] == 2 and m["verdict"] and f"{name} " in err and m["verdict"] in err
        assert isinstance(m["score"], float) and math.isfinite(m["score"])
        if m["curve"] is not None:
            _curve_ok(m["curve"])
        for curve in m["curves"].values():
            _curve_ok(curve)
    assert set(rec["metrics"]["road"]["curves"]) == {"MoRF", "LeRF"}
    assert "cat64.png gradcam" in err and "(100%)" in err  # progress on stderr

    # the reference: the library called directly on the same inputs (ROAD's pixel_std is the model's std)
    backbone = load(DEFAULT_MODEL, device="cpu")
    x = backbone.preprocess(load_image(photos["cat"]))
    assert tuple(x.shape[-2:]) == (224, 224)  # 64×64 → 224×224: the box scales by 3.5
    exp = explain(backbone.model, x, "gradcam", target_layer=SPECS[DEFAULT_MODEL].default_layer)
    ref = evaluate(backbone.model, x, exp, ["deletion", "insertion", "road", "energy_in_box"], steps=4,
                   fractions=(0.25, 0.5), chunk=16, pixel_std=list(SPECS[DEFAULT_MODEL].std),
                   box=(0.0, 0.0, 112.0, 224.0), baseline=2)
    for name, result in ref.items():
        assert rec["metrics"][name]["score"] == pytest.approx(result.score, abs=1e-6), name
        assert rec["metrics"][name]["baseline"]["mean"] == pytest.approx(result.baseline.mean, abs=1e-5), name
        assert rec["metrics"][name]["class_idx"] == result.class_idx
        assert result.class_idx == (None if name == "energy_in_box" else rec["class_idx"])  # model-free: none
    assert rec["class_idx"] == exp.class_idx
    assert rec["metrics"]["deletion"]["curve"]["y"] == pytest.approx(ref["deletion"].curve.y.tolist(), abs=1e-6)

    # hand-checkable: the deletion curve starts at the clean image's probability of the class …
    with torch.no_grad():
        clean = torch.softmax(backbone.model(x), dim=1)[0, rec["class_idx"]].item()
    assert rec["metrics"]["deletion"]["curve"]["x"][0] == 0.0
    assert rec["metrics"]["deletion"]["curve"]["y"][0] == pytest.approx(clean, abs=1e-5)
    # … and the energy in the left half of the file (32 of 64 columns) is that half's share of x's map
    heat = np.clip(exp.heatmap.astype(np.float64), 0, None)
    assert rec["metrics"]["energy_in_box"]["score"] == pytest.approx(heat[:, :112].sum() / heat.sum(), abs=1e-6)


@pytest.mark.slow
def test_sanity_line_has_one_entry_per_stage_a_verdict_and_thumbnails(photos, tmp_path, capsys):
    from cam_core.imaging import load_image
    from cam_core.sanity import find_stages
    from models import DEFAULT_MODEL, load

    out = tmp_path / "thumbs"
    code, lines, err = run(capsys, "sanity", str(photos["cat"]), str(photos["empty"]), "--method", "gradcam",
                           "--seed", "1", "--device", "cpu", "--out", str(out))
    assert code == 1, err
    rec, bad = lines
    assert bad["image"] == str(photos["empty"]) and "empty.png" in bad["error"] and "stages" not in bad
    backbone = load(DEFAULT_MODEL, device="cpu")
    x = backbone.preprocess(load_image(photos["cat"]))
    plan, _classes = find_stages(copy.deepcopy(backbone.model), x)
    assert [s["stage"] for s in rec["stages"]] == [stage.name for stage in plan]
    assert isinstance(rec["passed"], bool) and rec["verdict"].startswith(("passed", "failed"))
    assert rec["mode"] == "cascading" and rec["seed"] == 1 and rec["method"] == "gradcam"
    assert rec["class_idx"] == rec["class"] and rec["label"] == backbone.categories[rec["class"]]
    for entry in rec["stages"]:
        assert set(entry) == {"stage", "rho", "ssim", "edge_rho", "blank", "thumbnail"}
        assert Path(entry["thumbnail"]).parent == out and Image.open(entry["thumbnail"]).size == (64, 64)
    assert Path(rec["original_thumbnail"]).exists() and Path(rec["random_class_thumbnail"]).exists()
    assert "cat64.png sanity gradcam" in err and "(100%)" in err
