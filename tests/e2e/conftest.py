"""Browser-test fixtures: a real ``streamlit run serve.py`` on a free loopback port (tests/appserver.py), and
Debian's Chromium. The shared server lives for the whole session and is stopped afterwards.
Tests are skipped, with the reason, when /usr/bin/chromium or Playwright is missing.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appserver import CHROMIUM, CHROMIUM_ARGS, ROOT, serve
from tests.e2e.viewport import page_at

SCREENSHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="session")
def server_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the shared server writes its log (``streamlit-PORT.log``)."""
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="session")
def app_url(server_log_dir: Path) -> Iterator[str]:
    """URL of a CAM Explorer server shared by the session's browser tests."""
    with serve(server_log_dir) as server:
        yield server.url


@pytest.fixture()
def server_log(app_url: str, server_log_dir: Path):
    """A function returning the shared server's log so far (what it printed to stdout and stderr)."""
    def read() -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(server_log_dir.glob("streamlit-*.log")))
    return read


@pytest.fixture()
def fresh_app_url(tmp_path: Path) -> Iterator[str]:
    """URL of a server that has not served any request yet (for first-request behaviour)."""
    with serve(tmp_path) as server:
        yield server.url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (``playwright install`` is never needed)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium: `make browser`)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser: object) -> Iterator[object]:
    """A new 1440×1000 browser page; closed after the test."""
    with page_at(browser, 1440, 1000, 60_000) as pg:
        yield pg


@pytest.fixture()
def screenshot_dir() -> Path:
    """``test-output/screenshots`` (git-ignored), created on demand."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
