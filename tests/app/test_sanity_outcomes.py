"""The sanity check's three outcomes on screen: one Streamlit element kind each, the reason in it, and
thumbnails at the photo's aspect ratio. Results are hand-built ``SanityResult`` values (the engine's own
outcomes are tested in tests/cam_core/test_sanity.py)."""
from __future__ import annotations

import numpy as np
import pytest

REASONS = {
    "passed": "the map changed as soon as the model's weights were randomized and differs from the map for "
              "another class ('lynx' (287)), so it depends on what the model learned and on the class",
    "warning": "the map changes when the model's weights are randomized, but the map for 'lynx' (287) looks like "
               "the map for 'tabby' (281) (ρ=0.75), so it barely depends on the class asked for",
    "failed": "the map hardly changed when every layer of the model was replaced by random weights, so it shows "
              "the image itself rather than what the model learned",
}


def _result(outcome: str, reason: str):
    from cam_core.sanity import SanityResult, StageResult

    heat = np.linspace(0, 1, 48 * 64).reshape(48, 64)
    stage = StageResult("head", ("classifier",), 0.2, 0.1, 0.0, heat[::-1].copy(), False)
    return SanityResult(method="gradcam", layer="features", class_idx=281, mode="cascading", seed=0,
                        original=heat, edge_rho=0.0, stages=[stage], random_class=287, random_class_rho=0.75,
                        random_class_ssim=0.5, random_class_heatmap=heat, outcome=outcome, reason=reason,
                        verdict="v", class_verdict="c", elapsed_ms=1.0, class_name="'tabby' (281)",
                        random_class_name="'lynx' (287)")


def _script(result) -> None:
    from ui.trust import sanity_banner

    sanity_banner(result)


@pytest.mark.parametrize("outcome, kind", [("passed", "success"), ("warning", "warning"), ("failed", "error")])
def test_each_outcome_has_its_own_element_kind_and_says_why(outcome, kind):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_script, args=(_result(outcome, REASONS[outcome]),), default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = {k: [e.value for e in getattr(at, k)] for k in ("success", "warning", "error", "info")}
    assert [k for k, v in shown.items() if v] == [kind]  # exactly one box, of the outcome's kind
    (text,) = shown[kind]
    assert text.startswith(f"Sanity check {outcome}: ")
    plain = text.replace("\\", "")  # the reason is escaped as Markdown
    assert REASONS[outcome] in plain and "class 28" not in plain  # classes by label, the whole sentence


@pytest.mark.parametrize("size", [(300, 400), (640, 360), (100, 100)])
def test_thumbnails_keep_the_photos_aspect_ratio(size):
    from ui.trust import sanity_thumbnails

    images, captions = sanity_thumbnails(_result("passed", "r"), "jet", size, side=120)
    assert captions == ["original", "head (ρ=0.20)"]
    w, h = size
    for img in images:
        assert max(img.shape[:2]) == 120 and img.shape[2] == 3
        assert img.shape[1] / img.shape[0] == pytest.approx(w / h, rel=0.02)
