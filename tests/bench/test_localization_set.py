"""The localization set's boxes are exact, its positions reproducible, its object sizes in the asked range."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import localization_set as ls  # noqa: E402


def test_box_is_exactly_the_pasted_pixels() -> None:
    """A plain object on a plain background: the pixels that changed are exactly the box, for many draws."""
    background = Image.new("RGB", (200, 150), (10, 20, 30))
    obj = Image.new("RGB", (37, 61), (250, 200, 100))
    rng = np.random.default_rng(7)
    for fraction in (0.15, 0.2, 0.27, 0.35):
        out, (x0, y0, x1, y1) = ls.paste(background, obj, fraction, rng)
        changed = np.any(np.asarray(out) != np.asarray(background), axis=-1)
        rows, cols = np.nonzero(changed)
        assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x0, y0, x1, y1)
        assert changed[y0:y1, x0:x1].all()
        assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 150


def test_real_set_box_holds_the_resized_object() -> None:
    """On the real composites, the box region is the object cut-out resized to the box, pixel for pixel."""
    for comp in ls.build(count=7, seed=3):
        x0, y0, x1, y1 = comp.box
        obj = ls.object_image(comp.obj).resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
        region = np.asarray(comp.image)[y0:y1, x0:x1]
        assert np.array_equal(region, np.asarray(obj))
        outside = np.asarray(comp.image).copy()
        outside[y0:y1, x0:x1] = 0
        texture = np.asarray(ls.texture_image(comp.texture)).copy()
        texture[y0:y1, x0:x1] = 0
        assert np.array_equal(outside, texture)  # nothing else was touched


def test_seeded_positions_are_reproducible() -> None:
    first = [(c.box, c.fraction, c.obj, c.texture) for c in ls.build(count=10, seed=5)]
    again = [(c.box, c.fraction, c.obj, c.texture) for c in ls.build(count=10, seed=5)]
    other = [(c.box, c.fraction, c.obj, c.texture) for c in ls.build(count=10, seed=6)]
    assert first == again
    assert [b for b, *_ in first] != [b for b, *_ in other]


def test_object_fraction_within_the_asked_range() -> None:
    lo, hi = 0.2, 0.3
    for comp in ls.build(count=14, seed=1, fraction=(lo, hi)):
        x0, y0, x1, y1 = comp.box
        assert lo <= comp.fraction <= hi
        long_side = max(x1 - x0, y1 - y0) / ls.SIDE
        assert lo - 1 / ls.SIDE <= long_side <= hi + 1 / ls.SIDE
        assert comp.image.size == (ls.SIDE, ls.SIDE)


def test_every_object_meets_every_texture_in_a_full_round() -> None:
    n, t = len(ls.OBJECTS), len(ls.TEXTURES)
    pairs = {(c.obj, c.texture) for c in ls.build(count=n * t, seed=0)}
    assert len({o for o, _ in pairs}) == n
    assert all(len({tx for o, tx in pairs if o == obj.name}) == t for obj in ls.OBJECTS)
