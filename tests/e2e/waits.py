"""What every browser test waits for: Streamlit done with its script run."""
from __future__ import annotations


def wait_idle(page, timeout: int = 180_000) -> None:
    """Wait until Streamlit has finished the current script run: no status widget, and nothing on the page
    greyed out as stale (left over from the previous run). Look twice: a run shows both a moment after it starts."""
    for _ in range(2):
        page.wait_for_timeout(700)
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout)
        page.wait_for_function("() => !document.querySelector('[data-stale=true]')", timeout=timeout)
