"""How maps look, as a person sees them in Debian's Chromium: readable pixel-space maps with a legend and
the display scale shown, a signed view, deconvnet's checkerboard explained, a Compare grid without holes
and with full names, the Occlusion page's registry defaults, maps reaching the edges, legends under
equal-size plots, and a layer list grouped by stage. Screenshots go to test-output/screenshots/.
"""
from __future__ import annotations

import re

import io

import numpy as np
import pytest
from PIL import Image

from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = pytest.mark.browser

MAIN = '[data-testid="stMainBlockContainer"]'


def _pick(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _panel_pixels(page, caption: str) -> np.ndarray:
    """The image above ``caption`` on the page, fetched as the browser got it (RGB array)."""
    img = page.locator('[data-testid="stImage"]').filter(has_text=caption).locator("img").first
    img.wait_for()
    src = img.get_attribute("src")
    body = page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def _dark_blue_share(rgb: np.ndarray) -> float:
    """Share of pixels at jet's low end (dark blue: little red/green, blue ≥ 100)."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return float(((r < 40) & (g < 40) & (b >= 100)).mean())


def test_saliency_is_readable_with_legend_and_signed_view(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/?method=saliency&cmap=jet")
    page.get_by_role("heading", name="Inspect").wait_for()
    legend = page.locator(".cam-legend").first
    legend.wait_for(timeout=180_000)
    _wait_idle(page)
    text = legend.inner_text()
    # the legend says what red means and for which class, and how the map was scaled
    assert "red = strongest evidence for " in text and "dark blue = none" in text
    assert "99th percentile" in text
    heat = _panel_pixels(page, "Heat map")
    assert _dark_blue_share(heat) < 0.6, "the saliency map is still almost uniformly dark blue"
    page.set_viewport_size({"width": 1440, "height": 1300})
    page.wait_for_timeout(800)
    page.screenshot(path=str(screenshot_dir / "display_saliency_p99.png"))

    # the maximum, as before: most of the map goes dark blue (this is what the percentile fixes)
    _pick(page, "Display scale", "max")
    page.locator(".cam-legend").filter(has_text="scaled to its maximum").wait_for()
    _wait_idle(page)
    assert _dark_blue_share(_panel_pixels(page, "Heat map")) > _dark_blue_share(heat)

    _pick(page, "Display scale", "99th percentile")
    page.get_by_text("Signed", exact=True).click()
    signed = page.locator(".cam-legend").filter(has_text="evidence against")
    signed.wait_for()
    _wait_idle(page)
    assert "centred on zero" in signed.inner_text() and signed.inner_text().startswith("red = evidence for")
    page.screenshot(path=str(screenshot_dir / "display_saliency_signed.png"))
    page.get_by_text("Signed", exact=True).click()  # back to unsigned for the next tests
    _wait_idle(page)


def test_deconvnet_checkerboard_is_explained_where_it_appears(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/?method=deconvnet")
    note = page.locator('[data-testid="stAlert"]').filter(has_text="strided convolutions")
    note.wait_for(timeout=180_000)
    _wait_idle(page)
    page.set_viewport_size({"width": 1440, "height": 1300})
    page.wait_for_timeout(800)
    page.screenshot(path=str(screenshot_dir / "display_deconvnet_note.png"))
    # guided backprop has no checkerboard: no note
    _pick(page, "Method", "Guided backprop")
    page.wait_for_function("() => new URL(location.href).searchParams.get('method') === 'guided_backprop'")
    page.get_by_text("Method: Guided backprop", exact=False).wait_for(timeout=180_000)
    _wait_idle(page)
    assert page.locator('[data-testid="stAlert"]').filter(has_text="strided convolutions").count() == 0


def test_top5_chart_marks_a_chosen_class_outside_it(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/?class=1")  # goldfish: far from the cat's top-5
    chart = page.locator(MAIN + " .js-plotly-plot").first
    chart.wait_for(timeout=180_000)
    page.get_by_text("not in top 5").first.wait_for()
    _wait_idle(page)
    page.screenshot(path=str(screenshot_dir / "display_top5_outside.png"))


def test_compare_grid_has_no_holes_and_full_names(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/compare")
    page.get_by_role("heading", name="Compare").wait_for()
    page.locator('[data-testid="stCaptionContainer"]').filter(has_text=re.compile(r"\d m?s · ")).nth(2).wait_for(timeout=180_000)
    _wait_idle(page)
    # add a fourth method with a long name from the multiselect
    page.get_by_role("combobox", name="Methods").click()
    page.get_by_role("option", name="Guided backprop", exact=True).click()
    page.keyboard.press("Escape")
    page.locator('[data-testid="stCaptionContainer"]').filter(has_text=re.compile(r"\d m?s · ")).nth(3).wait_for(timeout=180_000)
    _wait_idle(page)
    chips = page.locator('[data-testid="stMultiSelect"] div:not(template) > [data-testid="stMultiSelectTagsContainer"] '
                         '[data-tag] > span')
    names = [chips.nth(i).inner_text().strip() for i in range(chips.count())]
    assert names == ["Grad-CAM", "Grad-CAM++", "Guided Grad-CAM", "Guided backprop"], names
    for i in range(chips.count()):  # nothing cut with an ellipsis
        assert chips.nth(i).evaluate("e => e.scrollWidth <= e.clientWidth + 1"), names[i]
    # the first row: four overlays of one size at one height (no tile taller than the others, no hole)
    boxes = [page.locator(MAIN + ' [data-testid="stImage"] img').nth(i).bounding_box() for i in range(4)]
    assert len({round(b["y"]) for b in boxes}) == 1
    assert max(b["height"] for b in boxes) - min(b["height"] for b in boxes) <= 1
    assert max(b["width"] for b in boxes) - min(b["width"] for b in boxes) <= 1
    page.locator(".cam-legend").first.wait_for()
    page.set_viewport_size({"width": 1440, "height": 1400})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshot_dir / "compare_grid.png"))


def test_layers_list_is_grouped_by_stage_without_no_ops(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/layers")
    page.get_by_role("heading", name="Layers").wait_for()
    box = page.get_by_role("combobox", name="Layer", exact=True)
    box.wait_for(timeout=180_000)
    _wait_idle(page)
    box.click()
    options = page.get_by_role("option")
    options.first.wait_for()
    texts = [options.nth(i).inner_text() for i in range(min(options.count(), 12))]
    assert texts[0].startswith("stage 1 · ")
    assert not any("Identity" in t or "Sequential" in t or ".aa " in t or ".se " in t for t in texts)
    page.screenshot(path=str(screenshot_dir / "layers_grouped_list.png"))
    page.keyboard.press("Escape")


def test_occlusion_defaults_edges_legends_and_equal_plots(page, app_url, screenshot_dir):
    from cam_core.registry import get_method

    params = get_method("occlusion").params
    page.goto(f"{app_url}/occlusion")
    page.get_by_role("heading", name="Occlusion explorer").wait_for()
    page.get_by_text("positions (patch").wait_for(timeout=300_000)
    _wait_idle(page)
    page.wait_for_timeout(1000)  # the fine pass's plots replace the coarse ones
    # the registry's defaults (the same as Inspect's): patch, stride and the dataset-mean fill
    assert page.get_by_role("slider", name="Patch size (input px)").input_value() == str(params["patch"].default)
    assert page.get_by_role("slider", name="Stride (input px)").input_value() == str(params["stride"].default)
    assert params["fill"].default == 0.0
    fill = page.locator('[data-testid="stSelectbox"]').filter(has_text="Fill")
    assert "dataset mean" in fill.evaluate("e => (e.querySelector('input') || {}).value || e.innerText")
    plots = page.locator(MAIN + " .js-plotly-plot")
    plots.nth(1).wait_for()
    # the cells reach the photo's edges: first edge 0, last edge the photo's width/height
    xs, ys, width, height = plots.nth(0).evaluate(
        "g => [Array.from(g._fullData[0].x), Array.from(g._fullData[0].y), g.layout.xaxis.range[1], "
        "g.layout.yaxis.range[0]]")
    assert xs[0] == 0 and abs(xs[-1] - width) < 1e-6 and ys[0] == 0 and abs(ys[-1] - height) < 1e-6
    # equal plot areas, and each legend below its own plot, overlapping neither
    areas = [plots.nth(i).locator(".nsewdrag").first.bounding_box() for i in range(2)]
    assert abs(areas[0]["width"] - areas[1]["width"]) <= 1 and abs(areas[0]["height"] - areas[1]["height"]) <= 1
    legends = page.locator(".cam-legend")
    for i in range(2):
        lb, pb = legends.nth(i).bounding_box(), plots.nth(i).bounding_box()
        assert lb["y"] >= pb["y"] + pb["height"] - 1
        other = plots.nth(1 - i).bounding_box()
        assert lb["x"] + lb["width"] <= other["x"] + 1 or lb["x"] >= other["x"] + other["width"] - 1
    assert "wins:" in legends.nth(1).inner_text()
    page.set_viewport_size({"width": 1440, "height": 1300})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshot_dir / "occlusion_page.png"))
