"""Compare and Learn pages through AppTest, and the sidebar's image surviving a page switch."""
from __future__ import annotations

import re

from cam_core.registry import METHODS
from tests.app.conftest import keyed, png_bytes
from ui.cache import ENGINE_CALLS


def test_compare_shows_each_default_method_with_its_time(app):
    at = app.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    chosen = at.multiselect(key="w_compare_methods").value
    assert len(chosen) == 3
    titles = [m.value for m in at.markdown if m.value.startswith("**") and "gradients" not in m.value]
    with_gradient = [m for m in chosen if METHODS[m].kind == "pixel"]
    # one tile per method, then one per pixel-space gradient: every row's tiles are the same kind
    assert titles == [f"**{METHODS[m].display}**" for m in chosen + with_gradient]
    times = [c.value for c in at.caption if re.match(r"[\d,.]+ m?s · ", c.value)]  # the wall time waited
    assert len(times) == len(chosen)
    # one overlay per method and the signed gradient image of pixel-space methods
    assert len(at.main.get("image")) == len(chosen) + len(with_gradient)


def test_compare_shares_maps_with_inspect_and_alpha_does_not_recompute(app):
    at = app.run()  # Inspect computes Grad-CAM for the sample
    at.switch_page("pages/compare.py").run()
    calls = ENGINE_CALLS["explain"]
    assert calls == 3  # Grad-CAM came from Inspect's cache entry; the two others were computed
    at.slider(key="w_alpha").set_value(0.2).run()
    at.selectbox(key="w_cmap").set_value("inferno").run()
    assert not at.exception
    assert ENGINE_CALLS["explain"] == calls


def test_learn_lists_every_method_with_formula_and_paper(app):
    at = app.run()
    at.switch_page("pages/learn.py").run()
    assert not at.exception, [e.value for e in at.exception]
    headers = [h.value for h in at.header]
    assert sorted(headers) == sorted(spec.display for spec in METHODS.values())
    assert len(at.latex) == len(METHODS)
    text = " ".join(m.value for m in at.markdown)
    for spec in METHODS.values():
        assert spec.paper_url in text


def test_learn_puts_the_linked_method_first(app):
    app.query_params["method"] = "cam"
    at = app.run()
    at.switch_page("pages/learn.py").run()
    assert at.header[0].value == METHODS["cam"].display


def test_uploaded_image_survives_a_page_switch(app):
    at = app.run()
    at.sidebar.file_uploader[0].set_value(("cup.png", png_bytes("coffee"), "image/png")).run()
    at.switch_page("pages/learn.py").run()
    at.switch_page("pages/inspect.py").run()
    assert not at.exception
    assert at.main.get("subheader")[0].value.startswith("espresso")


def test_picking_a_sample_replaces_the_upload(app):
    at = app.run()
    assert at.sidebar.selectbox(key="w_sample").value == "chelsea"
    at.sidebar.file_uploader[0].set_value(("cup.png", png_bytes("coffee"), "image/png")).run()
    # the menu names no sample while the upload is shown (it used to read "Chelsea the cat")
    over = [s for s in at.sidebar.selectbox if s.key.startswith("w_sample_over_upload")]
    assert len(over) == 1 and over[0].value is None and "upload is shown" in over[0].proto.placeholder
    assert not [s for s in at.sidebar.selectbox if s.key == "w_sample"]
    over[0].set_value("chelsea").run()  # the sample that was shown before the upload
    assert not at.exception
    assert [c for el in at.sidebar.get("image") for c in el.captions][0].startswith("chelsea.png")
    assert at.sidebar.selectbox(key="w_sample").value == "chelsea"
    at.sidebar.selectbox(key="w_sample").set_value("rocket").run()
    assert not at.exception
    assert [c for el in at.sidebar.get("image") for c in el.captions][0].startswith("rocket.png")


def test_compare_runs_a_long_method_only_when_its_toggle_is_on(app):
    from cam_core.registry import get_method

    assert get_method("occlusion").long_running
    app.session_state["view"] = {"params": {"occlusion": {"patch": 96, "stride": 96}},
                                 "compare_methods": ["gradcam", "occlusion"]}
    at = app.run()  # Inspect: Grad-CAM
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="w_compare_methods").value == ["gradcam", "occlusion"]
    assert ENGINE_CALLS["explain"] == 1  # Grad-CAM from Inspect's cache; occlusion not run
    toggle = at.toggle(key="w_compare_run_occlusion")
    assert toggle.value is False and toggle.label.startswith("Run Occlusion sensitivity (")
    assert toggle.label.endswith(" s)") or toggle.label.endswith("timing it)")
    assert any(i.value.startswith("Long method: switch on to run (") for i in at.info)
    toggle.set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert ENGINE_CALLS["explain"] == 2  # now it ran, once
    assert not any(i.value.startswith("Long method") for i in at.info)
    assert sum(1 for c in at.caption if re.match(r"[\d,.]+ m?s · ", c.value)) == 2
    # measured now: the label gives a time, and the toggle stays on across reruns
    assert at.toggle(key="w_compare_run_occlusion").value is True
    assert at.toggle(key="w_compare_run_occlusion").label.endswith(" s)")
    at.slider(key="w_alpha").set_value(0.3).run()
    assert ENGINE_CALLS["explain"] == 2
    at.selectbox(key="w_cmap").set_value("inferno").run()
    assert ENGINE_CALLS["explain"] == 2
    # a class change recomputes Grad-CAM (a new view) but not occlusion (derived from its windows)
    keyed(at, "selectbox", "class").set_value(967).run()
    assert not at.exception, [e.value for e in at.exception]
    assert ENGINE_CALLS["explain"] == 3
    assert at.toggle(key="w_compare_run_occlusion").value is True


def test_a_link_keeps_the_display_scale_and_the_long_methods_switched_on(app):
    app.query_params.update({"compare_methods": "gradcam,occlusion", "compare_run": "occlusion",
                             "p.occlusion.patch": "96", "p.occlusion.stride": "96",
                             "display_pct": "99.5", "signed": "1"})
    at = app.switch_page("pages/compare.py").run()  # the link opens Compare
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="w_compare_run_occlusion").value is True  # switched on by the link: it ran
    assert ENGINE_CALLS["explain"] == 2  # Grad-CAM and the occlusion map
    assert keyed(at, "selectbox", "display_pct").value == 99.5
    assert at.toggle(key="w_signed").value is True
    at.toggle(key="w_compare_run_occlusion").set_value(False).run()
    assert "compare_run" not in at.query_params  # switched off: the link forgets it
    assert at.query_params["display_pct"] == "99.5" and at.query_params["signed"] == "1"


def test_attention_methods_are_not_offered_for_a_cnn(app):
    at = app.run()
    at.switch_page("pages/compare.py").run()
    options = at.multiselect(key="w_compare_methods").options
    assert options and not [m for m in options if "ttention" in m or "ollout" in m]
