"""The audit pass: every row's map equals a direct ``explain`` call on that image alone (within 1e-5), predictions
equal the softmax of the model's own forward, box scores equal a plain numpy count on explain's heat map, and
one image's failure leaves the others' rows whole. Tiny hand-built net, random inputs of two shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cam_core import explain
from cam_core.audit.inputs import InputItem
from cam_core.audit.scan import BatchRecord, Prepared, ScanSettings, Scanner, scan
from cam_core.metrics import evaluate
from tests.cam_core.nets import GapNet, seeded

CATS = ["a", "b", "c", "d", "e"]
METHODS = ("gradcam", "gradcam++", "hirescam", "eigencam", "layercam", "saliency")


def _model() -> GapNet:
    return seeded(GapNet(classes=5)).float().eval()  # float32, as a real model runs


def _prepared(shapes, seed=0, boxes=None, labels=None) -> list[Prepared]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, (h, w) in enumerate(shapes):
        box = None if boxes is None else boxes[i]
        label = None if labels is None else labels[i]
        item = InputItem(f"/nowhere/{i}.png", f"{i}.png", None if label is None else CATS[label], label, box)
        # noise around an image-wide colour: the colour moves the pooled features, so images differ in top class
        x = torch.randn(1, 3, h, w, generator=g) + 3 * torch.randn(1, 3, 1, 1, generator=g)
        out.append(Prepared(i, item, x, width=2 * w, height=2 * h))
    return out


def test_maps_and_predictions_match_single_image_calls():
    model = _model()
    batch = _prepared([(32, 32), (32, 48), (32, 32), (32, 48)], seed=7, labels=[2, 1, None, 3])
    with torch.no_grad():  # each shape group holds two top classes: each image's map is of its own class
        assert [int(model(p.x).argmax()) for p in batch] == [2, 0, 0, 2]
    seen: list[BatchRecord] = []
    scanner = Scanner(model, CATS, ScanSettings("conv2", {m: {} for m in METHODS}), consumer=seen.append)
    rows = scanner.rows(batch)
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    for p, row in zip(batch, rows):
        with torch.no_grad():
            probs = model(p.x).softmax(dim=1)[0]
        top_p, top_i = probs.topk(5)
        assert row["top5_idx"] == top_i.tolist() and row["pred_label"] == CATS[top_i[0]]
        np.testing.assert_allclose(row["top5_prob"], top_p.numpy(), atol=1e-6)
        if p.item.label_idx is None:
            assert row["correct_top1"] is None and row["correct_top5"] is None
        else:
            assert row["correct_top1"] == (int(top_i[0]) == p.item.label_idx)
            assert row["correct_top5"] == (p.item.label_idx in top_i.tolist())
        assert (row["width"], row["height"], row["error"]) == (p.width, p.height, None)
        for method in METHODS:
            direct = explain(model, p.x, method, "conv2")
            stored = np.asarray(row[f"{method}__map"], dtype=np.float32).reshape(
                row[f"{method}__map_h"], row[f"{method}__map_w"])
            assert stored.shape == direct.raw.shape
            scale = max(float(np.abs(direct.raw).max()), 1e-12)
            np.testing.assert_allclose(stored / scale, direct.raw / scale, atol=1e-5, err_msg=method)
            assert row[f"{method}__seconds"] > 0
    # one record per input shape, with the activations a plain forward computes at conv2
    assert sorted(r.indices for r in seen) == [[0, 2], [1, 3]]
    for rec in seen:
        xs = torch.cat([batch[i].x for i in rec.indices])
        with torch.no_grad():
            expected = model.conv2(model.relu1(model.conv1(xs.clone())))
        torch.testing.assert_close(rec.activations, expected, atol=1e-6, rtol=1e-5)
        assert rec.gradients is not None and rec.gradients.shape == expected.shape


def test_the_model_is_left_as_it_was():
    model = _model().train()
    frozen = model.conv1.weight
    frozen.requires_grad_(False)
    list(scan(model, CATS, ScanSettings("conv2", {"gradcam": {}}), [_prepared([(32, 32)] * 2)]))
    assert model.training and not frozen.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_box_scores_and_wrong_reason_from_the_heat_map():
    model = _model()
    p = _prepared([(96, 96)], seed=3)[0]
    direct = explain(model, p.x, "gradcam", "conv2")
    heat = direct.heatmap
    row_peak, col_peak = np.unravel_index(np.argmax(heat), heat.shape)
    # a 4×4 box (x's pixels) in the corner farthest from the peak: the peak misses it by far more than 15 px
    x0 = 0 if col_peak >= 48 else 92
    y0 = 0 if row_peak >= 48 else 92
    inside = heat[y0:y0 + 4, x0:x0 + 4].sum() / heat.sum()  # pixel centres inside a box on pixel edges
    label = direct.class_idx  # labelled with the predicted class: correct, for the wrong reason
    item = InputItem(p.item.path, p.item.name, CATS[label], label, (2 * x0, 2 * y0, 2 * x0 + 8, 2 * y0 + 8))
    whole = InputItem(p.item.path, "whole.png", CATS[label], label, (0, 0, p.width, p.height))
    rows = Scanner(model, CATS, ScanSettings("conv2", {"gradcam": {}})).rows(
        [Prepared(0, item, p.x, p.width, p.height), Prepared(1, whole, p.x, p.width, p.height)])
    assert rows[0]["gradcam__pointing"] is False and rows[0]["gradcam__wrong_reason"] is True
    assert rows[0]["gradcam__energy"] == pytest.approx(inside, abs=1e-6)
    assert rows[1]["gradcam__pointing"] is True and rows[1]["gradcam__wrong_reason"] is False
    assert rows[1]["gradcam__energy"] == pytest.approx(1.0, abs=1e-6)
    assert rows[0]["box"] == [2 * x0, 2 * y0, 2 * x0 + 8, 2 * y0 + 8]


def test_deletion_insertion_with_baseline_as_evaluate_gives_them():
    model = _model()
    p = _prepared([(32, 32)], seed=5)[0]
    row = Scanner(model, CATS, ScanSettings("conv2", {"gradcam": {}}, ("deletion", "insertion"), baseline=4)
                  ).rows([p])[0]
    direct = evaluate(model, p.x, explain(model, p.x, "gradcam", "conv2"), ["deletion", "insertion"], baseline=4)
    for metric in ("deletion", "insertion"):
        assert row[f"gradcam__{metric}"] == pytest.approx(direct[metric].score, abs=1e-6)
        assert row[f"gradcam__{metric}_verdict"] == direct[metric].verdict != ""


def test_one_bad_image_is_an_error_row_and_the_others_go_on():
    model = _model()
    good = _prepared([(32, 32), (32, 32)], seed=7)
    far = InputItem("/nowhere/far.png", "far.png", None, None, (1000.0, 1000.0, 1010.0, 1010.0))  # off the image
    unread = Prepared(3, InputItem("/nowhere/x.png", "x.png"), None, error="x.png: empty file")
    batch = [good[0], Prepared(2, far, good[1].x, 64, 64), unread, good[1]]
    rows = Scanner(model, CATS, ScanSettings("conv2", {"gradcam": {}})).rows(batch)
    assert [r["index"] for r in rows] == [0, 2, 3, 1]
    assert rows[1]["error"].startswith("far.png: ") and "outside" in rows[1]["error"]
    assert rows[2]["error"] == "x.png: empty file" and "gradcam__map" not in rows[2]
    for row, p in ((rows[0], good[0]), (rows[3], good[1])):
        assert row["error"] is None
        np.testing.assert_allclose(np.reshape(row["gradcam__map"], (row["gradcam__map_h"], row["gradcam__map_w"])),
                                   explain(model, p.x, "gradcam", "conv2").raw, rtol=1e-5, atol=1e-6)
