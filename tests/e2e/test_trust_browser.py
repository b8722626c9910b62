"""Inspect's "Can I trust this map?" in Debian's Chromium: open it, compute the curves, run the sanity check."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _wait_idle(page) -> None:
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=180_000)


def test_trust_section_curves_and_sanity(page, app_url, screenshot_dir):
    page.goto(app_url)
    page.get_by_role("heading", name="Inspect").wait_for()
    page.get_by_text("Method: Grad-CAM", exact=False).wait_for(timeout=120_000)
    _wait_idle(page)

    page.get_by_text("Can I trust this map?", exact=True).click()
    steps = page.get_by_role("spinbutton", name="Curve steps")
    steps.fill("6")
    steps.press("Enter")
    page.get_by_text("Expected: 13 model runs", exact=False).first.wait_for()  # the new steps reached the server
    _wait_idle(page)
    page.get_by_role("button", name=re.compile("Compute deletion and insertion")).click()
    try:
        page.get_by_text(re.compile(r"Deletion AUC: 0\.\d{3}")).wait_for(timeout=60_000)
    except Exception:
        page.set_viewport_size({"width": 1440, "height": 3000})
        page.screenshot(path=str(screenshot_dir / "trust_failed.png"), full_page=True)  # to see why
        raise
    page.get_by_text(re.compile(r"Insertion AUC: 0\.\d{3}")).wait_for()
    _wait_idle(page)
    page.get_by_role("button", name=re.compile("Run sanity check")).click()
    page.get_by_text(re.compile(r"Sanity check (passed|failed)")).wait_for(timeout=180_000)
    _wait_idle(page)

    section = page.locator('[data-testid="stExpander"]').filter(has_text="Can I trust this map?")
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
    assert re.search(r"<td>deletion</td><td>0\.\d{4}</td>", report)
    assert "Can I trust this map? Sanity check" in report
