"""A localization set from real photos: objects cut out of skimage / scikit-learn sample photos, scaled to a
fraction of the frame and pasted at seeded positions onto real textures, each with its exact box.

Why: choosing a default layer or method setting needs maps scored against a known object position, and no
labelled detection set ships offline. A composite's box is known exactly (it is where the object was pasted),
and the object is one the model recognises on its own (checked by ``bench/localization.py``, which drops an
object whose expected class is not in the model's top 5 on the cut-out itself).

The objects are rectangular crops: the box is the whole pasted rectangle, so it holds every pasted pixel and
nothing else. Only pip-installed data is used (scikit-image's bundled images, scikit-learn's sample images):
no download. This belongs to the benchmarks and their tests, not to the product.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

SIDE = 320  # composite side in pixels (square): the model's preprocessing resizes it
FRACTION = (0.15, 0.35)  # the object's longer side as a fraction of the frame side


@dataclass(frozen=True)
class ObjectSource:
    """A photo's object: ``loader`` gives the photo, ``crop`` (y0, y1, x0, x1) cuts the object out,
    ``label`` is its ImageNet class name (as the model's categories spell it)."""

    name: str
    loader: Callable[[], np.ndarray]
    crop: tuple[int, int, int, int]
    label: str


@dataclass(frozen=True)
class Composite:
    """One composite: ``image`` (RGB, ``SIDE``×``SIDE``), the object's ``box`` (x0, y0, x1, y1) in the image's
    pixel edges (x1, y1 exclusive, like a slice), its ``label``, and how it was made."""

    image: Image.Image
    box: tuple[int, int, int, int]
    label: str
    obj: str
    texture: str
    fraction: float


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        array = getattr(data, name)()
        return array[0] if name == "stereo_motorcycle" else array  # (left, right, disparity)
    return load


def _sklearn(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]  # 0: china.jpg, 1: flower.jpg
    return load


# Crops chosen so that EfficientNet-Lite0 names the expected class in its top 5 on the cut-out alone.
OBJECTS: tuple[ObjectSource, ...] = (
    ObjectSource("chelsea", _skimage("chelsea"), (20, 300, 60, 340), "Egyptian cat"),
    ObjectSource("coffee", _skimage("coffee"), (30, 330, 100, 480), "espresso"),
    ObjectSource("motorcycle", _skimage("stereo_motorcycle"), (40, 500, 60, 700), "moped"),
    ObjectSource("camera", _skimage("camera"), (40, 512, 100, 400), "tripod"),
    ObjectSource("rocket", _skimage("rocket"), (0, 427, 230, 440), "missile"),
    ObjectSource("clock", _skimage("clock"), (0, 300, 0, 400), "wall clock"),
    ObjectSource("flower", _sklearn(1), (0, 300, 200, 500), "daisy"),
)

TEXTURES: dict[str, Callable[[], np.ndarray]] = {
    name: _skimage(name) for name in ("brick", "grass", "gravel", "moon", "hubble_deep_field", "immunohistochemistry")
}


def rgb(array: np.ndarray) -> Image.Image:
    """An skimage array (grey, RGB or RGBA; uint8 or bool/float in 0..1) as an RGB ``PIL.Image``."""
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(array[..., :3]), "RGB")


@lru_cache(maxsize=None)
def object_image(name: str) -> Image.Image:
    """The cut-out of the object called ``name`` (a rectangle of its photo)."""
    source = next(o for o in OBJECTS if o.name == name)
    y0, y1, x0, x1 = source.crop
    return rgb(source.loader()[y0:y1, x0:x1])


@lru_cache(maxsize=None)
def texture_image(name: str, side: int = SIDE) -> Image.Image:
    """The texture ``name`` as a ``side``×``side`` RGB background (its central square, resized)."""
    array = TEXTURES[name]()
    h, w = array.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return rgb(array[top:top + s, left:left + s]).resize((side, side), Image.Resampling.LANCZOS)


def paste(background: Image.Image, obj: Image.Image, fraction: float,
          rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """``obj`` scaled so its longer side is ``fraction`` of the background's shorter side, pasted at a position
    drawn from ``rng`` (uniform over where it fits whole); returns the composite and the object's box
    (x0, y0, x1, y1), x1/y1 exclusive: exactly the pasted pixels."""
    width, height = background.size
    long_side = max(1, round(fraction * min(width, height)))
    scale = long_side / max(obj.size)
    w, h = max(1, round(obj.size[0] * scale)), max(1, round(obj.size[1] * scale))
    w, h = min(w, width), min(h, height)
    x0 = int(rng.integers(0, width - w + 1))
    y0 = int(rng.integers(0, height - h + 1))
    out = background.copy()
    out.paste(obj.resize((w, h), Image.Resampling.LANCZOS), (x0, y0))
    return out, (x0, y0, x0 + w, y0 + h)


def build(count: int = 49, seed: int = 0, fraction: tuple[float, float] = FRACTION, side: int = SIDE,
          objects: Sequence[str] | None = None) -> list[Composite]:
    """``count`` composites: objects and textures taken in turn (every object on every texture as the count
    allows), fraction and position drawn from a generator seeded with ``seed`` — the same seed, the same set."""
    names = list(objects) if objects is not None else [o.name for o in OBJECTS]
    labels = {o.name: o.label for o in OBJECTS}
    textures = list(TEXTURES)
    rng = np.random.default_rng(seed)
    out: list[Composite] = []
    for i in range(count):
        name = names[i % len(names)]
        texture = textures[(i // len(names) + i % len(names)) % len(textures)]
        f = float(rng.uniform(*fraction))
        image, box = paste(texture_image(texture, side), object_image(name), f, rng)
        out.append(Composite(image, box, labels[name], name, texture, f))
    return out
