"""Offline and quiet, as seen from the browser: every request a page makes goes to the app's own server
(the favicon and every asset are local), and nothing answers 4xx/5xx other than Streamlit's own
deep-link probe (see ``test_deep_links_probe_their_own_path_first``).
"""
from __future__ import annotations

from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

PAGES = ["", "compare", "layers", "invariance", "batch", "learn"]


def _wait_idle(page) -> None:
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=180_000)


def _record(page) -> tuple[list[str], list[tuple[object, str]]]:
    requests: list[str] = []
    problems: list[tuple[object, str]] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: problems.append((r.status, r.url)) if r.status >= 400 else None)
    page.on("requestfailed", lambda r: problems.append(("failed", r.url)))
    return requests, problems


def _is_probe(url: str) -> bool:
    """Streamlit's frontend, opened at /PAGE, first looks for its server at /PAGE/_stcore/… (then at /)."""
    path = urlparse(url).path
    return path.count("/") >= 3 and path.endswith(("/_stcore/health", "/_stcore/host-config"))


def test_no_request_leaves_the_machine(page, app_url, screenshot_dir):
    requests, problems = _record(page)
    host = urlparse(app_url).netloc
    page.goto(app_url)
    page.get_by_role("heading", name="Inspect").wait_for()
    page.locator(".cam-legend").first.wait_for(timeout=180_000)
    _wait_idle(page)
    for name in PAGES[1:]:  # through the navigation, as a person would
        page.locator('[data-testid="stSidebarNav"] a').filter(has_text=name.capitalize()).first.click()
        page.wait_for_url(f"**/{name}**")
        _wait_idle(page)
    page.wait_for_timeout(1500)
    outside = sorted({u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                      and urlparse(u).netloc != host})
    assert outside == [], outside
    # the favicon is ours, served by the app
    icon = page.locator('link[rel~="icon"]').first.get_attribute("href")
    assert icon and (icon.startswith("/") or urlparse(icon).netloc in ("", host)), icon
    assert [p for p in problems if not _is_probe(p[1])] == []
    page.screenshot(path=str(screenshot_dir / "offline_last_page.png"))


@pytest.mark.parametrize("name", PAGES[1:3])
def test_deep_links_load_without_outside_requests(page, app_url, name):
    requests, problems = _record(page)
    host = urlparse(app_url).netloc
    page.goto(f"{app_url}/{name}")
    page.locator('[data-testid="stSidebarNav"]').wait_for(timeout=180_000)
    _wait_idle(page)
    assert [u for u in requests if urlparse(u).scheme.startswith(("http", "ws")) and urlparse(u).netloc != host] == []
    assert [p for p in problems if not _is_probe(p[1])] == []


@pytest.mark.xfail(strict=True, reason="Streamlit 1.67's frontend, opened at /PAGE, asks /PAGE/_stcore/health and "
                   "/PAGE/_stcore/host-config before / (its base-path probe); the server answers 404 by design. "
                   "Only an index.html with window.__streamlit.BACKEND_BASE_URL, or an st.App entry point, "
                   "avoids it (docs/design.md)")
def test_deep_links_probe_their_own_path_first(page, app_url):
    _, problems = _record(page)
    page.goto(f"{app_url}/compare")
    page.locator('[data-testid="stSidebarNav"]').wait_for(timeout=180_000)
    assert [p for p in problems if p[0] == 404] == []
