"""Review queries over the hand-made sample audit (tests/audit_sample.py): every figure counted by hand there."""
from __future__ import annotations

import numpy as np
import pytest

from cam_core.audit import review
from cam_core.audit.store import open_audit
from cam_core.errors import CamError
from tests import audit_sample


@pytest.fixture
def audit(tmp_path):
    with open_audit(audit_sample.build(tmp_path / "run1")) as a:
        yield a


def test_summary_and_per_class(audit):
    s = review.summary(audit)
    assert (s.rows, s.errors, s.labelled, s.correct_top1, s.correct_top5) == (7, 1, 6, 3, 5)
    assert s.top1 == 0.5 and s.top5 == pytest.approx(5 / 6) and s.wrong_reason == {"gradcam": 1}
    assert s.boxed_correct == 1  # c.png: the only box, and right
    rows = review.per_class(audit)
    assert [(r.label, r.images, r.correct_top1, r.correct_top5) for r in rows] == [
        ("cat", 2, 1, 2), ("dog", 2, 1, 1), ("cup", 2, 1, 2)]
    assert [(r.confused_with, r.confused_count) for r in rows] == [("dog", 1), ("cup", 1), ("cat", 1)]
    assert rows[0].mean_confidence == pytest.approx((0.9 + 0.8) / 2, abs=1e-6)


def test_confusion_cells(audit):
    c = review.confusion(audit)
    assert c.labels == ["cat", "dog", "cup"]
    np.testing.assert_array_equal(c.counts, [[1, 1, 0], [0, 1, 1], [1, 0, 1]])


def test_mistakes_and_wrong_reason(audit):
    assert [r["path"] for r in review.confident_mistakes(audit)] == ["d.png", "b.png", "f.png"]
    assert [r["path"] for r in review.wrong_reason_cases(audit, "gradcam")] == ["c.png"]
    assert [r["path"] for r in review.errors(audit)] == ["bad.png"]


def test_select_filters_and_sorts(audit):
    total, rows = review.select(audit, review.Filters(correct=False), order_by="confidence", descending=True)
    assert total == 3 and [r["path"] for r in rows] == ["d.png", "b.png", "f.png"]
    assert "gradcam__map" not in rows[0]
    total, rows = review.select(audit, review.Filters(label_idx=2, confidence=(0.55, 1.0)))
    assert total == 1 and rows[0]["path"] == "e.png"
    total, rows = review.select(audit, review.Filters(ranges={"gradcam__deletion": (0.15, 0.35)}))
    assert [r["path"] for r in rows] == ["c.png", "d.png"]  # 0.2, 0.3
    assert review.select(audit, review.Filters(wrong_reason="gradcam"))[0] == 1
    assert review.select(audit, review.Filters(errors=True))[0] == 7
    total, rows = review.select(audit, limit=2, offset=2)
    assert total == 6 and [r["index"] for r in rows] == [2, 3]
    with pytest.raises(CamError, match="cannot sort by"):
        review.select(audit, order_by='confidence"; DROP TABLE rows; --')
    with pytest.raises(CamError, match="cannot filter on"):
        review.select(audit, review.Filters(ranges={"path": (0, 1)}))


def test_mean_map_is_the_mean_of_unit_maps(audit):
    got, n = review.mean_map(audit, "gradcam", 1, side=audit_sample.GRID)  # dog: rows 2 and 3
    expected = (audit_sample.grid_map(2) / 3 + audit_sample.grid_map(3) / 4) / 2
    assert n == 2
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(CamError, match="no 'scorecam' maps"):
        review.mean_map(audit, "scorecam", 1)


def test_image_path_stays_under_its_root(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "x.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"x")
    assert review.image_path(root.resolve(), "x.png") == (root / "x.png").resolve()
    assert review.image_path(root.resolve(), "../secret.png") is None
    assert review.image_path(root.resolve(), "missing.png") is None
