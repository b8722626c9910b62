"""Walkthrough in Debian's Chromium, as a student uses it: open the page, pick a stage, click a position on the feature
map, read the receptive field and the written-out sum for that position, move the temperature and see the top-5."""
from __future__ import annotations

import re

import pytest

from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = pytest.mark.browser

MAP = '[data-testid="stPlotlyChart"] .js-plotly-plot'


def _field_caption(page) -> str:
    return page.locator('[data-testid="stImage"]').filter(has_text="Receptive field of").first.inner_text()


def _click_cell(page, row: int, col: int) -> None:
    """Click the centre of map cell (row, col), found through the figure's own axes."""
    chart = page.locator(MAP).filter(has_text="click a position").first
    chart.scroll_into_view_if_needed()
    x, y = chart.evaluate("""(gd, rc) => {
        const L = gd._fullLayout, area = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [area.left + L.xaxis.d2p(rc[1]), area.top + L.yaxis.d2p(rc[0])];
    }""", [row, col])
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)


def test_pick_a_stage_click_a_position_and_follow_it_to_the_softmax(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/walkthrough")
    page.get_by_role("heading", name="Walkthrough").wait_for()
    page.get_by_text("Receptive field of").first.wait_for(timeout=180_000)
    _wait_idle(page)
    # the first stage: the stem convolution reading the photo, its kernel drawn as an RGB tile
    page.get_by_text("Kernel as an RGB tile").wait_for()

    # pick a deeper stage: the ReLU6 after the second block's batch norm
    page.get_by_role("combobox", name="Stage", exact=True).click()
    page.keyboard.type("blocks.1.0.bn1.act")
    page.get_by_role("option").filter(has_text="blocks.1.0.bn1.act").first.click()
    _wait_idle(page)
    page.get_by_text("ReLU6(", exact=False).first.wait_for()

    _click_cell(page, 10, 20)
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stNumberInput] input')]"
                           ".map(e => e.value).slice(1, 3).join(',') === '10,20'", timeout=60_000)
    _wait_idle(page)
    caption = _field_caption(page)
    assert "Receptive field of (10, 20)" in caption, caption
    rows = re.search(r"rows (\d+)–(\d+), columns (\d+)–(\d+)", caption)
    top, bottom, left, right = (int(v) for v in rows.groups())
    assert top <= 20 <= bottom and left <= 40 <= right  # stride 2 so far: cell (10, 20) sits at input (20, 40)
    # the chain back to the convolution: its sum, the batch norm, the activation with the value marked
    sums = page.locator('[data-testid="stCode"]')
    assert sums.count() >= 2
    assert re.search(r"= -?\d", sums.first.inner_text())
    page.get_by_text("batch norm with its running mean", exact=False).wait_for()

    # the temperature: at T = 0.5 the top class takes more of the probability than at T = 1
    first = page.get_by_text(re.compile(r"probability \d+\.\d+% at T = 1\.")).inner_text()
    p1 = float(re.search(r"probability (\d+\.\d+)%", first).group(1))
    slider = page.get_by_role("slider", name="Temperature T")
    slider.scroll_into_view_if_needed()

    def value() -> float:
        return float(slider.evaluate("e => e.value"))

    for step in (0.9, 0.8, 0.7, 0.6, 0.5):  # one key press a step: a rerun may redraw the slider and drop focus
        for _attempt in range(5):
            if abs(value() - step) < 1e-6:
                break
            slider.focus()
            slider.press("ArrowLeft")
            for _ in range(30):
                page.wait_for_timeout(100)
                if value() < step + 0.05:
                    break
        assert abs(value() - step) < 1e-6, value()
    page.get_by_text(re.compile(r"at T = 0\.5\.")).wait_for(timeout=60_000)
    half = page.get_by_text(re.compile(r"at T = 0\.5\.")).inner_text()
    assert float(re.search(r"probability (\d+\.\d+)%", half).group(1)) > p1
    _wait_idle(page)
    page.set_viewport_size({"width": 1440, "height": 2200})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(screenshot_dir / "walkthrough.png"), full_page=True)
