"""A browser page at a given window size, closed (with its context) however the test ends."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def page_at(browser, width: int, height: int, timeout_ms: int) -> Iterator[object]:
    """A new page in a context of its own, ``width``×``height``, every wait bounded by ``timeout_ms``."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(timeout_ms)
        yield page
    finally:
        context.close()
