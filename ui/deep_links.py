"""Deep links without 404s: answer ``/compare`` (every page's URL) with Streamlit's page, base URL filled in.

Opened at ``/compare``, Streamlit's frontend does not know where the server's root is: it probes
``/compare/_stcore/health`` and ``/compare/_stcore/host-config`` first (two 404s in the log and the browser
console), then ``/``. Its page reads ``window.__streamlit.BACKEND_BASE_URL`` when set before its bundle runs, and
then probes that root only. This ASGI middleware serves Streamlit's own ``index.html`` for the app's page paths
with that one line added; every other request passes through untouched. The home page lives at the root (Streamlit
knows no other URL for it): its own path (``/inspect``) redirects there, query kept, instead of opening on a
"Page not found" dialog.
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
    from ``/compare/static/``). A GET of ``home`` (``/inspect?…``) is redirected to the root with its query.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], pages: Iterable[str],
                 home: str | None = None) -> None:
        self.app = app
        self.pages = frozenset(pages)
        self.home = home

    def _home_redirect(self, scope: Scope) -> str | None:
        """Where a GET of the home page's own path goes instead: the root, with the same query."""
        if self.home is None or scope["type"] != "http" or scope["method"] != "GET":
            return None
        base = base_path()
        if scope["path"] != base + self.home:
            return None
        query = scope.get("query_string", b"").decode("latin-1")
        return base + (f"?{query}" if query else "")

    def _answers(self, scope: Scope) -> bytes | None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        base = base_path()
        path = scope["path"]
        if not path.startswith(base) or path[len(base):] not in self.pages:
            return None
        return page_html(base)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        home = self._home_redirect(scope)
        if home is not None:
            await send({"type": "http.response.start", "status": 307,
                        "headers": [(b"location", home.encode("latin-1")), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        body = self._answers(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                                (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": body})
