"""cam_core.report with the trust results: scores, curves (SVG points and a table) and the sanity verdict —
only for what was computed."""
from __future__ import annotations

import re

import numpy as np
from PIL import Image

from cam_core.metrics import Curve, MetricResult
from cam_core.report import build_report, curves_svg
from cam_core.sanity import SanityResult, StageResult


def _metric(name: str, y: list[float], higher: bool) -> MetricResult:
    x = np.linspace(0.0, 1.0, len(y))
    return MetricResult(name=name, score=float(np.trapezoid(y, x)), curve=Curve(x, np.array(y), "fraction", "prob"),
                        explanation=f"{name} explained <plainly>", higher_is_better=higher, class_idx=3)


def _sanity() -> SanityResult:
    heat = np.zeros((4, 4), np.float32)
    stages = [StageResult("head", ("head",), 0.1234, 0.2, 0.0, heat, False),
              StageResult("body", ("body",), float("nan"), 0.0, 0.0, heat, True)]
    return SanityResult(method="gradcam", layer="l", class_idx=3, mode="cascading", seed=0, original=heat,
                        edge_rho=0.0, stages=stages, random_class=1, random_class_rho=0.1, random_class_ssim=0.1,
                        random_class_heatmap=heat, outcome="passed", reason="the map changed",
                        verdict="passed: it changed",
                        class_verdict="class check: differs", elapsed_ms=1.0)


def _report(**kw) -> str:
    img = Image.new("RGB", (8, 6), "white")
    return build_report(original=img, overlay=img, image_name="a.png", model="m", method="Grad-CAM", layer="l",
                        class_idx=3, class_label="cat", params={}, top=[], **kw)


def test_what_was_not_computed_is_said_not_run():
    page = _report()
    assert "<h2>Can I trust this map? Faithfulness</h2>" in page and "<h2>Can I trust this map? Sanity check</h2>" in page
    assert page.count("<strong>Not run</strong>") == 2 and "<svg" not in page


def test_input_size_device_and_the_unsure_warning():
    page = _report(input_size=(224, 352), device="cuda:0",
                   warnings=["The model is unsure: top class <tabby> at 3%"])
    assert "<tr><th>Model input</th><td>352×224 pixels (width×height)</td></tr>" in page
    assert "<tr><th>Device</th><td>cuda:0</td></tr>" in page
    assert '<p class="warning">The model is unsure: top class &lt;tabby&gt; at 3%</p>' in page
    assert page.index('class="warning"') < page.index("<h2>What was explained</h2>")


def test_curves_of_a_class_at_three_percent_fill_the_frame():
    # y from 0.01 to 0.03: the axis is fitted (at least 0.05 tall, centred): -0.005 … 0.045, frame 32 … 188
    svg = curves_svg({"deletion": ([0, 0.5, 1], [0.03, 0.02, 0.01])}, "x", "p")
    assert 'points="32.0,78.8 210.0,110.0 388.0,141.2"' in svg
    assert ">0.045</text>" in svg and ">-0.005</text>" in svg


def test_scores_curves_and_verdict():
    deletion = _metric("deletion", [1.0, 0.5, 0.0], higher=False)
    insertion = _metric("insertion", [0.0, 0.25, 1.0], higher=True)
    page = _report(metrics={"deletion": deletion, "insertion": insertion}, sanity=_sanity())
    # AUCs by hand (trapezoids): deletion (1+.5)/4 + (.5+0)/4 = .5; insertion (0+.25)/4 + (.25+1)/4 = .375
    assert ("<td>deletion</td><td><strong>Deletion: AUC 0.500, lower is better (not compared with random maps)."
            "</strong></td><td>0.5000</td><td>lower</td>") in page
    assert "<td>0.3750</td><td>higher</td>" in page
    assert "deletion explained &lt;plainly&gt;" in page  # escaped
    # the curve's points, in the table and in the SVG (x from 32 to 388, y from 188 (0) to 32 (1))
    assert "<tr><td>0.500</td><td>0.5000</td><td>0.2500</td></tr>" in page
    polylines = re.findall(r'<polyline[^>]*points="([^"]+)"', page)
    # y fitted: 0 … 1 padded by 5 %: -0.05 … 1.05 on 188 … 32
    assert polylines[0] == "32.0,39.1 210.0,110.0 388.0,180.9"
    assert polylines[1] == "32.0,180.9 210.0,145.5 388.0,39.1"
    assert "<strong>Sanity check passed</strong>: the map changed." in page
    assert "In figures: passed: it changed; class check: differs." in page
    assert "<td>head</td><td>0.123</td>" in page and "<td>body</td><td>— (blank map)</td>" in page


def test_the_verdict_against_random_maps_comes_first():
    from cam_core.metrics import BaselineScores
    from cam_core.metrics.baseline import verdict

    deletion = _metric("deletion", [1.0, 0.5, 0.0], higher=False)  # AUC 0.5
    deletion.baseline = BaselineScores((0.6, 0.7, 0.8), 0)
    deletion.verdict = verdict(deletion.score, deletion.baseline, False)
    page = _report(metrics={"deletion": deletion})
    assert ("<td><strong>Deletion: the map is better than all 3 random maps (random: 0.700 ± 0.100); AUC 0.500, "
            "lower is better.</strong></td>") in page


def test_only_the_sanity_check():
    page = _report(sanity=_sanity())
    assert "<strong>Sanity check passed</strong>" in page and "<svg" not in page
    assert page.count("<strong>Not run</strong>") == 1


def test_svg_is_standalone():
    svg = curves_svg({"a": ([0, 1], [2.0, -1.0])}, "x", "y")  # fitted: -1.15 … 2.15
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "script" not in svg
    assert 'points="32.0,39.1 388.0,180.9"' in svg
