"""Inspect end to end in Debian's Chromium: upload a photo, pick Grad-CAM, see the overlay and label, move alpha."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = pytest.mark.browser


def _write_cat(tmp_path: Path) -> Path:
    from skimage import data

    path = tmp_path / "my_cat.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


def _pick(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_upload_gradcam_overlay_and_alpha(page, app_url, tmp_path, screenshot_dir):
    photo = _write_cat(tmp_path)
    page.goto(app_url)
    page.get_by_role("heading", name="Inspect").wait_for()
    page.locator('[data-testid="stSidebar"] input[type="file"]').first.set_input_files(str(photo))
    page.get_by_text("my_cat.png — 451×300").wait_for(timeout=120_000)

    _pick(page, "Method", "Grad-CAM++")
    _wait_idle(page)
    _pick(page, "Method", "Grad-CAM")
    _wait_idle(page)

    headline = page.locator('[data-testid="stMainBlockContainer"] h3').first
    assert re.match(r"(tabby|tiger cat|Persian cat|Siamese cat|Egyptian cat) — \d+\.\d%", headline.inner_text())
    page.get_by_text("Method: Grad-CAM", exact=False).wait_for()
    overlay = page.locator('[data-testid="stImage"]').filter(has_text="Overlay").locator("img")
    overlay.wait_for()
    assert overlay.evaluate("img => img.complete && img.naturalWidth > 0")
    before = overlay.get_attribute("src")

    thumb = page.get_by_role("slider", name="Overlay alpha")
    # One step at a time: each step reruns the view, which may redraw the slider and drop its focus, so a
    # step whose key press was lost is pressed again.
    def value() -> float:  # the range input's live value
        return float(thumb.evaluate("e => e.value"))

    for step in (0.55, 0.60, 0.65):
        for _attempt in range(5):
            if abs(value() - step) < 1e-6:
                break
            thumb.focus()
            thumb.press("ArrowRight")
            for _ in range(30):
                page.wait_for_timeout(100)
                if value() > step - 0.05 + 1e-6:
                    break
        assert abs(value() - step) < 1e-6, value()
    page.get_by_text("0.65", exact=True).wait_for()
    page.wait_for_function("() => new URL(location.href).searchParams.get('alpha') === '0.65'")
    page.wait_for_function("before => { const i = [...document.querySelectorAll('[data-testid=stImage]')]"
                           ".find(e => e.innerText.includes('Overlay')); return i && i.querySelector('img').src !== before }",
                           arg=before)
    _wait_idle(page)
    page.set_viewport_size({"width": 1440, "height": 2000})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(screenshot_dir / "inspect.png"))
