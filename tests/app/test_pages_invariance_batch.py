"""Invariance and Batch pages through AppTest: each renders its main output, bad input shows st.error."""
from __future__ import annotations

import pytest

from tests.app.conftest import png_bytes

BATCH = "pages/batch.py"
INVARIANCE = "pages/invariance.py"


def _no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _flipped(sample: str) -> bytes:
    """A sample mirrored left-right: an image no other test has put in the caches."""
    import io

    from PIL import Image, ImageOps

    buf = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(png_bytes(sample)))).save(buf, format="PNG")
    return buf.getvalue()


def _tiles(at) -> list:
    """Gallery images in the main area (the sidebar's photo is not one of them)."""
    return list(at.main.get("image"))


def test_batch_two_good_uploads_and_one_broken_file(app):
    at = app.run()
    at.switch_page(BATCH).run()
    _no_exception(at)
    files = [("cat.png", png_bytes("chelsea"), "image/png"), ("cup.png", png_bytes("coffee"), "image/png"),
             ("broken.jpg", b"this is not a JPEG at all", "image/jpeg")]
    at.file_uploader(key="batch_files").set_value(files).run()
    _no_exception(at)
    assert len(_tiles(at)) == 2
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("broken.jpg: ") and "\n" not in errors[0]
    labels = [m.value for m in at.markdown if " — " in m.value and m.value.startswith("**")]
    assert len(labels) == 2 and labels[1].startswith("**espresso**")
    assert [b.label for b in at.get("download_button")] == ["Overlays ZIP (2 PNG)", "Predictions CSV"]


def test_batch_a_refused_archive_is_one_error_tile_and_the_photo_beside_it_is_explained(app):
    """A file named .zip that is not one used to abort the whole batch ("reading the files" card, nothing shown)."""
    at = app.run()
    at.switch_page(BATCH).run()
    files = [("cat.png", png_bytes("chelsea"), "image/png"), ("photos.zip", b"PK\x03\x04 cut short", "application/zip")]
    at.file_uploader(key="batch_files").set_value(files).run()
    _no_exception(at)
    assert len(_tiles(at)) == 1
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("photos.zip: not a readable ZIP archive"), errors
    summary = [c.value for c in at.main.caption if " files · " in c.value]
    assert summary and summary[0].startswith("2 files · 1 explained · 1 could not be read"), summary


def test_batch_without_uploads_shows_the_samples(app):
    at = app.run()
    at.switch_page(BATCH).run()
    _no_exception(at)
    from ui.samples import SAMPLES

    assert len(_tiles(at)) == len(SAMPLES)
    assert not at.error


def test_batch_alpha_redraws_without_recomputing(app):
    from ui.cache import ENGINE_CALLS

    at = app.run()
    at.switch_page(BATCH).run()
    before = ENGINE_CALLS["batch_item"]
    at.file_uploader(key="batch_files").set_value([("flipped.png", _flipped("coffee"), "image/png")]).run()
    _no_exception(at)
    calls = ENGINE_CALLS["batch_item"]
    assert calls == before + 1  # a new image is computed once…
    at.slider(key="w_alpha").set_value(0.9).run()
    _no_exception(at)
    assert ENGINE_CALLS["batch_item"] == calls
    assert len(_tiles(at)) == 1  # …and moving alpha only redraws it


def test_invariance_shows_both_charts_and_thumbnails(app):
    from ui.cache import ENGINE_CALLS

    at = app.run()
    at.session_state["w_inv_steps"] = 3
    at.switch_page(INVARIANCE).run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    thumbs = [c for el in at.main.get("image") for c in el.captions]
    assert thumbs == ["-60px · p " + thumbs[0].split(" · p ")[1], *thumbs[1:]] and len(thumbs) == 3
    assert thumbs[1].startswith("0px · p ") and thumbs[1].endswith(" · d 0.00")  # the unchanged photo
    calls = ENGINE_CALLS["invariance"]
    at.radio(key="w_inv_kind").set_value("rotate").run()
    _no_exception(at)
    assert ENGINE_CALLS["invariance"] == calls + 1
    assert [c.split(" · ")[0] for el in at.main.get("image") for c in el.captions] == ["-90°", "0°", "90°"]


def test_invariance_with_a_broken_upload_shows_error(app):
    at = app.run()
    at.session_state["w_inv_steps"] = 3
    at.switch_page(INVARIANCE).run()
    at.sidebar.file_uploader[0].set_value(("broken.png", b"not an image", "image/png")).run()
    _no_exception(at)
    assert any(e.value.startswith("broken.png: ") for e in at.error)


@pytest.mark.slow
def test_batch_scores_each_map_when_asked_and_shows_the_mean(app):
    from ui.cache import ENGINE_CALLS

    at = app.run()
    at.switch_page(BATCH).run()
    at.file_uploader(key="batch_files").set_value([("cat.png", png_bytes("chelsea"), "image/png")]).run()
    assert not at.get("metric")  # nothing scored until asked
    at.multiselect(key="w_batch_metrics").set_value(["deletion"]).run()
    _no_exception(at)
    shown = [m for m in at.get("metric") if "Deletion" in m.label]
    assert len(shown) == 1 and 0.0 <= float(shown[0].value) <= 1.0
    before = ENGINE_CALLS["batch_item"]
    at.multiselect(key="w_batch_metrics").set_value(["deletion"]).run()  # same choice: cached
    assert ENGINE_CALLS["batch_item"] == before
