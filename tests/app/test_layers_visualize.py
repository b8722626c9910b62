"""Layers' feature visualization beside the top channels: one image per shown channel, computed once and kept
(a colormap change or a second look does not recompute)."""
from __future__ import annotations

from ui import cache
from ui.engine import ENGINE_CALLS

LAYERS = "pages/layers.py"


def test_feature_visualization_beside_each_top_channel_is_cached(app, monkeypatch):
    monkeypatch.setitem(cache.VIS_TILE, "steps", 2)  # tiny settings: what is tested is the page, not the optimiser
    monkeypatch.setitem(cache.VIS_TILE, "size", 32)
    at = app.run()
    at.switch_page(LAYERS).run()
    at.slider(key="w_layers_top_n").set_value(4).run()
    at.toggle(key="layers_visualize").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = [c for el in at.main.get("image") for c in el.captions]
    tiles = [c.split(" · ")[0] for c in captions if c.startswith("ch ") and " · mean " in c]
    assert [c for c in captions if c.endswith("looks for")] == [f"{t} looks for" for t in tiles]
    assert ENGINE_CALLS["visualize"] == 4
    at.selectbox(key=next(w.key for w in at.selectbox if w.label == "Colormap")).set_value("magma").run()
    assert ENGINE_CALLS["visualize"] == 4 and not at.exception
