"""The app never contradicts itself (AppTest): menus follow the image, model and layer; a failed upload or
a model without weights replaces the results with a card; links carry every page's view, never a photo."""
from __future__ import annotations

import pytest

from tests.app.conftest import keyed, png_bytes

LAYERS, OCCLUSION, COMPARE = "pages/layers.py", "pages/occlusion.py", "pages/compare.py"
LEARN, BATCH, INVARIANCE = "pages/learn.py", "pages/batch.py", "pages/invariance.py"


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.main.error, [e.value for e in at.main.error]


def _class_label(at) -> str:
    box = keyed(at, "selectbox", "class")
    return box.format_func(box.value)


def _headline(at) -> str:
    return at.main.get("subheader")[0].value


@pytest.mark.slow
def test_class_menu_follows_each_new_upload(app):
    at = app.run()
    _ok(at)
    assert _class_label(at).startswith("top-1 prediction: ") and _headline(at).split(" — ")[0] in _class_label(at)
    first_key = keyed(at, "selectbox", "class").key
    for name, sample, label in (("cup.png", "coffee", "espresso"), ("rocket.png", "rocket", None)):
        at.sidebar.file_uploader[0].set_value((name, png_bytes(sample), "image/png")).run()
        _ok(at)
        top = _headline(at).split(" — ")[0]
        assert label is None or top == label
        assert _class_label(at).startswith(f"top-1 prediction: {top} — ")
        assert keyed(at, "selectbox", "class").key != first_key  # a new widget for the new photo
    # A method without a layer (SmoothGrad) keeps a real choice in the class menu, not an empty box.
    keyed(at, "selectbox", "method").set_value("smoothgrad")
    at.session_state["view"].setdefault("params", {})["smoothgrad"] = {"samples": 2}
    at.run()
    _ok(at)
    assert _class_label(at).startswith("top-1 prediction: ")


@pytest.mark.slow
def test_a_class_picked_on_one_photo_is_not_carried_to_the_next(app):
    at = app.run()
    keyed(at, "selectbox", "class").set_value(967).run()  # espresso, on the cat
    assert at.query_params["class"] == "967"
    at.sidebar.file_uploader[0].set_value(("cup.png", png_bytes("coffee"), "image/png")).run()
    _ok(at)
    assert keyed(at, "selectbox", "class").value == -1  # the new photo's top-1
    assert "class" not in at.query_params


@pytest.mark.slow
def test_layers_menus_follow_the_photo(app):
    at = app.run()
    at.switch_page(LAYERS).run()
    _ok(at)
    layer = keyed(at, "selectbox", "feature_layer")
    cat_label = layer.format_func(layer.value)
    keyed(at, "selectbox", "channel").set_value(keyed(at, "selectbox", "channel").options[3]).run()
    at.sidebar.file_uploader[0].set_value(("wide.png", png_bytes("astronaut"), "image/png")).run()
    _ok(at)
    layer = keyed(at, "selectbox", "feature_layer")
    assert layer.value == "bn2" and layer.format_func("bn2") != cat_label  # the new photo's shape
    channel = keyed(at, "selectbox", "channel")
    assert channel.index == 0  # the new photo's strongest channel, with its own rank
    assert channel.format_func(channel.value).endswith("(rank 1)")


def test_link_made_on_an_upload_says_so_and_drops_its_class(app):
    app.query_params.update({"image": "upload:holiday.jpg", "class": "906", "method": "gradcam++"})
    at = app.run()
    _ok(at)
    notices = [w.value for w in at.main.warning]
    assert len(notices) == 1 and "holiday.jpg" in notices[0] and "cannot carry a photo" in notices[0]
    assert keyed(at, "selectbox", "class").value == -1  # Windsor tie (906) is not applied to the cat
    assert keyed(at, "selectbox", "method").value == "gradcam++"  # the rest of the view is
    assert at.query_params["image"] == "chelsea"
    at.sidebar.selectbox(key="w_sample").set_value("coffee").run()
    assert not at.main.warning  # the person chose: the notice goes


@pytest.mark.slow
def test_link_after_an_upload_names_the_upload(app):
    at = app.run()
    at.sidebar.file_uploader[0].set_value(("cup.png", png_bytes("coffee"), "image/png")).run()
    assert at.query_params["image"] == "upload:cup.png"


@pytest.mark.slow
def test_links_carry_every_page_s_view(app):
    app.query_params.update({"compare_methods": "gradcam,saliency", "feature_layer": "blocks.1.1", "channel": "5",
                             "layers_top_n": "8", "p.occlusion.patch": "160", "p.occlusion.stride": "160", "p.occlusion.fill": "black",
                             "occ_x": "40", "occ_y": "50", "inv_kind": "rotate", "inv_range": "-30,30",
                             "inv_steps": "3", "inv_edge": "reflect", "p.smoothgrad.samples": "7"})
    at = app.run()
    _ok(at)
    at.switch_page(COMPARE).run()
    assert at.multiselect(key="w_compare_methods").value == ["gradcam", "saliency"]
    at.switch_page(LAYERS).run()
    _ok(at)
    assert keyed(at, "selectbox", "feature_layer").value == "blocks.1.1"
    assert keyed(at, "selectbox", "channel").value == 5
    assert keyed(at, "slider", "layers_top_n").value == 8
    at.switch_page(OCCLUSION).run()
    _ok(at)
    assert (keyed(at, "slider", "occ_patch").value, keyed(at, "slider", "occ_stride").value) == (160, 160)
    assert keyed(at, "selectbox", "occ_fill").value == "black"
    assert (keyed(at, "slider", "occ_x").value, keyed(at, "slider", "occ_y").value) == (40, 50)
    at.switch_page(INVARIANCE).run()
    _ok(at)
    assert keyed(at, "radio", "inv_kind").value == "rotate"
    assert keyed(at, "slider", "inv_range").value == (-30.0, 30.0)
    assert keyed(at, "selectbox", "inv_edge").value == "reflect"
    # …and they are written back, so a link copied now reopens the same.
    for key, text in (("compare_methods", "gradcam,saliency"), ("channel", "5"), ("occ_x", "40"),
                      ("inv_range", "-30,30"), ("p.smoothgrad.samples", "7")):
        assert at.query_params[key] == text, key


@pytest.mark.slow
def test_learn_has_no_pickers_and_batch_has_one_uploader(app):
    at = app.run()
    at.switch_page(LEARN).run()
    assert not at.sidebar.get("selectbox") and not at.sidebar.get("file_uploader")
    at.switch_page(BATCH).run()
    assert not at.exception
    assert len(at.get("file_uploader")) == 1 and not at.sidebar.get("file_uploader")
    assert at.sidebar.selectbox(key="w_model").value == "efficientnet_lite0"


@pytest.mark.slow
def test_input_size_changes_what_the_model_sees_and_travels_in_the_link(app):
    """A larger input size is the model's prediction at that size (checked against models.load directly), the
    headline names it, the link carries it, and a link with a size that is not offered opens at the model's own."""
    import models
    from PIL import Image
    from skimage import data

    at = app.run()
    _ok(at)
    own = _headline(at)
    keyed(at, "selectbox", "size").set_value(320).run()
    _ok(at)
    expected = models.load("efficientnet_lite0", device="cpu", input_size=320).predict(
        Image.fromarray(data.chelsea()), top=1)[0]
    assert _headline(at) == f"{expected.label} — {expected.prob:.1%}" != own
    assert any("320 px input" in c.value for c in at.main.caption)
    assert at.query_params["size"] == "320"
    keyed(at, "selectbox", "size").set_value(None).run()
    assert _headline(at) == own and "size" not in at.query_params

    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import APP, TIMEOUT_S

    for text, size in (("320", 320), ("99999", None), ("x", None)):  # a fresh session opened from a link
        linked = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
        linked.query_params["size"] = text
        linked.run()
        _ok(linked)
        assert keyed(linked, "selectbox", "size").value == size
        assert (_headline(linked) == own) == (size is None)
