"""Bundled sample photos (they ship inside scikit-image) so a classroom needs no files of its own."""
from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image
from skimage import data


@dataclass(frozen=True)
class Sample:
    """One bundled photo: ``name`` is its skimage.data function, ``caption`` says what is in it."""

    name: str
    caption: str


SAMPLES: dict[str, Sample] = {s.name: s for s in (
    Sample("chelsea", "Chelsea the cat (a tabby)"),
    Sample("coffee", "A cup of espresso"),
    Sample("rocket", "A rocket on its launch pad"),
    Sample("astronaut", "Astronaut Eileen Collins"),
    Sample("stereo_motorcycle", "A motorcycle (left view of a stereo pair)"),
)}

DEFAULT_SAMPLE = "chelsea"


@lru_cache(maxsize=len(SAMPLES))
def sample_png(name: str) -> bytes:
    """The sample ``name`` encoded as PNG bytes (what an upload of it would contain).

    Raises ``KeyError`` for a name that is not in ``SAMPLES``.
    """
    if name not in SAMPLES:
        raise KeyError(name)

    array = getattr(data, name)()
    if name == "stereo_motorcycle":  # returns (left, right, disparity)
        array = array[0]
    buf = io.BytesIO()
    Image.fromarray(array).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()
