"""Inspect's "Can I trust this map?" in Debian's Chromium: open under the map, the curves with their verdict
against random maps (by themselves when quick, else on a click), the sanity check, the report."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_trust_section_curves_and_sanity(page, app_url, screenshot_dir):
    page.goto(app_url)
    page.get_by_role("heading", name="Inspect").wait_for()
    page.get_by_text("Method: Grad-CAM", exact=False).wait_for(timeout=120_000)
    _wait_idle(page)

    page.get_by_text("Can I trust this map?", exact=True).wait_for()  # open: nothing to unfold
    steps = page.get_by_role("spinbutton", name="Curve steps")
    steps.fill("6")
    steps.press("Enter")
    # 13 images of its own, plus 8 random maps × 12 until those are kept: quick curves come by themselves,
    # slow ones (a busy machine) wait for a click
    page.get_by_text(re.compile(r"Deletion: (AUC|the map is)")).or_(
        page.get_by_role("button", name=re.compile("Compute deletion and insertion|Compare with random maps"))
    ).first.wait_for(timeout=120_000)
    _wait_idle(page)
    for name in ("Compute deletion and insertion", "Compare with random maps"):
        button = page.get_by_role("button", name=name)
        if button.count():
            button.click()
            _wait_idle(page)
    try:
        page.get_by_text(re.compile(r"Deletion: the map is (better|no better)")).wait_for(timeout=120_000)
    except Exception:
        page.set_viewport_size({"width": 1440, "height": 3000})
        page.screenshot(path=str(screenshot_dir / "trust_failed.png"), full_page=True)  # to see why
        raise
    page.get_by_text(re.compile(r"Insertion: the map is (better|no better)")).wait_for()
    _wait_idle(page)
    page.get_by_role("button", name=re.compile("Run sanity check")).click()
    page.get_by_text(re.compile(r"Sanity check (passed|warning|failed): ")).wait_for(timeout=180_000)
    _wait_idle(page)

    section = page.locator(".st-key-trust_section")
    assert section.locator(".js-plotly-plot").count() == 2  # the curves and the ρ per stage
    page.set_viewport_size({"width": 1440, "height": 2400})
    section.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    section.screenshot(path=str(screenshot_dir / "trust.png"))

    # The HTML report carries what the section shows: the scores, the curve and the verdict.
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile("HTML report")).click()
    report = Path(download.value.path()).read_text(encoding="utf-8")
    assert "Can I trust this map? Faithfulness" in report and "<polyline" in report
    assert re.search(r"<td>deletion</td><td><strong>Deletion: the map is (better|no better) .*random map", report)
    assert "Can I trust this map? Sanity check" in report and "Not run" not in report
    assert "<th>Model input</th>" in report and "<th>Device</th><td>cpu</td>" in report
