"""The ranking rule on hand-built scores: points from the standings first, then the margin over random, ties shared."""
from __future__ import annotations

import pytest

from cam_core import CamError
from cam_core.metrics import BaselineScores, MetricResult
from cam_core.metrics.ranking import pixel_note, rank

# random maps: deletion 0.30 ± 0.10 (mean of 0.2, 0.3, 0.4), insertion 0.50 ± 0.10
DELETION = BaselineScores((0.2, 0.3, 0.4), 0)
INSERTION = BaselineScores((0.4, 0.5, 0.6), 0)


def scores(deletion: float, insertion: float) -> dict[str, MetricResult]:
    return {"deletion": MetricResult("deletion", deletion, None, "", False, baseline=DELETION),
            "insertion": MetricResult("insertion", insertion, None, "", True, baseline=INSERTION)}


def test_points_first_then_the_margin_in_random_spreads():
    ranked = rank({
        "unclear": scores(0.25, 0.55),  # beats 2 of 3 on each: 1 + 1 points, margin 0.5
        "best": scores(0.10, 0.70),  # beats all on both: 4 points, margin (2 + 2) / 2 = 2
        "worse": scores(0.16, 0.64),  # 4 points, margin 1.4: a clear second (2 − 1.4 ≥ 0.5)
        "chance": scores(0.45, 0.35),  # 0 points, margin −1.5
    })
    assert [(r.name, r.place, r.points) for r in ranked] == [
        ("best", "1", 4), ("worse", "2", 4), ("unclear", "3", 2), ("chance", "4", 0)]
    assert [r.margin for r in ranked] == pytest.approx([2.0, 1.4, 0.5, -1.5])
    assert ranked[0].standings == {"deletion": "better", "insertion": "better"}


def test_close_margins_share_a_rank_and_the_next_rank_skips():
    ranked = rank({"a": scores(0.10, 0.70), "b": scores(0.12, 0.70), "c": scores(0.13, 0.69),
                   "d": scores(0.02, 0.90)})
    # d: margin 3.4 alone; a 2.0, b 1.9, c 1.8: within 0.5 of a, so tied at 2; ranks 1, 2=, 2=, 2=
    assert [(r.name, r.place) for r in ranked] == [("d", "1"), ("a", "2="), ("b", "2="), ("c", "2=")]
    same = rank({"x": scores(0.002, 0.7), "y": scores(0.002, 0.7), "z": scores(0.002, 0.7)})
    assert [r.place for r in same] == ["1=", "1=", "1="]  # equal scores are never ranked 1-2-3


def test_equal_margins_with_other_points_are_not_tied():
    ranked = rank({"p": scores(0.25, 0.70), "q": scores(0.10, 0.55)})  # both 2+1 = 3 points: tie by margin
    assert [r.place for r in ranked] == ["1=", "1="]
    ranked = rank({"p": scores(0.10, 0.70), "q": scores(0.29, 0.99)})  # q margin higher, but fewer points
    assert [r.name for r in ranked] == ["p", "q"] and ranked[1].points == 3


def test_a_score_without_baseline_or_curve_is_refused():
    with pytest.raises(CamError, match="baseline"):
        rank({"a": {"deletion": MetricResult("deletion", 0.1, None, "", False),
                    "insertion": MetricResult("insertion", 0.1, None, "", True)}})
    with pytest.raises(CamError, match="insertion"):
        rank({"a": {"deletion": scores(0.1, 0.7)["deletion"]}})


def test_the_pixel_note_names_pixel_maps_in_the_top_half_only():
    ranked = rank({"saliency": scores(0.05, 0.70), "gradcam": scores(0.20, 0.65), "rise": scores(0.3, 0.5)})
    kinds = {"saliency": "pixel", "gradcam": "cam", "rise": "perturbation"}
    note = pixel_note(ranked, kinds, {"saliency": "Saliency"})
    assert note and note.startswith("Saliency ranks high")
    low = rank({"saliency": scores(0.35, 0.45), "gradcam": scores(0.05, 0.70), "rise": scores(0.2, 0.6)})
    assert pixel_note(low, kinds) is None
