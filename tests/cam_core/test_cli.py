"""`python -m cam_core` end to end on the embedded model (each subprocess loads torch, so few of them),
plus in-process checks of the argument helpers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from cam_core import render
from cam_core.cli import UsageError, _parse_methods, _parse_params, _resolve_class, main

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "cam_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    cat = folder / "chelsea.png"
    Image.fromarray(data.chelsea()).save(cat)  # 451 wide × 300 high: not square, not the model's size
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    return {"cat": cat, "broken": broken}


@pytest.mark.slow
def test_predict_reports_each_image_and_fails_overall(photos):
    res = run_cli("predict", str(photos["cat"]), str(photos["broken"]), "--top", "3")
    assert res.returncode == 1, res.stderr
    good, bad = json_lines(res.stdout)
    assert good["image"] == str(photos["cat"]) and len(good["top"]) == 3
    assert 281 <= good["top"][0]["class_idx"] <= 285  # a domestic cat class
    assert set(good["top"][0]) == {"class_idx", "label", "prob"}
    assert bad["image"] == str(photos["broken"]) and "broken.jpg" in bad["error"] and "top" not in bad
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_explain_writes_overlay_and_image_sized_heatmap(photos, tmp_path):
    out = tmp_path / "out"
    res = run_cli("explain", str(photos["broken"]), str(photos["cat"]), "--method", "gradcam",
                  "--out", str(out), "--alpha", "0.5", "--colormap", "jet")
    assert res.returncode == 1, res.stderr  # the broken file failed, the cat still ran
    bad, rec = json_lines(res.stdout)
    assert "error" in bad and bad["image"] == str(photos["broken"])
    assert rec["method"] == "gradcam" and 281 <= rec["class_idx"] <= 285 and rec["label"]
    assert rec["layer"] and 0 < rec["prob"] <= 1 and rec["elapsed_ms"] > 0
    assert Path(rec["overlay"]) == out / "chelsea_gradcam_overlay.png"
    assert Path(rec["heatmap"]) == out / "chelsea_gradcam_heatmap.npy"

    original = Image.open(photos["cat"]).convert("RGB")
    heat = np.load(rec["heatmap"], allow_pickle=False)
    assert heat.dtype == np.float32 and heat.shape == (original.height, original.width) == (300, 451)
    assert 0.0 <= heat.min() and heat.max() <= 1.0 and heat.max() > 0.5
    overlay = Image.open(rec["overlay"])
    assert overlay.size == original.size
    # the PNG is the saved map blended over the original: (1 - a)·image + a·jet(map)
    expected = 0.5 * np.asarray(original, np.float64) + 0.5 * render.colorize(heat, "jet").astype(np.float64)
    assert np.abs(np.asarray(overlay.convert("RGB"), np.float64) - expected).max() <= 0.5 + 1e-6


@pytest.mark.slow
def test_methods_table():
    table = run_cli("methods")
    assert table.returncode == 0, table.stderr
    assert any(line.split()[:1] == ["gradcam"] for line in table.stdout.splitlines())


def test_methods_json_and_usage_errors_in_process(capsys):
    from cam_core.registry import METHODS

    assert main(["methods", "--json"]) == 0
    by_name = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert set(by_name) == set(METHODS)
    assert by_name["occlusion"]["params"]["patch"]["default"] == METHODS["occlusion"].params["patch"].default
    assert by_name["gradcam"]["citation"] == METHODS["gradcam"].citation

    # a usage error: exit 2, one line on stderr, nothing on stdout, no traceback (nothing is loaded)
    assert main(["explain", "nothing.png", "--method", "no_such_method"]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.startswith("error: ") and len(err.err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "nothing.png", "--alpha", "1.5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--alpha" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_layers_marks_default_layer():
    from models import DEFAULT_MODEL, SPECS

    default = SPECS[DEFAULT_MODEL].default_layer
    res = run_cli("layers", "--model", DEFAULT_MODEL)
    assert res.returncode == 0, res.stderr
    marked = [line.split()[1] for line in res.stdout.splitlines() if line.startswith("* ")]
    assert marked == [default]


def test_argument_helpers():
    cats = ["tench", "goldfish", "Tabby"]
    assert _resolve_class("2", cats) == 2
    assert _resolve_class("Tabby", cats) == 2 and _resolve_class("tabby", cats) == 2
    for wrong in ("3", "-1", "tabbycat"):
        with pytest.raises(UsageError):
            _resolve_class(wrong, cats)
    assert _parse_methods(["gradcam,occlusion", "gradcam"]) == ["gradcam", "occlusion"]
    params = _parse_params(["patch=8", "stride=4", "samples=3"], ["occlusion", "smoothgrad", "gradcam"])
    assert params == {"occlusion": {"patch": 8, "stride": 4}, "smoothgrad": {"samples": 3}, "gradcam": {}}
    for wrong in (["stride=x"], ["patch=0"], ["nokey"], ["colour=3"]):
        with pytest.raises(UsageError):
            _parse_params(wrong, ["occlusion"])
