"""Presenter mode on a projector's screen sizes: a link with ``present=1&show=…`` hides the sidebar and every control
the link does not name, enlarges type, and at 1024×768 and 800×600 cuts nothing (no horizontal scroll, every
heading and label fits its box)."""
from __future__ import annotations

import pytest

from tests.e2e.viewport import page_at
from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = pytest.mark.browser

CUT = """() => {
  const doc = document.scrollingElement || document.documentElement;
  const cut = [...document.querySelectorAll('h1, h2, h3, label, [data-testid="stWidgetLabel"] p, [data-testid="stPageLink"] p, [data-testid="stPageLink"] span')]
    .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1).map(e => e.innerText.slice(0, 60));
  const main = document.querySelector('[data-testid="stMain"]');
  return {page: doc.scrollWidth - doc.clientWidth, main: main ? main.scrollWidth - main.clientWidth : 0, cut};
}"""


@pytest.mark.parametrize("size", [(1024, 768), (800, 600)])
def test_presenter_link_shows_only_named_controls_and_cuts_nothing(browser, app_url, screenshot_dir, size):
    with page_at(browser, size[0], size[1], 180_000) as page:
        page.goto(f"{app_url}/walkthrough?present=1&show=wt_temp,wt_row")
        page.get_by_text("Receptive field of").first.wait_for()
        _wait_idle(page)
        assert not page.locator('[data-testid="stSidebar"]').is_visible()
        assert page.evaluate("() => getComputedStyle(document.documentElement).fontSize") == "20px"
        page.get_by_role("slider", name="Temperature T").wait_for(state="visible", timeout=60_000)
        page.get_by_label("Row", exact=True).wait_for(state="visible")
        assert not page.get_by_role("combobox", name="Stage", exact=True).is_visible()
        assert not page.get_by_label("Column", exact=True).is_visible()
        result = page.evaluate(CUT)
        assert result == {"page": 0, "main": 0, "cut": []}, result
        page.goto(f"{app_url}/?present=1&show=alpha")  # another page of the same link: the same rules
        page.get_by_role("slider", name="Overlay alpha").wait_for()
        _wait_idle(page)
        assert not page.locator('[data-testid="stSidebar"]').is_visible()
        result = page.evaluate(CUT)
        assert result == {"page": 0, "main": 0, "cut": []}, result
        page.screenshot(path=str(screenshot_dir / f"presenter-{size[0]}x{size[1]}.png"))
