"""Inspect page through Streamlit's AppTest: prediction, upload, broken upload, map, no recompute on alpha or
(for occlusion) on a class change."""
from __future__ import annotations

import struct
import zlib

from models.labels import IMAGENET_CATEGORIES
from tests.app.conftest import keyed, png_bytes
from ui.cache import ENGINE_CALLS

CAT_LABELS = set(IMAGENET_CATEGORIES[281:286])  # tabby … Egyptian cat


def _headline(at) -> str:
    """The top-1 line ("LABEL — P%") the page shows under the title."""
    heads = [h.value for h in at.main.get("subheader")]
    assert heads, "no prediction headline on the page"
    return heads[0]


def _image_captions(block) -> list[str]:
    return [c for el in block.get("image") for c in el.captions]


def _no_problem(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]



def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk with its length and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

def test_default_sample_shows_a_cat_label(app):
    at = app.run()
    _no_problem(at)
    label = _headline(at).split(" — ")[0]
    assert label in CAT_LABELS
    assert at.sidebar.selectbox(key="w_sample").value == "chelsea"


def test_uploaded_photo_is_classified(app):
    at = app.run()
    at.sidebar.file_uploader[0].set_value(("my_coffee.png", png_bytes("coffee"), "image/png")).run()
    _no_problem(at)
    assert _headline(at).startswith("espresso")
    from skimage import data

    h, w = data.coffee().shape[:2]
    assert _image_captions(at.sidebar) == [f"my_coffee.png — {w}×{h}"]


def test_heic_upload_is_named_and_says_to_convert_it(app):
    """An iPhone photo (HEIC) renamed .jpg passes the browser's extension check; the card says what it is."""
    heic = bytes([0, 0, 0, 24]) + b"ftypheic" + bytes(4) + b"mif1heic" + bytes(64)
    at = app.run()
    at.sidebar.file_uploader[0].set_value(("IMG_0001.jpg", heic, "image/jpeg")).run()
    assert not at.exception
    errors = [e.value for e in at.main.error]
    assert errors == ["IMG_0001.jpg: a HEIC file, a format we cannot read; convert it to JPEG or PNG"]
    assert not at.main.get("subheader") and not _image_captions(at.main)


def test_broken_upload_replaces_the_results_with_a_card_until_a_good_image(app):
    at = app.run()
    assert _headline(at).split(" — ")[0] in CAT_LABELS
    at.sidebar.file_uploader[0].set_value(("broken.png", b"\x89PNG\r\n\x1a\n not really", "image/png")).run()
    assert not at.exception
    errors = [e.value for e in at.main.error]
    assert len(errors) == 1 and errors[0].startswith("broken.png: ") and "\n" not in errors[0]
    assert "Traceback" not in errors[0]
    # The previous photo's results are gone: no headline, no map, a card saying what to do.
    assert not at.main.get("subheader") and not _image_captions(at.main)
    assert any("Could not read broken.png" in m.value for m in at.main.markdown)
    assert any("pick a sample photo" in m.value for m in at.main.markdown)
    huge = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(bytes(4096))) + _chunk(b"IEND", b""))  # declares 2.5 gigapixels
    at.sidebar.file_uploader[0].set_value(("huge.png", huge, "image/png")).run()
    errors = [e.value for e in at.main.error]
    assert len(errors) == 1 and "scale it down" in errors[0], errors  # what is wrong, and what to do about it
    todo = next(m.value for m in at.main.markdown if m.value.startswith("**What to do:**"))
    assert "megapixels" in todo and "one of these formats" not in todo  # no advice to change a format that is fine
    over = [s for s in at.sidebar.selectbox if s.key.startswith("w_sample_over_upload")]
    assert len(over) == 1 and over[0].value is None  # the menu names no sample under the failed upload
    over[0].set_value("coffee").run()
    _no_problem(at)
    assert _headline(at).startswith("espresso")


def test_gradcam_map_for_the_sample(app):
    at = app.run()
    _no_problem(at)
    assert at.selectbox(key="w_method").value == "gradcam"
    assert ENGINE_CALLS["explain"] == 1
    # original | heat map | overlay are drawn, with the time taken and the explained class.
    assert _image_captions(at.main) == ["Original", "Heat map", "Overlay"]
    assert [m.label for m in at.metric] == ["Time taken"]
    details = " ".join(m.value for m in at.markdown)
    assert "Method:** Grad-CAM" in details and "Layer:** bn2" in details
    assert [b.label for b in at.get("download_button")] == ["Overlay PNG", "Heat map .npy", "HTML report"]


def test_moving_alpha_or_colormap_never_recomputes_the_map(app):
    at = app.run()
    _no_problem(at)
    calls = dict(ENGINE_CALLS)
    assert calls["explain"] == 1
    at.slider(key="w_alpha").set_value(0.8).run()
    _no_problem(at)
    at.selectbox(key="w_cmap").set_value("viridis").run()
    _no_problem(at)
    assert dict(ENGINE_CALLS) == calls
    assert at.query_params["alpha"] == "0.8" and at.query_params["cmap"] == "viridis"
    # The counter does move when something that changes the map changes (so the check above can fail).
    at.selectbox(key="w_method").set_value("gradcam++").run()
    _no_problem(at)
    assert ENGINE_CALLS["explain"] == calls["explain"] + 1


def test_choosing_another_class_explains_that_class(app):
    at = app.run()
    keyed(at, "selectbox", "class").set_value(967).run()  # espresso, far outside the top-5
    _no_problem(at)
    details = " ".join(m.value for m in at.markdown)
    assert "espresso (967)" in details
    assert at.query_params["class"] == "967"


def test_long_method_runs_with_its_parameters(app):
    # Start the session with occlusion and coarse parameters already chosen (as if set earlier).
    app.session_state["view"] = {"method": "occlusion", "params": {"occlusion": {"patch": 96, "stride": 96}}}
    at = app.run()
    _no_problem(at)
    assert keyed(at, "selectbox", "layer").disabled  # occlusion works on pixels
    assert at.slider(key="w_param_occlusion_patch").value == 96
    assert at.slider(key="w_param_occlusion_stride").value == 96
    assert ENGINE_CALLS["explain"] == 1
    assert "Occlusion sensitivity" in " ".join(m.value for m in at.markdown)
    at.slider(key="w_param_occlusion_stride").set_value(64).run()  # a parameter change is a new map
    _no_problem(at)
    assert ENGINE_CALLS["explain"] == 2


def test_cam_error_is_shown_without_a_traceback(app):
    at = app.run()
    at.selectbox(key="w_method").set_value("cam")
    keyed(at, "selectbox", "layer").set_value("conv_stem").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("CAM: ")


def test_url_reopens_the_same_view(app):
    app.query_params.update({"method": "gradcam++", "cmap": "viridis", "alpha": "0.3", "image": "coffee",
                             "class": "967"})
    at = app.run()
    _no_problem(at)
    assert at.selectbox(key="w_method").value == "gradcam++"
    assert at.selectbox(key="w_cmap").value == "viridis"
    assert at.slider(key="w_alpha").value == 0.3
    assert at.sidebar.selectbox(key="w_sample").value == "coffee"
    assert keyed(at, "selectbox", "class").value == 967
    assert _headline(at).startswith("espresso")


def test_own_weights_with_labels(app, tmp_path):
    """A person's safetensors file for a listed architecture, with a 3-line labels file."""
    import torch
    from safetensors.torch import save

    import models

    torch.manual_seed(0)
    net = models.SPECS["efficientnet_lite0"].build(3)
    weights = save({k: v.contiguous() for k, v in net.state_dict().items()})
    labels = b"apple\nbanana\ncherry\n"
    at = app.run()
    at.sidebar.selectbox(key="w_model").set_value("own").run()
    at.sidebar.selectbox(key="w_own_arch").set_value("efficientnet_lite0").run()
    at.sidebar.file_uploader(key="own_weights").set_value(("fruit.safetensors", weights, "application/octet-stream"))
    at.sidebar.file_uploader(key="own_labels").set_value(("fruit.txt", labels, "text/plain")).run()
    _no_problem(at)
    assert "3 classes" in [c.value for c in at.sidebar.caption]
    assert _headline(at).split(" — ")[0] in {"apple", "banana", "cherry"}
    assert "own weights (fruit.safetensors)" in " ".join(c.value for c in at.caption)


def test_model_that_cannot_download_shows_what_to_do(app, tmp_path, monkeypatch):
    """Offline and with an empty TORCH_HOME, a torchvision model's error names the file and the folder."""
    import os

    from models import torchvision_zoo

    import urllib.request

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(urllib.request, "_opener", None)  # urllib caches proxies in it: restore it after
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # refuse every connection, even with a network
    at = app.run()
    assert "(↓ " in at.sidebar.selectbox(key="w_model").format_func("resnet18")  # a download, with its size
    at.sidebar.selectbox(key="w_model").set_value("resnet18").run()
    assert not at.exception
    assert not at.sidebar.error  # one card in the main area, nothing in the sidebar
    filename = os.path.basename(torchvision_zoo.cached_path("resnet18"))
    card = " ".join(m.value for m in at.main.markdown) + " ".join(e.value for e in at.main.error)
    assert "ResNet-18 needs its weight file" in card and filename in card and "offline" in card
    assert "$TORCH_HOME/hub/checkpoints" in card
    assert str(tmp_path) not in card  # the browser is not on the server's machine: no server path
    assert "model" not in at.query_params  # a model that cannot load is not written into the link
    assert not at.main.get("subheader")  # no results of another model shown as this one's
    at.button(key="problem_action_model").click().run()
    assert not at.exception
    assert at.sidebar.selectbox(key="w_model").value == "efficientnet_lite0"
    assert at.main.get("subheader") and not at.main.error


def test_upload_caps_let_weights_through_and_keep_photos_small(app):
    """The server's cap must admit the own-weights limit; the photo uploader refuses more than the loader reads."""
    import tomllib
    from pathlib import Path

    from cam_core.imaging import DEFAULT_MAX_BYTES
    from models.own_weights import MAX_WEIGHT_BYTES

    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 >= MAX_WEIGHT_BYTES
    at = app.run()
    assert at.sidebar.file_uploader[0].proto.max_upload_size_mb * 2**20 == DEFAULT_MAX_BYTES
    at.sidebar.selectbox(key="w_model").set_value("own").run()
    caps = {u.proto.label: u.proto.max_upload_size_mb * 2**20 for u in at.sidebar.file_uploader}
    assert caps["Weights (.safetensors, .pth, .pt)"] == MAX_WEIGHT_BYTES


def test_errors_go_to_the_server_log_with_their_traceback(app):
    """The page shows one line; the server log gets the same message with the traceback behind it."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("cam_explorer")
    logger.addHandler(handler)
    try:
        at = app.run()
        at.sidebar.file_uploader[0].set_value(("broken.png", b"not an image", "image/png")).run()
    finally:
        logger.removeHandler(handler)
    shown = [e.value for e in at.error]
    assert len(shown) == 1 and shown[0].startswith("broken.png: ") and "Traceback" not in shown[0], shown
    logged = [r for r in records if r.exc_info and "broken.png" in r.getMessage()]
    assert logged and logged[0].levelno == logging.WARNING
    assert "Traceback" in logging.Formatter().format(logged[0])


def test_changing_the_class_of_an_occlusion_view_costs_no_forward_pass(app):
    import numpy as np

    from cam_core.explain import explain
    from ui import cache

    app.session_state["view"] = {"method": "occlusion", "params": {"occlusion": {"patch": 96, "stride": 96}}}
    at = app.run()
    _no_problem(at)
    assert ENGINE_CALLS["explain"] == 1
    keyed(at, "selectbox", "class").set_value(967).run()  # espresso: the map comes from the same windows
    _no_problem(at)
    assert ENGINE_CALLS["explain"] == 1
    assert "espresso (967)" in " ".join(m.value for m in at.markdown)
    # The page's entry, asked for again here, is derived (no engine run) and equals a fresh explain.
    import models
    import torch

    from ui.state import Context, sample_ref

    backbone = cache.get_backbone(models.DEFAULT_MODEL, "cpu")
    ctx = Context(models.DEFAULT_MODEL, backbone, torch.device("cpu"), "CPU", sample_ref("chelsea"))
    params = {"patch": 96, "stride": 96}
    shown = cache.explain_cached(ctx, "occlusion", None, 967, params)
    assert ENGINE_CALLS["explain"] == 1
    direct = explain(backbone.model, backbone.preprocess(ctx.image.image), "occlusion", target_class=967, **params)
    assert shown.class_idx == direct.class_idx == 967
    np.testing.assert_allclose(shown.heatmap, direct.heatmap, atol=1e-6)
    assert abs(shown.prob - direct.prob) < 1e-6
    # what a long run shows before it starts: measured now, so a time
    assert cache.expected_text(ctx, "occlusion", params).startswith("about ")
    assert cache.expected_text(ctx, "scorecam", {"max_channels": 64}).startswith(("about ", "first run"))
