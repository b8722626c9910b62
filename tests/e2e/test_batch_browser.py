"""Batch end to end in Debian's Chromium (two good photos and one broken file: two overlays, one error),
plus screenshots of the Layers, Occlusion and Invariance pages for the user guide."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from PIL import Image

from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = pytest.mark.browser


def _files(tmp_path: Path) -> list[str]:
    from skimage import data

    cat, cup, broken = tmp_path / "chelsea.png", tmp_path / "coffee.png", tmp_path / "broken.jpg"
    Image.fromarray(data.chelsea()).save(cat)
    Image.fromarray(data.coffee()).save(cup)
    broken.write_text("this is a text file, not a JPEG\n")
    return [str(cat), str(cup), str(broken)]


def _full_page(page, path: Path) -> None:
    page.wait_for_timeout(1500)  # let Plotly finish drawing
    page.screenshot(path=str(path), full_page=True)


def test_batch_with_one_broken_file(page, app_url, tmp_path, screenshot_dir):
    page.goto(f"{app_url}/batch")
    page.get_by_role("heading", name="Batch").wait_for()
    _wait_idle(page)
    page.locator('[data-testid="stMain"] input[type="file"]').first.set_input_files(_files(tmp_path))
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("broken.jpg: ", exact=False).last.wait_for(timeout=180_000)
    _wait_idle(page)
    errors = main.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 1 and "broken.jpg: not an image" in errors.first.inner_text()
    tiles = main.locator('[data-testid="stImage"] img')
    assert tiles.count() == 2
    assert all(tiles.nth(i).evaluate("img => img.complete && img.naturalWidth > 0") for i in range(2))
    assert main.get_by_text("espresso", exact=False).count() >= 1
    assert main.get_by_role("button", name="Overlays ZIP (2 PNG)").count() == 1
    _full_page(page, screenshot_dir / "batch.png")


@pytest.mark.parametrize("path,heading,ready,height", [
    ("layers", "Layers", "Deconvnet projection to pixel space", 2300),
    ("occlusion", "Occlusion explorer", "positions (patch", 1500),
    ("invariance", "Invariance", "Some of the transformed photos", 1100),
])
def test_page_screenshot(page, app_url, screenshot_dir, path, heading, ready, height):
    page.set_viewport_size({"width": 1440, "height": height})
    page.goto(f"{app_url}/{path}")
    page.get_by_role("heading", name=heading).wait_for()
    page.get_by_text(ready, exact=False).first.wait_for(timeout=300_000)
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stMain"] [data-testid="stAlertContentError"]').count() == 0
    _full_page(page, screenshot_dir / f"{path}.png")


_MOVED = ("before => ![...document.querySelectorAll('[data-testid=stImage]')].some(e => e.innerText.includes(before))"
          " || document.querySelector('[data-testid=stStatusWidget]') !== null")


def _click_cell(page, fx: float, fy: float, before: str) -> bool:
    """Hover a cell of the probability map until Plotly shows its tooltip (the chart is wired), then click it.
    True when, within 20 s, the app started a run or the caption changed (the click reached the app)."""
    plot = page.locator('[data-testid="stPlotlyChart"]').first.locator(".nsewdrag").first  # the plotting area
    plot.wait_for(state="visible")
    for _ in range(10):  # measured right before the click: the layout above may have settled since
        box = plot.bounding_box()
        x, y = box["x"] + box["width"] * fx, box["y"] + box["height"] * fy
        page.mouse.move(x - 3, y - 3)
        page.mouse.move(x, y)
        try:
            page.locator(".hoverlayer .hovertext").first.wait_for(state="attached", timeout=3_000)
            break
        except PlaywrightTimeout:
            continue
    page.mouse.click(x, y)
    try:
        page.wait_for_function(_MOVED, arg=before, timeout=20_000, polling=50)
        return True
    except PlaywrightTimeout:
        return False


def test_occlusion_click_on_the_map_moves_the_patch(page, app_url, screenshot_dir):
    page.set_viewport_size({"width": 1440, "height": 1500})
    page.goto(f"{app_url}/occlusion")
    page.get_by_text("positions (patch", exact=False).first.wait_for(timeout=300_000)
    _wait_idle(page)
    before = page.get_by_text(re.compile(r"Patch \d+px at x ")).first.inner_text()
    moved = "before => ![...document.querySelectorAll('[data-testid=stImage]')].some(e => e.innerText.includes(before))"
    # A click that lands while Plotly is still wiring a freshly drawn chart is lost, as a person's would be; they
    # click again, on another cell (clicking a selected cell again would unselect it). Three cells at most.
    for fx, fy in ((0.2, 0.25), (0.15, 0.4), (0.25, 0.6)):
        if _click_cell(page, fx, fy, before):
            break
    try:
        page.wait_for_function(moved, arg=before, timeout=120_000)
    except PlaywrightTimeout:
        page.screenshot(path=str(screenshot_dir / "occlusion-click-failed.png"), full_page=True)
        raise
    _wait_idle(page)
    after = page.get_by_text(re.compile(r"Patch \d+px at x ")).first.inner_text()
    x_before, x_after = (int(re.search(r"at x (\d+),", t).group(1)) for t in (before, after))
    assert x_after < x_before  # clicked left of the centre


_PROGRESS_AND_TILES = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    if (!main || !main.querySelector('[data-testid="stProgress"]')) return null;
    return {tiles: main.querySelectorAll('[data-testid="stImage"]').length, text: main.innerText};
}"""


def test_a_new_method_replaces_the_old_gallery_while_it_runs(page, app_url, tmp_path):
    """Grad-CAM's overlays shown, the person picks Score-CAM: while its progress bar runs, no overlay of the
    previous method is on screen (Streamlit kept them greyed under the bar, captioned with the old method)."""
    page.goto(f"{app_url}/batch")
    page.get_by_role("heading", name="Batch").wait_for()
    _wait_idle(page)
    page.locator('[data-testid="stMain"] input[type="file"]').first.set_input_files(_files(tmp_path)[:2])
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("Grad-CAM at ", exact=False).first.wait_for(timeout=180_000)
    _wait_idle(page)
    assert main.locator('[data-testid="stImage"]').count() == 2
    page.get_by_role("combobox", name="Method", exact=True).click()
    page.get_by_role("option", name="Score-CAM", exact=True).click()
    during = page.wait_for_function(_PROGRESS_AND_TILES, timeout=120_000, polling="raf").json_value()
    assert during["tiles"] == 0, during["text"][:400]
    main.get_by_text("Score-CAM at ", exact=False).first.wait_for(timeout=300_000)
    _wait_idle(page)
    assert main.locator('[data-testid="stImage"]').count() == 2
