"""Deep links without 404s: answer ``/compare`` (every page's URL) with Streamlit's page, base URL filled in.

Opened at ``/compare``, Streamlit's frontend does not know where the server's root is: it probes
``/compare/_stcore/health`` and ``/compare/_stcore/host-config`` first (two 404s in the log and the browser
console), then ``/``. Its page reads ``window.__streamlit.BACKEND_BASE_URL`` when set before its bundle runs, and
then probes that root only. This ASGI middleware serves Streamlit's own ``index.html`` for the app's page paths
with that one line added; every other request passes through untouched.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from functools import cache
from pathlib import Path
from typing import Any

import streamlit
from streamlit import config

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

INDEX = Path(streamlit.__file__).resolve().parent / "static" / "index.html"


def base_path() -> str:
    """The server's root path, ``/`` or ``/base/`` when ``server.baseUrlPath`` is set."""
    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/" if base else "/"


@cache
def page_html(base: str) -> bytes | None:
    """Streamlit's ``index.html`` telling its frontend that the server's root is ``base``; None if it cannot."""
    html = INDEX.read_text(encoding="utf-8")
    if html.count("<head>") != 1:  # a Streamlit whose page we do not recognise: leave it alone
        return None
    script = ("<script>window.__streamlit = Object.assign({}, window.__streamlit, "
              f"{{BACKEND_BASE_URL: new URL({json.dumps(base)}, window.location.href).href}});</script>")
    return html.replace("<head>", "<head>\n    " + script, 1).encode("utf-8")


class DeepLinks:
    """ASGI middleware: a GET of one of ``pages`` (``/compare``) gets the page with its base URL.

    ``/compare/`` is left to Streamlit, which redirects it here (a page at ``/compare/`` would load its assets
    from ``/compare/static/``).
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], pages: Iterable[str]) -> None:
        self.app = app
        self.pages = frozenset(pages)

    def _answers(self, scope: Scope) -> bytes | None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        base = base_path()
        path = scope["path"]
        if not path.startswith(base) or path[len(base):] not in self.pages:
            return None
        return page_html(base)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self._answers(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                                (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": body})
