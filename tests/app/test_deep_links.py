"""The deep-link middleware (ui/deep_links.py) as an ASGI app: page paths get Streamlit's page with the server's
root written in; everything else reaches Streamlit untouched."""
from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from streamlit import config

from ui.deep_links import DeepLinks, page_html
from ui.navigation import home_path, url_paths


def _get(path: str, method: str = "GET", query: bytes = b"") -> tuple[int, bytes, list[str]]:
    """Run one request through DeepLinks in front of a stand-in app that records what reached it."""
    reached: list[str] = []

    async def streamlit_app(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"passed"})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    app = DeepLinks(streamlit_app, pages=url_paths(), home=home_path())
    request = {"type": "http", "method": method, "path": path, "query_string": query}
    # In a thread of its own: Playwright's sync API (the browser tests, when run first) keeps a loop running here.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(request, receive, send)).result()
    _get.headers = dict(sent[0].get("headers", []))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), reached


def _base_in(body: bytes) -> str:
    match = re.search(r'BACKEND_BASE_URL: new URL\("([^"]*)"', body.decode())
    assert match, "the page does not set BACKEND_BASE_URL"
    return match.group(1)


@pytest.fixture
def base_url_path():
    old = config.get_option("server.baseUrlPath")
    yield lambda value: config.set_option("server.baseUrlPath", value)
    config.set_option("server.baseUrlPath", old)
    page_html.cache_clear()


def test_every_page_path_gets_the_page_with_the_root_before_the_bundle():
    assert {"compare", "layers", "inspect", "batch"} <= set(url_paths())
    for name in set(url_paths()) - {home_path()}:
        status, body, reached = _get(f"/{name}")
        assert (status, reached) == (200, []), name
        html = body.decode()
        assert _base_in(body) == "/"
        # set before Streamlit's bundle (a module script) reads window.__streamlit
        assert html.index("BACKEND_BASE_URL") < html.index('type="module"')


def test_the_home_pages_path_goes_to_the_root_with_its_query(base_url_path):
    """Streamlit serves the home page at the root only: opened at /inspect its frontend showed a "Page not
    found" dialog over the page."""
    assert home_path() == "inspect"
    status, body, reached = _get("/inspect", query=b"image=coffee&present=1")
    assert (status, body, reached) == (307, b"", [])
    assert _get.headers[b"location"] == b"/?image=coffee&present=1"
    assert _get("/inspect")[0] == 307 and _get.headers[b"location"] == b"/"
    base_url_path("camx")
    assert _get("/camx/inspect", query=b"a=1")[0] == 307 and _get.headers[b"location"] == b"/camx/?a=1"


@pytest.mark.parametrize("path,method", [("/", "GET"), ("/_stcore/health", "GET"), ("/compare/_stcore/health", "GET"),
                                         ("/compare/", "GET"),  # Streamlit redirects it to /compare
                                         ("/static/x.js", "GET"), ("/compares", "GET"), ("/compare", "POST")])
def test_other_requests_pass_through(path, method):
    status, body, reached = _get(path, method)
    assert (status, body, reached) == (404, b"passed", [path])


def test_a_base_url_path_is_honoured(base_url_path):
    base_url_path("camx")
    status, body, _ = _get("/camx/compare")
    assert status == 200 and _base_in(body) == "/camx/"
    assert _get("/compare")[2] == ["/compare"]  # outside the base: Streamlit's
