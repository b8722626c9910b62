"""The Audit page in Debian's Chromium, as a person uses it: open an audit, filter to the incorrect images and see
the gallery change; a link naming a folder outside the audits folder shows a message and nothing of it. The
server gets its own audits folder holding the hand-made sample audit (tests/audit_sample.py)."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import audit_sample
from tests.appserver import serve
from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def audit_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("audits")
    audit_sample.build(root / "run1")
    (root.parent / "secret").mkdir(exist_ok=True)
    before = os.environ.get("CAM_EXPLORER_AUDITS")
    os.environ["CAM_EXPLORER_AUDITS"] = str(root)  # the server process inherits it
    try:
        with serve(tmp_path_factory.mktemp("audit-server")) as server:
            yield server.url
    finally:
        if before is None:
            os.environ.pop("CAM_EXPLORER_AUDITS", None)
        else:
            os.environ["CAM_EXPLORER_AUDITS"] = before


def _tiles(main) -> list[str]:
    """The gallery's image names, in order (each tile's caption starts with it)."""
    captions = main.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
    return [c.split(" ·")[0].strip() for c in captions if c.strip().split(" ·")[0].endswith(".png")]


def test_open_filter_to_incorrect(page, audit_url, screenshot_dir):
    page.goto(f"{audit_url}/audit?audit=run1")
    page.get_by_role("heading", name="Audit").wait_for()
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("6 images match").wait_for(timeout=180_000)
    _wait_idle(page)
    assert main.get_by_text("50.0%").count() >= 1  # top-1: 3 of 6
    assert _tiles(main) == ["d.png", "a.png", "b.png", "c.png", "e.png", "f.png"]
    main.locator('[data-testid="stImage"] img').nth(5).wait_for(timeout=120_000)  # the gallery draws after the count
    outcome = main.locator("[data-testid='stButtonGroup'] button").filter(has_text=re.compile(r"^\s*incorrect\s*$"))
    outcome.click()
    main.get_by_text("3 images match").wait_for()
    _wait_idle(page)
    assert _tiles(main) == ["d.png", "b.png", "f.png"]
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshot_dir / "audit.png"), full_page=True)
    # the surest mistake, opened in Inspect: its photo is the session's, with the audit's method
    main.get_by_role("button", name="Open in Inspect").first.click()
    page.get_by_role("heading", name="Inspect").wait_for(timeout=120_000)
    page.locator('[data-testid="stSidebar"]').get_by_text("d.png — 48×40").wait_for(timeout=120_000)
    assert "method=gradcam" in page.url


def test_hostile_name_in_the_link(page, audit_url):
    page.goto(f"{audit_url}/audit?audit=..%2Fsecret")
    page.get_by_role("heading", name="Audit").wait_for()
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("'..' is not allowed").wait_for(timeout=120_000)
    _wait_idle(page)
    assert main.get_by_text("images match").count() == 0
