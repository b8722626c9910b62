"""Layers' "Top patches over a set" as a teacher uses it (AppTest): pick an audit of the embedded model (made by
the CLI at 64 px on skimage photos inside the audits folder), compute its patches with one click, and see each
channel's strongest images with their activations — the same as a direct forward per photo gives (brute force)
and as the stored file holds; a second visit reads the file; an audit of another model shows a sentence and no
patches; a name leading out of the audits folder is refused."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import models
from cam_core.recorder import record
from cam_core.top_patches import from_table, read_patches
from cam_explorer.cli import main
from tests import audit_sample
from tests.app.conftest import keyed
from ui.engine import ENGINE_CALLS

PAGE = "pages/layers.py"
SIZE = 64
LAYER = "blocks.2.1"
PHOTOS = (("chelsea", (80, 64)), ("coffee", (64, 64)), ("astronaut", (64, 96)), ("rocket", (64, 64)))


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    root = tmp_path_factory.mktemp("audits")
    photos = root / "photos"  # inside the audits folder, so the app may read them
    photos.mkdir()
    for name, size in PHOTOS:
        Image.fromarray(getattr(data, name)()).resize(size).save(photos / f"{name}.png")
    assert main(["audit", str(photos), "--method", "gradcam", "--out", str(root / "lite"), "--layer", "blocks.2",
                 "--input-size", str(SIZE), "--device", "cpu"]) == 0
    audit_sample.build(root / "other")  # made with "tiny-net"
    audit_sample.build(tmp_path_factory.mktemp("elsewhere") / "secret")
    return root


def _brute_force(photos, channel: int) -> list[tuple[str, float]]:
    """Each photo's strongest activation of ``channel`` (a direct forward each), strongest first."""
    backbone = models.load("efficientnet_lite0", device="cpu", input_size=SIZE)
    best = []
    for path in sorted(photos.glob("*.png")):
        with torch.no_grad():
            a = record(backbone.model, backbone.preprocess(Image.open(path).convert("RGB")), [LAYER])
        best.append((path.name, float(a.activations[LAYER][0, channel].max())))
    return sorted(best, key=lambda t: -t[1])


def _open(app, audit: str, monkeypatch, root):
    monkeypatch.setenv("CAM_EXPLORER_AUDITS", str(root))
    app.query_params["audit"] = audit
    app.query_params["layers_top_n"] = "4"
    at = app.run()
    at.switch_page(PAGE).run()
    keyed(at, "selectbox", "feature_layer").set_value(LAYER).run()
    assert not at.exception, at.exception
    return at


def _patches(at) -> list[tuple[str, float]]:
    out = []
    for el in at.main.get("image"):
        for c in el.captions:
            name, sep, value = c.rpartition(" · ")
            if sep and name.endswith(".png"):
                out.append((name, float(value)))
    return out


def test_compute_show_and_read_back(app, audits, monkeypatch):
    at = _open(app, "lite", monkeypatch, audits)
    assert not at.error, [e.value for e in at.error]
    assert any("no top patches of blocks.2.1 yet" in i.value for i in at.info)
    assert not _patches(at)
    at.button(key="patches_compute").click().run()  # the pass runs in the background: look again until it is done
    for _ in range(240):
        if _patches(at) or at.exception or at.error:
            break
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not [b for b in at.button if b.key == "patches_compute"]  # the offer is gone once they are stored
    (picked,) = [m for m in at.multiselect if m.label == "Channels"]
    (channel,) = picked.value
    shown = _patches(at)
    want = _brute_force(audits / "photos", channel)
    assert [n for n, _ in shown] == [n for n, _ in want]  # four photos, k = 9: every photo, strongest first
    np.testing.assert_allclose([v for _, v in shown], [v for _, v in want], rtol=1e-3)
    table, meta = read_patches(audits / "lite", LAYER)  # stored with the audit, as the CLI reads it
    assert meta["model"] == "efficientnet_lite0" and meta["input_size"] == SIZE and meta["images"] == 4
    stored = [p for p in from_table(table) if p.channel == channel]
    assert [p.path for p in stored] == [n for n, _ in shown]
    np.testing.assert_allclose([p.value for p in stored], [v for _, v in shown], rtol=1e-3)
    runs = ENGINE_CALLS["top_patches"]
    assert runs == 1
    picked.set_value([channel, 0 if channel else 1]).run()  # a second channel: read from the file, no pass
    assert not at.exception and ENGINE_CALLS["top_patches"] == runs
    assert len(_patches(at)) == 8


def test_an_audit_of_another_model_shows_a_sentence_and_no_patches(app, audits, monkeypatch):
    at = _open(app, "other", monkeypatch, audits)
    assert any("made with tiny-net" in w.value and "efficientnet_lite0" in w.value for w in at.warning)
    assert not _patches(at) and not [b for b in at.button if b.key == "patches_compute"]


def test_a_name_leading_out_is_refused(app, audits, monkeypatch):
    at = _open(app, "../secret", monkeypatch, audits)
    assert any("'..' is not allowed" in e.value for e in at.error), [e.value for e in at.error]
    assert not _patches(at) and not [b for b in at.button if b.key == "patches_compute"]


def test_the_audit_page_links_to_the_same_audits_patches(app, audits, monkeypatch):
    monkeypatch.setenv("CAM_EXPLORER_AUDITS", str(audits))
    app.query_params["audit"] = "other"
    at = app.run()
    at.switch_page("pages/audit.py").run()
    (link,) = [el for el in at.get("page_link") if el.proto.page.endswith("layers")]
    assert "top-activating images" in link.proto.label
    at.switch_page(PAGE).run()  # following it: the Layers section has the audit the Audit page showed
    assert not at.exception
    assert [s.value for s in at.selectbox if s.label == "Image set (an audit)"] == ["other"]
