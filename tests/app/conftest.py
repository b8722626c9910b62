"""AppTest fixtures: the real app script, a generous timeout, and map caches emptied before each test."""
from __future__ import annotations

from pathlib import Path

import pytest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT_S = 120


@pytest.fixture()
def app(monkeypatch):
    """A fresh ``AppTest`` of ``app.py`` (not yet run); map caches and engine-call counts start empty.

    Deletion and insertion wait for a click (``ui.trust.AUTO_SECONDS`` = 0) so that a test of anything else
    does not pay for them; tests/app/test_trust.py raises it to test the automatic curves."""
    from streamlit.testing.v1 import AppTest

    from ui import cache, trust

    cache.clear_all()
    monkeypatch.setattr(trust, "AUTO_SECONDS", 0.0)
    return AppTest.from_file(APP, default_timeout=TIMEOUT_S)


def png_bytes(sample: str) -> bytes:
    """A bundled sample photo as an uploaded PNG's bytes."""
    from ui.samples import sample_png

    return sample_png(sample)


def keyed(at, kind: str, view_key: str):
    """The one ``kind`` widget ("selectbox", "slider", …) drawn for the view entry ``view_key``, whatever it
    depends on (its key is ``w_VIEWKEY`` or ``w_VIEWKEY@SIGNATURE``, see ``ui.state.widget_key``)."""
    found = [w for w in at.get(kind) if w.key == f"w_{view_key}" or (w.key or "").startswith(f"w_{view_key}@")]
    assert len(found) == 1, f"{len(found)} {kind} widgets for {view_key!r}: {[w.key for w in at.get(kind)]}"
    return found[0]
