"""A small hand-made audit folder (real writer, real photos from skimage) whose every figure is known by hand:
used by the review-report, review-query and Audit-page tests.

Classes: cat (0), dog (1), cup (2). Seven rows:
    0 a.png  cat -> cat  0.90  right          4 e.png  cup -> cup  0.60  right
    1 b.png  cat -> dog  0.80  wrong (top-5)  5 f.png  cup -> cat  0.50  wrong (top-5)
    2 c.png  dog -> dog  0.70  right, box, map peak outside it: right for the wrong reason
    3 d.png  dog -> cup  0.95  wrong (not top-5)
    6 bad.png error
So: 6 labelled, top-1 3/6, top-5 5/6; confident mistakes d, b, f; wrong reason c only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from cam_core.audit.store import AuditWriter

CATEGORIES = ("cat", "dog", "cup")
# path, label_idx, pred_idx, confidence, correct_top5
ROWS = [("a.png", 0, 0, 0.90, True), ("b.png", 0, 1, 0.80, True), ("c.png", 1, 1, 0.70, True),
        ("d.png", 1, 2, 0.95, False), ("e.png", 2, 2, 0.60, True), ("f.png", 2, 0, 0.50, True)]
GRID = 4
MANIFEST = {"model": "tiny-net", "weights": "hand-made", "weights_sha256": "ab" * 32, "input_size": 64,
            "layer": "conv", "methods": {"gradcam": {}}, "metrics": ["deletion"], "baseline": 0,
            "inputs": 7, "inputs_sha256": "cd" * 32, "versions": {"python": "3", "torch": "2"},
            "command": ["cam-explorer", "audit", "data dir", "--method", "gradcam", "--out", "audits/run1"],
            "engine": "local"}


def grid_map(i: int) -> np.ndarray:
    """Row i's raw map: a single peak at cell (i % GRID, (i + 1) % GRID) of height i + 1 (c.png: at (2, 3))."""
    m = np.zeros((GRID, GRID), dtype=np.float32)
    m[i % GRID, (i + 1) % GRID] = i + 1
    return m


def build(folder: Path, data_dir: Path | None = None, images: bool = True) -> Path:
    """Write the sample audit into ``folder``; photos (small crops of skimage's) go to ``data_dir`` (default
    ``folder/images``, where an uploaded audit keeps them) unless ``images`` is False."""
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.astronaut()[::-1],
              data.coffee()[:, ::-1]]
    src = data_dir if data_dir is not None else folder / "images"
    if images:
        src.mkdir(parents=True, exist_ok=True)
        for (name, *_), photo in zip(ROWS, photos):
            Image.fromarray(photo).resize((48, 40)).save(src / name)
        (src / "bad.png").write_bytes(b"not an image")
    rows = []
    for i, (name, label, pred, conf, top5) in enumerate(ROWS):
        rows.append({"index": i, "path": name, "label": CATEGORIES[label], "label_idx": label, "pred_idx": pred,
                     "pred_label": CATEGORIES[pred], "confidence": conf, "top5_idx": [pred],
                     "top5_prob": [conf], "correct_top1": label == pred, "correct_top5": top5,
                     "box": [0.0, 0.0, 20.0, 20.0] if name == "c.png" else None, "width": 48, "height": 40,
                     "gradcam__map": grid_map(i).ravel().tolist(), "gradcam__map_h": GRID,
                     "gradcam__map_w": GRID, "gradcam__seconds": 0.01, "gradcam__deletion": 0.1 * i,
                     "gradcam__deletion_verdict": "better than random",
                     "gradcam__pointing": False if name == "c.png" else None,
                     "gradcam__wrong_reason": True if name == "c.png" else None})
    manifest = dict(MANIFEST, source=str(src))
    with AuditWriter(folder, manifest) as writer:
        writer.write(rows[:4])
        writer.write(rows[4:] + [{"index": 6, "path": "bad.png", "error": "bad.png: not an image"}])
        writer.finish()
    return folder
