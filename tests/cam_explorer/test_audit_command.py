"""``cam-explorer audit`` on a small ImageFolder of skimage photos (a class named by label, one by WordNet ID, a
corrupt file, odd sizes): one JSON summary, rows whose maps equal a direct ``explain`` on the embedded model,
and a resumed run that writes only what was missing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import models
from cam_core import explain
from cam_core.audit import open_audit
from cam_core.audit.store import part_files
from cam_explorer.cli import main

SIZE = "64"  # the embedded model at its smallest input size: fast, still a real network


@pytest.fixture(scope="module")
def image_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("set")
    for folder, name, photo, size in (("Egyptian cat", "chelsea.png", data.chelsea(), (90, 60)),
                                      ("n07920052", "coffee.jpg", data.coffee(), (60, 40)),  # espresso's WNID
                                      ("n07920052", "tall.png", data.astronaut(), (30, 100)),
                                      ("rocket", "rocket.png", data.rocket(), (64, 43))):
        (root / folder).mkdir(exist_ok=True)
        Image.fromarray(photo).resize(size).save(root / folder / name)
    (root / "n07920052" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return root


def _run(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(["audit", *argv, "--input-size", SIZE, "--device", "cpu"])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1, captured.out
    return code, json.loads(lines[0]), captured.err


def test_audit_rows_match_direct_calls_and_a_resume_adds_only_the_missing(image_set, tmp_path, capsys):
    out = tmp_path / "audit"
    argv = (str(image_set), "--method", "gradcam,eigencam", "--out", str(out), "--batch", "2")
    code, summary, err = _run(capsys, *argv)
    assert code == 1  # one image failed; the others are done
    assert (summary["images"], summary["done"], summary["errors"], summary["labelled"]) == (5, 5, 1, 3)
    # labelled = with a known label and not failed (broken.jpg is labelled but failed; rocket is unknown): what
    # accuracy is over, here as in the review report
    assert "label 'rocket' is not one of the model's labels" in err and "images/s" in err

    backbone = models.load("efficientnet_lite0", device="cpu", input_size=int(SIZE))
    espresso = backbone.categories.index("espresso")
    audit = open_audit(out)
    rows = {r["path"]: r for r in audit.sql("SELECT * FROM rows").to_pylist()}
    assert sorted(rows) == ["Egyptian cat/chelsea.png", "n07920052/broken.jpg", "n07920052/coffee.jpg",
                            "n07920052/tall.png", "rocket/rocket.png"]
    assert rows["n07920052/broken.jpg"]["error"].startswith("n07920052/broken.jpg: ")
    assert rows["n07920052/coffee.jpg"]["label_idx"] == espresso
    assert rows["rocket/rocket.png"]["label_idx"] is None and rows["rocket/rocket.png"]["correct_top1"] is None
    correct = 0
    for path, row in rows.items():
        if row["error"]:
            continue
        x = backbone.preprocess(Image.open(image_set / path).convert("RGB"))
        with torch.no_grad():
            top = backbone.model(x).softmax(dim=1)[0].topk(5)
        assert row["top5_idx"] == top.indices.tolist()
        correct += row["label_idx"] is not None and row["label_idx"] == row["pred_idx"]
        assert (row["width"], row["height"]) == Image.open(image_set / path).size
        for method in ("gradcam", "eigencam"):
            direct = explain(backbone.model, x, method, "bn2").raw
            scale = max(float(np.abs(direct).max()), 1e-12)
            np.testing.assert_allclose(audit.map(row["index"], method) / scale, direct / scale, atol=1e-5)
    assert summary["correct_top1"] == correct
    manifest = audit.manifest
    assert manifest["finished"] and manifest["layer"] == "bn2" and manifest["input_size"] == int(SIZE)
    assert manifest["command"][:3] == ["cam-explorer", "audit", str(image_set)]

    # A run killed after its first part: the later parts never renamed into place, one left as a temporary file.
    parts = part_files(out)
    assert len(parts) == 3  # 5 images, 2 per batch
    lost = sum(len(open_audit(out).sql(f"SELECT 1 FROM read_parquet('{p}')")) for p in parts[1:])
    parts[1].rename(parts[1].with_name(".part-00001.parquet.tmp"))
    parts[2].unlink()
    code, summary, err = _run(capsys, *argv)
    assert summary["written"] == lost and summary["done"] == 5 and summary["errors"] == 1
    assert "done before" in err
    indices = open_audit(out).sql('SELECT "index" FROM rows ORDER BY 1')["index"].to_pylist()
    assert indices == [0, 1, 2, 3, 4]
    code, summary, _ = _run(capsys, *argv)  # nothing left to do
    assert summary["written"] == 0 and summary["done"] == 5


def test_resuming_with_other_settings_is_one_line(image_set, tmp_path, capsys):
    out = tmp_path / "audit"
    _run(capsys, str(image_set), "--method", "gradcam", "--out", str(out), "--batch", "8")
    code = main(["audit", str(image_set), "--method", "hirescam", "--out", str(out), "--input-size", SIZE,
                 "--device", "cpu"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "other settings (methods differ)" in errors[0]
    assert main(["audit", str(image_set), "--out", str(out), "--metrics", "road"]) == 2
    assert "--metrics 'road'" in capsys.readouterr().err


def test_csv_with_a_box_and_a_duplicate(image_set, tmp_path, capsys):
    """A box in file pixels (the left half of a 90×60 photo) is scaled to x: its energy is the share of
    explain's heat map in x's left half; the duplicate line is counted once."""
    csv = tmp_path / "list.csv"
    cat = image_set / "Egyptian cat" / "chelsea.png"
    csv.write_text(f"path,label,x0,y0,x1,y1\n{cat},Egyptian cat,0,0,45,60\n{cat},Egyptian cat,,,,\n")
    out = tmp_path / "audit"
    code, summary, _ = _run(capsys, str(csv), "--method", "gradcam", "--out", str(out))
    assert code == 0 and summary["done"] == 1
    audit = open_audit(out)
    row = audit.sql("SELECT * FROM rows").to_pylist()[0]
    assert audit.manifest["duplicates"] == 1 and row["box"] == [0.0, 0.0, 45.0, 60.0]
    backbone = models.load("efficientnet_lite0", device="cpu", input_size=int(SIZE))
    heat = explain(backbone.model, backbone.preprocess(Image.open(cat).convert("RGB")), "gradcam", "bn2").heatmap
    half = heat.shape[1] // 2  # x is 64×96 for a 90×60 photo: the box's x1 = 45 → 48 in x
    assert row["gradcam__energy"] == pytest.approx(heat[:, :half].sum() / heat.sum(), abs=1e-5)
    peak_col = int(np.unravel_index(np.argmax(heat), heat.shape)[1])
    assert row["gradcam__pointing"] == (peak_col + 0.5 <= half + 15)
    assert row["gradcam__wrong_reason"] == (row["correct_top1"] and not row["gradcam__pointing"])


def test_metrics_are_announced_with_their_cost(image_set, tmp_path, capsys):
    """With --metrics, one line up front says the model runs an image takes (the registry's and the metrics'
    estimators) and the expected time; progress.json holds the run's work units."""
    code, summary, err = _run(capsys, str(image_set / "n07920052"), "--method", "gradcam", "--out",
                              str(tmp_path / "m"), "--metrics", "deletion", "--baseline", "2")
    assert code == 1 and summary["done"] == 3  # broken.jpg is an error row
    lines = err.splitlines()
    announced = [ln for ln in lines if "model runs an image" in ln]
    assert len(announced) == 1 and "against 2 random maps" in announced[0] and "expected about" in announced[0]
    saved = json.loads((tmp_path / "m" / "progress.json").read_text())
    assert saved["written"] == 3 and saved["units_total"] > 3
