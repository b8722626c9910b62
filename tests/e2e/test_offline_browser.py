"""Offline and quiet, as seen from the browser: every request a page makes goes to the app's own server
(the favicon and every asset are local), and nothing answers 4xx/5xx — deep links included: the server
(``serve.py``) tells the frontend its root, so it does not probe ``/PAGE/_stcore/health`` first.
"""
from __future__ import annotations

from urllib.parse import urlparse

import pytest

from ui import navigation

from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = pytest.mark.browser

# every page but the home page, through the navigation as a person would (the app's own table: a new page is in)
PAGES = [(title, path) for _, title, _, path in navigation.present() if path != "inspect"]


def _record(page) -> tuple[list[str], list[tuple[object, str]]]:
    requests: list[str] = []
    problems: list[tuple[object, str]] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: problems.append((r.status, r.url)) if r.status >= 400 else None)
    page.on("requestfailed", lambda r: problems.append(("failed", r.url)))
    return requests, problems


def _broken_images(page) -> list[str]:
    """Images on the page now that did not load: what a person would see as a broken picture."""
    return page.evaluate("""() => [...document.images]
        .filter(i => i.complete && i.naturalWidth === 0 && i.getAttribute('src'))
        .map(i => i.src)""")


def _not_media(problems: list[tuple[object, str]]) -> list[tuple[object, str]]:
    """Drop 404s for ``/media/`` files: Streamlit deletes a run's images when the next run replaces them, and an
    image of the page being left may still be requested (a known Streamlit race, streamlit/streamlit#1294).
    What a person would see, a picture on the page that did not load, is checked on every page instead."""
    return [(s, u) for s, u in problems if not (s == 404 and "/media/" in u)]


def test_no_request_leaves_the_machine(page, app_url, screenshot_dir):
    requests, problems = _record(page)
    host = urlparse(app_url).netloc
    page.goto(app_url)
    page.get_by_role("heading", name="Inspect").wait_for()
    page.locator(".cam-legend").first.wait_for(timeout=180_000)
    _wait_idle(page)
    assert _broken_images(page) == []
    for title, name in PAGES:
        page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
        page.wait_for_url(f"**/{name}**")
        _wait_idle(page)
        page.wait_for_timeout(500)
        assert _broken_images(page) == [], name
    page.wait_for_timeout(1500)
    outside = sorted({u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                      and urlparse(u).netloc != host})
    assert outside == [], outside
    # the favicon is ours, served by the app
    icon = page.locator('link[rel~="icon"]').first.get_attribute("href")
    assert icon and (icon.startswith("/") or urlparse(icon).netloc in ("", host)), icon
    assert _not_media(problems) == []
    page.screenshot(path=str(screenshot_dir / "offline_last_page.png"))


@pytest.mark.parametrize("name", ["compare", "layers/"])
def test_deep_links_load_without_outside_requests_or_404s(page, app_url, name):
    requests, problems = _record(page)
    host = urlparse(app_url).netloc
    page.goto(f"{app_url}/{name}")
    # the heading, not the sidebar: before the script runs, Streamlit shows its own file-based menu (busy machine)
    page.get_by_role("heading", name=name.strip("/").capitalize()).first.wait_for(timeout=180_000)
    _wait_idle(page)
    assert [u for u in requests if urlparse(u).scheme.startswith(("http", "ws")) and urlparse(u).netloc != host] == []
    assert _broken_images(page) == []
    assert _not_media(problems) == []  # no /PAGE/_stcore/health or host-config probe answered 404


def test_the_home_pages_own_path_opens_it_at_the_root(page, app_url):
    """/inspect (the home page's path) opened on a "Page not found" dialog (once the server had run the app:
    a fresh one's first run finds it as a v1 page); it now lands on / with its query."""
    page.goto(app_url)
    page.get_by_role("heading", name="Inspect").first.wait_for(timeout=180_000)
    _wait_idle(page)
    page.goto(f"{app_url}/inspect?image=coffee")
    page.get_by_role("heading", name="Inspect").first.wait_for(timeout=180_000)
    _wait_idle(page)
    dialogs = page.locator('[role="dialog"]').all_inner_texts()
    assert not any("Page not found" in d for d in dialogs), dialogs
    assert urlparse(page.url).path == "/"
    page.get_by_text("coffee.png", exact=False).first.wait_for()
