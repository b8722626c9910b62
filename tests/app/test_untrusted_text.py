"""Text that comes from outside — a link's parameters, an uploaded file's name — is shown as typed: never as a
link, an image fetched from another host, coloured text or a formula (ui.widgets.literal)."""
from __future__ import annotations

from ui.samples import SAMPLES
from ui.widgets import literal

HOSTILE = "**BIG** [click](http://example.invalid/x) ![t](http://example.invalid/t.png) <http://a.invalid> :material/home: $x$"


def test_literal_escapes_every_markdown_trigger_and_keeps_the_text():
    out = literal(HOSTILE, limit=1000)
    unescaped = out.replace("\\", "")
    assert unescaped == HOSTILE  # the same characters, each trigger preceded by a backslash
    for ch in "*[]()!<>$":
        if ch in "()":
            continue  # harmless once the brackets are escaped
        assert all(out[i - 1] == "\\" for i, c in enumerate(out) if c == ch), ch


def test_literal_cuts_long_text_and_drops_control_characters():
    assert literal("a\x00b\nc\u202ed") == "abcd"
    assert literal("x" * 500, limit=10) == "x" * 9 + "…"


def test_a_crafted_link_cannot_put_a_link_or_image_in_the_notice(app):
    app.query_params["image"] = "upload:" + HOSTILE
    at = app.run()
    assert not at.exception
    notices = [w.value for w in at.main.warning]
    assert len(notices) == 1 and "This link was made on an uploaded photo" in notices[0]
    body = notices[0]
    assert HOSTILE not in body and body.count(literal(HOSTILE)) == 2  # the name, escaped, in both places
    assert "\\!\\[t\\](http://example.invalid/t.png)" in body


def test_an_uploaded_file_name_is_shown_as_typed(app):
    at = app.run()
    name = "![t](http:example.invalid:t.png).png"
    at.sidebar.file_uploader[0].set_value((name, b"not an image", "image/png")).run()
    assert not at.exception
    shown = [e.value for e in at.main.error] + [c.value for c in at.sidebar.caption]
    assert len(shown) >= 2 and not any(name in s for s in shown)
    assert all(literal(name) in s for s in shown)


def test_a_good_photo_with_a_crafted_name_is_captioned_as_typed(app):
    import io

    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()[::4, ::4]).save(buffer, "PNG")
    name = "![t](http:example.invalid:t.png).png"
    at = app.run()
    at.sidebar.file_uploader[0].set_value((name, buffer.getvalue(), "image/png")).run()
    assert not at.exception
    captions = [c.value for c in at.main.caption if c.value.startswith("Top-1 of")]
    assert len(captions) == 1 and literal(name) in captions[0] and name not in captions[0]


def test_a_mistyped_sample_in_a_link_says_so_and_drops_that_photos_class(app):
    app.query_params["image"] = "cofee"
    app.query_params["class"] = "967"
    at = app.run()
    assert not at.exception
    notices = [w.value for w in at.main.warning]
    assert len(notices) == 1 and "sample photo “cofee”" in notices[0] and "did you mean" in notices[0], notices
    assert f"did you mean “{SAMPLES['coffee'].caption}”" in notices[0]
    assert at.sidebar.selectbox(key="w_sample").value == "chelsea"  # the default, said so
    assert "Egyptian cat" in " ".join(m.value for m in at.main.markdown)  # its own top-1, not class 967
    at.sidebar.selectbox(key="w_sample").set_value("astronaut").run()
    assert not [w for w in at.main.warning if "cofee" in w.value]  # a photo picked: the notice has done its job
