"""``cam-explorer top-patches`` on skimage photos with the embedded model: from a folder (--out) and from an audit
folder (its images, model and layer; patches stored in it), one JSON object, the Parquet table and the PNG sheet;
each channel's first patch is the largest activation of that channel over the set (a direct forward per image)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import models
from cam_core.audit import open_audit
from cam_core.recorder import record
from cam_core.top_patches import read_patches
from cam_explorer.cli import main

SIZE = "64"
LAYER = "blocks.2"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for name, size in (("chelsea", (80, 64)), ("coffee", (64, 64)), ("astronaut", (64, 96)), ("rocket", (64, 64))):
        Image.fromarray(getattr(data, name)()).resize(size).save(root / f"{name}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 no")
    return root


def _json(capsys) -> tuple[dict, str]:
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1, captured.out
    return json.loads(lines[0]), captured.err


def test_from_a_folder_the_first_patch_is_the_sets_largest_activation(photos, tmp_path, capsys):
    code = main(["top-patches", str(photos), "--layer", LAYER, "--k", "2", "--channels", "0-2,7", "--out",
                 str(tmp_path), "--input-size", SIZE, "--device", "cpu"])
    summary, err = _json(capsys)
    assert code == 1 and summary["errors"] == 1 and "broken.jpg" in err  # the corrupt file; the rest went on
    assert (summary["images"], summary["channels"], summary["k"]) == (4, 4, 2)
    assert Path(summary["sheet"]).is_file() and Path(summary["patches"]) == tmp_path / "patches" / f"{LAYER}.parquet"
    table, meta = read_patches(tmp_path, LAYER)
    assert meta["k"] == 2 and meta["model"] == "efficientnet_lite0"
    rows = table.to_pylist()
    assert sorted({r["channel"] for r in rows}) == [0, 1, 2, 7] and len(rows) == 8
    backbone = models.load("efficientnet_lite0", device="cpu", input_size=int(SIZE))
    spec = backbone.spec
    best: dict[int, tuple[float, str]] = {}
    for path in sorted(photos.glob("*.png")):
        x = models.preprocess.preprocess(Image.open(path).convert("RGB"), input_size=spec.input_size, mean=spec.mean,
                                         std=spec.std, device="cpu")
        with torch.no_grad():
            a = record(backbone.model, x, [LAYER]).activations[LAYER][0]
        for c in (0, 1, 2, 7):
            v = float(a[c].max())
            if c not in best or v > best[c][0]:
                best[c] = (v, path.name)
    for c, (value, name) in best.items():
        first = next(r for r in rows if r["channel"] == c and r["rank"] == 0)
        assert first["path"] == name
        np.testing.assert_allclose(first["value"], value, rtol=1e-4)
        assert 0 <= first["top"] <= first["bottom"] < first["input_h"]


def test_from_an_audit_folder(photos, tmp_path, capsys):
    audit = tmp_path / "audit"
    main(["audit", str(photos), "--method", "gradcam", "--out", str(audit), "--layer", LAYER,
          "--input-size", SIZE, "--device", "cpu"])
    capsys.readouterr()
    code = main(["top-patches", str(audit), "--k", "1", "--sheet", "2", "--device", "cpu"])
    summary, _ = _json(capsys)
    assert code == 1 and summary["layer"] == LAYER and summary["channels"] == 40
    table, _ = read_patches(audit, LAYER)
    paths = {r["index"]: r["path"] for r in open_audit(audit).sql("SELECT index, path FROM rows").to_pylist()}
    assert all(paths[r["index"]] == r["path"] for r in table.to_pylist())  # the audit's own indices
    assert main(["top-patches", str(audit), "--model", "resnet18", "--device", "cpu"]) == 2
    assert "drop --model" in capsys.readouterr().err
