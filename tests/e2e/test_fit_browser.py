"""The screen fits at 1024×768 and 800×900 in Debian's Chromium: no label, toggle, link or caption is cut
(an element that clips its text has scrollWidth > clientWidth, a menu's value included) on Inspect, with the
default layer and with the longest layer name of the embedded model, on Compare with long methods, and on every
other page as it opens."""
from __future__ import annotations

import pytest

from tests.e2e.viewport import page_at
from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIZES = [(1024, 768), (800, 900)]
#: Text that a page clips: any visible element of the main area or sidebar hiding overflow (or ending in an
#: ellipsis) whose content is wider than its box; plots, images and code are left out (they scroll or scale), and
#: KaTeX's MathML copy of a formula (for screen readers, clipped to 1 px by design).
CUT = """() => {
  const out = [];
  for (const e of document.querySelectorAll('[data-testid="stMain"] *, [data-testid="stSidebar"] *')) {
    if (!e.offsetParent || e.closest('.js-plotly-plot, [data-testid="stImage"], pre, [data-testid="stDataFrame"], [data-testid="stSidebarNav"], .katex-mathml')) continue;
    const cs = getComputedStyle(e);
    const clips = cs.textOverflow === 'ellipsis' || cs.overflowX === 'hidden' || cs.overflowX === 'clip';
    const text = (e.tagName === 'INPUT' ? e.value : e.innerText || '').trim();  // a menu's value is an input's
    if (clips && text && e.scrollWidth > e.clientWidth + 1) out.push(text.slice(0, 80));
  }
  return out;
}"""


def _assert_nothing_cut(page, screenshot_dir, name: str, width: int, height: int) -> None:
    """Once the page is idle: a screenshot, then no element's text wider than its box."""
    _wait_idle(page)
    cut = page.evaluate(CUT)
    page.screenshot(path=str(screenshot_dir / f"fit_{name}_{width}x{height}.png"))
    assert not cut, f"{name} at {width}×{height}: cut {cut}"


@pytest.mark.parametrize("width, height", SIZES)
def test_nothing_is_cut_on_inspect_and_compare(browser, app_url, screenshot_dir, width, height):
    with page_at(browser, width, height, 120_000) as page:
        page.goto(app_url)
        page.get_by_text("Method: Grad-CAM", exact=False).wait_for()
        # The trust section's final state: its button (a slow machine: the verdict waits for a click) or, where
        # deletion, insertion and the random maps are quick enough to run by themselves, the last verdict.
        page.locator(".st-key-trust_metrics button").or_(
            page.locator(".st-key-trust_section").get_by_text("Insertion: the map is")).first.wait_for()
        _assert_nothing_cut(page, screenshot_dir, "inspect", width, height)
        # The embedded model's longest layer entry ("stage 1 · 112×144 │ blocks.0.0 · DepthwiseSeparableConv, 16 ch")
        page.goto(f"{app_url}/?layer=blocks.0.0")
        page.get_by_text("Method: Grad-CAM", exact=False).wait_for()
        _assert_nothing_cut(page, screenshot_dir, "inspect_layer", width, height)
        page.goto(f"{app_url}/compare?compare_methods=gradcam,occlusion,scorecam,smoothgradcam%2B%2B")
        page.get_by_text("Run Score-CAM", exact=False).wait_for()
        _assert_nothing_cut(page, screenshot_dir, "compare", width, height)


#: Every page but Inspect and Compare (above), as a person first opens it.
OTHER_PAGES = ("layers", "occlusion", "invariance", "batch", "audit", "walkthrough", "evolution", "learn")


@pytest.mark.parametrize("width, height", SIZES)
def test_nothing_is_cut_on_any_other_page(browser, app_url, screenshot_dir, width, height):
    with page_at(browser, width, height, 120_000) as page:
        for name in OTHER_PAGES:
            page.goto(f"{app_url}/{name}")
            page.locator('[data-testid="stMain"] h1').first.wait_for()
            _assert_nothing_cut(page, screenshot_dir, name, width, height)


#: Widths of the Layers page's top-N channel tiles (captioned "ch N · mean …").
TILE_WIDTHS = """() => [...document.querySelectorAll('[data-testid="stImage"]')]
  .filter(e => /^ch \\d+ · mean/.test(e.innerText.trim()))
  .map(e => e.getBoundingClientRect().width)"""


@pytest.mark.parametrize("width, height", [(1440, 1000), (1024, 768)])
def test_every_layers_tile_has_the_same_width(browser, app_url, screenshot_dir, width, height):
    """A row of tiles that wrapped used to leave its last tile alone on a row, stretched to the page's width."""
    with page_at(browser, width, height, 120_000) as page:
        page.goto(f"{app_url}/layers?layers_top_n=16")
        page.get_by_text("ch ", exact=False).first.wait_for()
        _wait_idle(page)
        widths = page.evaluate(TILE_WIDTHS)
        page.screenshot(path=str(screenshot_dir / f"fit_layers_{width}x{height}.png"))
        assert len(widths) == 16, widths
        assert max(widths) < 1.1 * min(widths), f"Layers at {width}×{height}: tile widths {widths}"
