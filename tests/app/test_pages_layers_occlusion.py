"""Layers and Occlusion pages through AppTest: each renders its main output; a bad input shows st.error."""
from __future__ import annotations

from tests.app.conftest import keyed, png_bytes
from ui.cache import ENGINE_CALLS

LAYERS = "pages/layers.py"
OCCLUSION = "pages/occlusion.py"


def _no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _captions(at) -> list[str]:
    return [c for el in at.main.get("image") for c in el.captions]


def test_layers_shows_top_channels_projection_stages_and_filters(app):
    at = app.run()
    at.switch_page(LAYERS).run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert keyed(at, "selectbox", "feature_layer").value == "bn2"  # the model's default layer
    captions = _captions(at)
    tiles = [c for c in captions if c.startswith("ch ") and " · mean " in c]
    assert len(tiles) == at.slider(key="w_layers_top_n").value == 16
    means = [float(c.rsplit(" ", 1)[1]) for c in tiles]
    assert means == sorted(means, reverse=True)  # ranked by mean activation
    assert "Deconvnet projection to pixel space" in captions
    assert captions.count("input") == 1 and sum(" · " in c and "×" in c for c in captions) >= 5  # the stage strip
    assert any(c.startswith("32 filters, 3×3 RGB") for c in captions)
    assert len(at.get("plotly_chart")) == 1


def test_layers_changing_n_does_not_recompute(app):
    at = app.run()
    at.switch_page(LAYERS).run()
    calls = dict(ENGINE_CALLS)
    at.slider(key="w_layers_top_n").set_value(8).run()
    _no_exception(at)
    assert len([c for c in _captions(at) if c.startswith("ch ")]) == 8
    assert dict(ENGINE_CALLS) == calls


def test_layers_other_layer_and_channel(app):
    at = app.run()
    at.switch_page(LAYERS).run()
    box = keyed(at, "selectbox", "feature_layer")
    # no pass-through (Identity: timm's .aa/.se/.drop) or container (Sequential) entries; grouped by stage
    assert "blocks.1" not in box.options and "blocks.1.1.aa" not in box.options
    assert not any(o.split(" │ ")[1].split(" · ")[1].startswith(("Identity", "Sequential")) for o in box.options)
    stages = [int(o.split(" · ")[0].split()[1]) for o in box.options]
    assert stages == sorted(stages)
    box.set_value("blocks.1.1").run()
    _no_exception(at)
    assert at.main.get("subheader")[0].value.startswith("Top 16 of 24 channels at blocks.1.1")
    channel_box = keyed(at, "selectbox", "channel")
    second = channel_box.options[1]
    channel_box.set_value(int(second.split()[1])).run()
    _no_exception(at)
    assert not at.error


def test_layers_broken_upload_hides_the_old_photo_s_maps(app):
    at = app.run()
    at.switch_page(LAYERS).run()
    assert any(c.startswith("ch ") for c in _captions(at))
    at.sidebar.file_uploader[0].set_value(("broken.png", b"\x89PNG\r\n\x1a\n nope", "image/png")).run()
    _no_exception(at)
    assert [e.value for e in at.main.error] and at.main.error[0].value.startswith("broken.png: ")
    assert not any(c.startswith("ch ") for c in _captions(at))  # the sample's maps are not shown as current


def _fast_occlusion(app):
    """The Occlusion page with a big patch and stride (a few positions only), after the home page ran."""
    at = app.run()
    at.session_state["w_occ_patch"] = 112
    at.session_state["w_occ_stride"] = 56
    home_calls = ENGINE_CALLS["explain"]  # Inspect's Grad-CAM
    return at.switch_page(OCCLUSION).run(), home_calls


def test_occlusion_shows_both_maps_and_the_probe(app):
    at, home_calls = _fast_occlusion(app)
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # probability map, top-class map, top-5 with the patch
    note = [c.value for c in at.caption if "positions (patch 112, stride 56)" in c.value]
    assert note and note[0].startswith("3×6 positions")  # rows 0,56,112 of 224; cols 0..240 of 352
    assert any(c.startswith("Patch 112px at x ") for c in _captions(at))
    assert ENGINE_CALLS["explain"] == home_calls + 1  # one run, coarse windows first (each window once)


def test_occlusion_probe_moves_without_recomputing_the_maps(app):
    at, _ = _fast_occlusion(app)
    calls = ENGINE_CALLS["explain"]
    probes = ENGINE_CALLS["occlusion_probe"]
    keyed(at, "slider", "occ_x").set_value(10).run()
    _no_exception(at)
    assert ENGINE_CALLS["explain"] == calls and ENGINE_CALLS["occlusion_probe"] == probes + 1
    at.selectbox(key="w_occ_fill").set_value("black").run()
    _no_exception(at)
    assert ENGINE_CALLS["explain"] > calls  # a different fill is a different map: the counter can move


def test_occlusion_with_a_broken_upload_shows_error(app):
    at = app.run()
    at.session_state["w_occ_patch"] = 160
    at.session_state["w_occ_stride"] = 160
    at = at.switch_page(OCCLUSION).run()
    at.sidebar.file_uploader[0].set_value(("broken.png", b"not an image", "image/png")).run()
    _no_exception(at)
    assert any(e.value.startswith("broken.png: ") for e in at.error)
