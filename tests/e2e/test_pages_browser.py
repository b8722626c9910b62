"""Compare and Learn in Debian's Chromium: they render their content, and the "About" link reaches Learn."""
from __future__ import annotations

import re

import pytest

from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = pytest.mark.browser


def test_compare_shows_three_overlays_with_times(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/compare")
    page.get_by_role("heading", name="Compare").wait_for()
    times = page.locator('[data-testid="stCaptionContainer"]').filter(has_text=re.compile(r"\d m?s · "))
    times.nth(2).wait_for(timeout=120_000)
    _wait_idle(page)
    # Three overlays, and Guided Grad-CAM's signed pixel-space gradient under its overlay.
    images = page.locator('[data-testid="stMainBlockContainer"] [data-testid="stImage"] img')
    images.nth(3).wait_for()
    assert images.count() == 4
    assert page.locator('[data-testid="stAlert"]').filter(has_text="went wrong").count() == 0
    page.set_viewport_size({"width": 1440, "height": 1100})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshot_dir / "compare.png"))


def test_about_link_opens_learn_at_the_picked_method(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/?method=smoothgrad")
    page.get_by_role("link", name="About").click()
    page.wait_for_url("**/learn?**")
    first = page.locator('[data-testid="stMainBlockContainer"] h2').first
    first.wait_for()
    assert first.inner_text().strip() == "SmoothGrad"
    page.locator(".katex").first.wait_for()
    _wait_idle(page)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshot_dir / "learn.png"))


def test_deep_link_on_a_fresh_server_goes_through_the_app(page, fresh_app_url):
    """The first request a server ever gets may be a shared /compare link: it must get the app's
    navigation and wide layout, not Streamlit's v1 ``pages/`` directory mode."""
    page.goto(f"{fresh_app_url}/compare?alpha=0.3")
    page.get_by_role("heading", name="Compare").wait_for(timeout=120_000)
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_text("Inspect", exact=True).wait_for()
    assert nav.get_by_text("app", exact=True).count() == 0
    assert page.get_by_role("slider", name="Overlay alpha").input_value() == "0.3"
