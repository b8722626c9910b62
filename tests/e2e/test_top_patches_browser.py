"""Layers' "Top patches over a set" in Debian's Chromium, as a teacher uses it: open Layers on an audit (made by the
CLI at 64 px on four skimage photos inside the server's audits folder), pick a layer, compute the patches with one
click and see each shown as a crop beside its projection with the image's name and activation; after a reload
they are read back at once (no button)."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from PIL import Image
from skimage import data

from tests.appserver import serve
from tests.e2e.waits import wait_idle

pytestmark = pytest.mark.browser
MAIN = '[data-testid="stMain"]'
CAPTION = re.compile(r"^\w+\.png · -?[\d.e+-]+$")


@pytest.fixture(scope="module")
def audit_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from cam_explorer.cli import main

    root = tmp_path_factory.mktemp("audits")
    photos = root / "photos"
    photos.mkdir()
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        Image.fromarray(getattr(data, name)()).resize((64, 64)).save(photos / f"{name}.png")
    assert main(["audit", str(photos), "--method", "gradcam", "--out", str(root / "lite"), "--input-size", "64",
                 "--device", "cpu"]) == 0
    before = os.environ.get("CAM_EXPLORER_AUDITS")
    os.environ["CAM_EXPLORER_AUDITS"] = str(root)  # the server process inherits it
    try:
        with serve(tmp_path_factory.mktemp("patches-server")) as server:
            yield server.url
    finally:
        if before is None:
            os.environ.pop("CAM_EXPLORER_AUDITS", None)
        else:
            os.environ["CAM_EXPLORER_AUDITS"] = before


def _patch_captions(page) -> list[str]:
    texts = page.locator(f'{MAIN} [data-testid="stImageCaption"]').all_inner_texts()
    return [t.strip() for t in texts if CAPTION.match(t.strip())]


def test_compute_then_read_back(page, audit_url, screenshot_dir):
    page.goto(f"{audit_url}/layers?audit=lite")
    main = page.locator(MAIN)
    main.get_by_text("Top patches over a set").wait_for(timeout=180_000)
    wait_idle(page)
    main.get_by_role("combobox", name="Layer", exact=True).click()
    page.keyboard.type("blocks.2.1")
    page.get_by_role("option", name="│ blocks.2.1 ·", exact=False).first.click()
    wait_idle(page)
    button = main.get_by_role("button", name=re.compile("Compute them over the audit's 4 images"))
    button.click()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stImageCaption]')]"
                           ".some(e => /\\.png · /.test(e.innerText))", timeout=240_000)
    wait_idle(page)
    shown = _patch_captions(page)
    assert len(shown) == 4 and {s.split(" · ")[0] for s in shown} == {"chelsea.png", "coffee.png", "astronaut.png",
                                                                       "rocket.png"}
    values = [float(s.split(" · ")[1]) for s in shown]
    assert values == sorted(values, reverse=True)  # strongest first
    main.get_by_text("Top patches over a set").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "top_patches.png"), full_page=False)
    page.reload()  # a later visit: read from the audit folder at once
    main.get_by_text("Top patches over a set").wait_for(timeout=180_000)
    wait_idle(page)
    assert not main.get_by_role("button", name=re.compile("Compute them")).count()
    assert _patch_captions(page) == shown
