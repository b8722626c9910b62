"""The command line end to end on the embedded model: in process through the console script's function
(``cam-explorer`` = ``cam_explorer.cli:main``), and once as ``python -m cam_core`` in a subprocess (each
subprocess loads torch, so only one)."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from cam_core import render
from cam_explorer.cli import main

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def console_script():
    """The function behind the ``cam-explorer`` command, found the way pip's launcher finds it."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["cam-explorer"].partition(":")
    return getattr(import_module(module), attr)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = console_script()(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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


def test_console_script_is_the_cli_main():
    assert console_script() is main


@pytest.mark.slow
def test_python_m_cam_core_still_works():
    res = subprocess.run([PYTHON, "-m", "cam_core", "methods"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert any(line.split()[:1] == ["gradcam"] for line in res.stdout.splitlines())


@pytest.mark.slow
def test_predict_reports_each_image_and_fails_overall(photos, capsys):
    code, out, err = run(capsys, "predict", str(photos["cat"]), str(photos["broken"]), "--top", "3")
    assert code == 1, err
    good, bad = json_lines(out)
    assert good["image"] == str(photos["cat"]) and len(good["top"]) == 3
    assert 281 <= good["top"][0]["class_idx"] <= 285  # a domestic cat class
    assert set(good["top"][0]) == {"class_idx", "label", "prob"}
    assert bad["image"] == str(photos["broken"]) and "broken.jpg" in bad["error"] and "top" not in bad
    assert "Traceback" not in err


@pytest.mark.slow
def test_predict_at_a_larger_input_size_sees_the_same_cat_with_other_probabilities(photos, capsys):
    code, out, err = run(capsys, "predict", str(photos["cat"]), "--top", "3")
    code_big, out_big, err_big = run(capsys, "predict", str(photos["cat"]), "--top", "3", "--input-size", "320")
    assert code == code_big == 0, err + err_big
    (small,), (big,) = json_lines(out), json_lines(out_big)
    assert 281 <= big["top"][0]["class_idx"] <= 285
    assert abs(big["top"][0]["prob"] - small["top"][0]["prob"]) > 1e-3  # the model saw another input


@pytest.mark.slow
def test_explain_a_float_tiff_with_nan_and_a_svg_says_what_to_do(tmp_path, capsys):
    """A depth map with a no-data NaN is explained from its picture (it used to come out all black); an SVG gets
    one line naming it and what to do."""
    gray = np.asarray(Image.fromarray(data.chelsea()).convert("L"), dtype=np.float32) / 255.0
    gray[0, 0] = np.nan
    depth = tmp_path / "depth.tif"
    Image.fromarray(gray).save(depth)
    drawing = tmp_path / "logo.svg"
    drawing.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
    code, out, err = run(capsys, "explain", str(depth), str(drawing), "--method", "gradcam", "--out", str(tmp_path))
    assert code == 1 and "Traceback" not in err
    good, bad = json_lines(out)
    overlay = np.asarray(Image.open(good["overlay"]).convert("L"), dtype=np.float64)
    photo = np.nan_to_num(gray) * 255.0
    match = np.corrcoef(overlay.ravel(), photo.ravel())[0, 1]
    assert match > 0.25  # the cat is under the map (0.4); over a black image it is about 0.03
    assert bad == {"image": str(drawing),
                   "error": "logo.svg: an SVG drawing (vector graphics), which we cannot read; export it to PNG"}


@pytest.mark.slow
def test_explain_writes_overlay_and_image_sized_heatmap(photos, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "explain", str(photos["broken"]), str(photos["cat"]), "--method", "grad_cam",
                            "--out", str(out), "--alpha", "0.5", "--colormap", "jet", "--report")
    assert code == 1, err  # the broken file failed, the cat still ran
    bad, rec = json_lines(stdout)
    assert "error" in bad and bad["image"] == str(photos["broken"])
    assert rec["method"] == "gradcam" and 281 <= rec["class_idx"] <= 285 and rec["label"]  # alias → name
    assert rec["layer"] and 0 < rec["prob"] <= 1 and rec["elapsed_ms"] > 0
    assert Path(rec["overlay"]) == out / "chelsea_gradcam_overlay.png"
    assert Path(rec["heatmap"]) == out / "chelsea_gradcam_heatmap.npy"
    report = Path(rec["report"]).read_text(encoding="utf-8")
    assert Path(rec["report"]) == out / "chelsea_gradcam_report.html"
    assert report.startswith("<!DOCTYPE html>") and "Grad-CAM" in report and rec["label"] in report

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
def test_long_method_shows_progress_and_then_the_expected_time(photos, tmp_path, capsys):
    """Occlusion (``long_running``) on two images of one size: done/total lines with the time left on stderr;
    an expected time (``MethodSpec.expected_seconds``, the app's estimator) before a run, when this process
    has measured something to base it on (the first image's run always has)."""
    code, stdout, err = run(capsys, "explain", str(photos["cat"]), str(photos["cat"]), "--method", "occlusion",
                            "--param", "patch=224", "--param", "stride=224", "--out", str(tmp_path), "--device", "cpu")
    assert code == 0, err
    first, second = json_lines(stdout)
    assert Path(first["overlay"]).name == "chelsea_occlusion_overlay.png"
    assert Path(second["overlay"]).name == "chelsea_2_occlusion_overlay.png"  # same stem, not overwritten
    lines = err.splitlines()
    done = [line for line in lines if line.startswith("chelsea.png occlusion: ") and "/" in line]
    finished = [i for i, line in enumerate(lines) if "(100%)" in line]
    assert len(finished) == 2 and all(" left" in line or " in " in line for line in done)
    announced = [i for i, line in enumerate(lines) if "expected about" in line]
    assert 1 <= len(announced) <= 2 and any(finished[0] < i < finished[1] for i in announced)
    assert all(i < finished[-1] for i in announced)  # each announced before a run, never after the last


def test_methods_json_and_usage_errors_in_process(capsys):
    from cam_core.registry import METHODS

    assert main(["methods", "--json"]) == 0
    by_name = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert set(by_name) == set(METHODS)
    assert by_name["occlusion"]["params"]["patch"]["default"] == METHODS["occlusion"].params["patch"].default
    assert by_name["gradcam"]["citation"] == METHODS["gradcam"].citation
    for name, spec in METHODS.items():  # the registry's flags, as they are
        assert by_name[name]["aliases"] == list(spec.aliases)
        assert (by_name[name]["needs_layer"], by_name[name]["long_running"], by_name[name]["feature_target"]) == (
            spec.needs_layer, spec.long_running, spec.feature_target)

    # a usage error: exit 2, one line on stderr, nothing on stdout, no traceback (nothing is loaded)
    assert main(["explain", "nothing.png", "--method", "no_such_method"]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.startswith("error: ") and len(err.err.strip().splitlines()) == 1
    assert main(["explain", "nothing.png", "--method", "occlusion", "--param", "patch=0"]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.startswith("error: --param patch=0") and len(err.err.strip().splitlines()) == 1
    assert main(["predict", "nothing.png", "--input-size", "5000"]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.startswith("error: --input-size 5000") and len(err.err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "nothing.png", "--alpha", "1.5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--alpha" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_layers_marks_default_layer(capsys):
    from models import DEFAULT_MODEL, SPECS

    default = SPECS[DEFAULT_MODEL].default_layer
    code, out, err = run(capsys, "layers", "--model", DEFAULT_MODEL)
    assert code == 0, err
    marked = [line.split()[1] for line in out.splitlines() if line.startswith("* ")]
    assert marked == [default]
