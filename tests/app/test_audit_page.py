"""The Audit page as a person uses it (AppTest): open an audit, read its accuracy, filter, open an image in
Inspect; a name that would leave the audits folder shows a message and nothing else. Figures from the hand-made
sample audit (tests/audit_sample.py)."""
from __future__ import annotations

import pytest

from tests import audit_sample

PAGE = "pages/audit.py"


@pytest.fixture
def audits(tmp_path, monkeypatch):
    root = tmp_path / "audits"
    audit_sample.build(root / "run1")
    audit_sample.build(tmp_path / "secret" / "theirs")  # an audit outside the audits folder
    (root / "link").symlink_to(tmp_path / "secret" / "theirs", target_is_directory=True)
    monkeypatch.setenv("CAM_EXPLORER_AUDITS", str(root))
    return root


def _captions(at) -> list[str]:
    return [c.value for c in at.caption if c.value.endswith(".png") or ".png ·" in c.value]


def _open(app, name: str):
    app.query_params["audit"] = name
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    return app


def test_open_filter_and_sort(app, audits):
    at = _open(app, "run1")
    assert at.selectbox(key="w_audit_pick").options == ["run1"]  # the symlink leading out is not offered
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "7" and metrics["Errors"] == "1"
    assert metrics["Top-1 accuracy"] == "50.0%" and metrics["Top-5 accuracy"] == "83.3%"
    assert metrics["Right for the wrong reason"] == "1"
    assert [b.label for b in at.get("download_button")] == ["Review report (HTML)"]
    from ui.audit_view import report_html

    html = report_html((audits / "run1").resolve())  # what the button hands over
    assert 'id="top1">50.0%<' in html and html.count("data:image/png;base64,") == 4 and "map only" not in html
    assert any("6 images match" in m.value for m in at.markdown)
    # sorted by confidence, highest first: d .95, a .90, b .80, c .70, e .60, f .50
    assert [c.split(" ·")[0] for c in _captions(at)] == ["d.png", "a.png", "b.png", "c.png", "e.png", "f.png"]
    from ui.engine import ENGINE_CALLS

    tiles = ENGINE_CALLS["audit_tile"]
    at.segmented_control(key="w_audit_outcome").set_value("incorrect").run()
    assert ENGINE_CALLS["audit_tile"] == tiles  # d, b, f were drawn already: nothing recomputed
    assert any("3 images match" in m.value for m in at.markdown)
    assert [c.split(" ·")[0] for c in _captions(at)] == ["d.png", "b.png", "f.png"]
    at.selectbox(key="w_audit_class").set_value(2).run()  # cup, incorrect: f only
    assert [c.split(" ·")[0] for c in _captions(at)] == ["f.png"]
    assert any(c.startswith("Mean gradcam map of cup (incorrect): 1 map,") for el in at.main.get("image") for c in el.captions)


def test_hostile_names_show_a_message(app, audits):
    at = _open(app, "../secret")  # from a link
    assert [e.value for e in at.error] == ["audit '../secret': '..' is not allowed; give a name inside the audits "
                                           "folder"]
    assert not at.metric  # nothing of an audit is shown
    for name, message in (("run1", None), (str(audits / "run1"), "absolute paths are not allowed"),
                          ("run1/../../secret", "'..' is not allowed"), ("nope", "no such audit"),
                          ("link", "leads outside the audits folder")):
        at.text_input(key="w_audit_typed").input(name).run()  # typed
        assert not at.exception, at.exception
        if message is None:
            assert not at.error and at.metric
            continue
        assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
        assert not at.metric  # the previous audit's figures are gone


def test_open_in_inspect(app, audits):
    at = _open(app, "run1")
    at.button(key="audit_inspect_3").click().run()  # d.png
    assert not at.exception, at.exception
    assert not at.warning and not at.error, [w.value for w in (*at.warning, *at.error)]
    assert at.session_state["_uploaded_image"].name == "d.png"
    assert at.session_state["view"]["method"] == "gradcam"
    assert [t.value for t in at.title] == ["Inspect"]


def _photo_zip() -> bytes:
    import io
    import zipfile

    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for folder, name, photo in (("tabby", "chelsea.png", data.chelsea()), ("espresso", "coffee.png",
                                                                                 data.coffee())):
            png = io.BytesIO()
            Image.fromarray(photo).resize((160, 120)).save(png, format="PNG")
            z.writestr(f"photos/{folder}/{name}", png.getvalue())
        z.writestr("photos/tabby/broken.png", b"not an image")
    return buf.getvalue()


def test_start_an_audit_on_a_zip_and_watch_it_finish(app, audits):
    """The ZIP runs through `cam-explorer audit` in the background; reruns (as a reload would) show its progress
    from the disk until it is done, then its figures: 3 images, 1 error, 2 labelled."""
    import time

    app.switch_page(PAGE).run()
    app.text_input(key="w_audit_new_name").input("mine").run()
    app.file_uploader(key="w_audit_new_zip").set_value(("photos.zip", _photo_zip(), "application/zip")).run()
    app.button(key="audit_start").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert (audits / "mine" / "images" / "tabby" / "chelsea.png").is_file()
    deadline = time.monotonic() + 240
    while (not app.metric or app.get("progress") or app.info) and time.monotonic() < deadline:
        time.sleep(2)
        app.run()
        assert not app.exception and not app.error, [e.value for e in app.error]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Images"] == "3" and metrics["Errors"] == "1"
    assert any("2 images match" in m.value for m in app.markdown)
    assert (audits / "mine" / "manifest.json").is_file()


def test_start_refuses_a_zip_with_dot_dot(app, audits):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../evil.png", b"1")
    app.switch_page(PAGE).run()
    app.text_input(key="w_audit_new_name").input("evil").run()
    app.file_uploader(key="w_audit_new_zip").set_value(("evil.zip", buf.getvalue(), "application/zip")).run()
    app.button(key="audit_start").click().run()
    assert any("climbs out of the archive with '..'" in e.value for e in app.error)
    assert not (audits / "evil").exists() and not (audits.parent / "evil.png").exists()
