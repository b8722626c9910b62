"""cam_core.report: a self-contained HTML page whose embedded images decode back to what was given."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser

import numpy as np
from PIL import Image

from cam_core.report import MAX_EMBED_SIDE, build_report


@dataclass
class Pred:
    class_idx: int
    label: str
    prob: float


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs and tag != "a":
                self.srcs.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def _decode(uri: str) -> Image.Image:
    head, b64 = uri.split(",", 1)
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def _report(original, overlay, **kw):
    args = dict(original=original, overlay=overlay, image_name="cat.png", model="EfficientNet-Lite0",
                method="Grad-CAM", layer="bn2", class_idx=285, class_label="Egyptian cat",
                params={"patch": 32, "fill": (0.1, 0.2, 0.3)}, top=[Pred(285, "Egyptian cat", 0.37),
                                                                    Pred(282, "tiger cat", 0.22)],
                score=7.78, prob=0.37, elapsed_ms=286.0, notes=["a note"],
                created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), version="9.9.9")
    args.update(kw)
    return build_report(**args)


def test_images_are_embedded_pixel_exact_and_nothing_is_fetched():
    rng = np.random.default_rng(0)
    original = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    overlay = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    page = _report(original, overlay)
    parser = _Collect()
    parser.feed(page)
    assert len(parser.srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    got = [np.asarray(_decode(s).convert("RGB")) for s in parser.srcs]
    assert np.array_equal(got[0], np.asarray(original)) and np.array_equal(got[1], np.asarray(overlay))


def test_every_field_is_in_the_page():
    img = Image.new("RGB", (8, 6), (10, 20, 30))
    text = page_text(_report(img, img))
    for expected in ("cat.png — 8×6", "EfficientNet-Lite0", "Grad-CAM", "bn2", "Egyptian cat (285)",
                     "patch = 32", "fill = (0.1, 0.2, 0.3)", "tiger cat", "22.00%", "37.00%", "286 ms",
                     "a note", "2026-01-02 03:04:05 UTC", "CAM Explorer 9.9.9"):
        assert expected in text, expected


def page_text(page: str) -> str:
    parser = _Collect()
    parser.feed(page)
    return " ".join(parser.text)


def test_text_is_escaped():
    img = Image.new("RGB", (4, 4))
    page = _report(img, img, image_name='<script>alert("x")</script>.png', class_label="a & b <i>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a &amp; b &lt;i&gt;" in page


def test_large_images_are_scaled_down_keeping_aspect():
    big = Image.new("RGB", (MAX_EMBED_SIDE * 2, MAX_EMBED_SIDE), (200, 100, 50))
    parser = _Collect()
    parser.feed(_report(big, big))
    embedded = _decode(parser.srcs[0])
    assert embedded.size == (MAX_EMBED_SIDE, MAX_EMBED_SIDE // 2)
    assert embedded.convert("RGB").getpixel((5, 5)) == (200, 100, 50)
