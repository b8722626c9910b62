"""Invariance sweeps (Zeiler & Fergus 2014, fig. 5): translate, rotate or scale the photo over a range and
measure, for each value, the target class probability and how far a layer's feature vector moved.

The distance is Euclidean between the layer's full flattened activation (C·H·W, Zeiler & Fergus's
"feature vector") for the transformed and the original image, divided by the original's norm.
Transforms are affine maps of the photo onto a canvas of the same size (PIL, bilinear), so the model's
input keeps its size and feature vectors stay comparable; the uncovered area is grey or mirrored.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image
from torch import nn

from .errors import CamError
from .hygiene import eval_mode
from .recorder import record
from .layers import resolve_layer

#: Transformations offered, with the unit of their value and the value that changes nothing.
TRANSFORMS: dict[str, tuple[str, float]] = {"translate": ("px", 0.0), "rotate": ("°", 0.0), "scale": ("×", 1.0)}
EDGES = ("grey", "reflect")
GREY = (128, 128, 128)
MAX_STEPS = 64
#: Scale factors allowed (below 1/3 a mirrored canvas would run out of picture).
SCALE_RANGE = (0.34, 4.0)
#: Long side of the working copy the sweep transforms (the model resizes to its own input anyway).
WORK_SIDE = 768


@dataclass
class Sweep:
    """One sweep: for each ``values[i]``, the target ``probs[i]``, the feature ``distances[i]``, the top-1
    class ``top_classes[i]`` and a thumbnail ``thumbs[i]`` of the transformed image."""

    kind: str
    layer: str
    class_idx: int
    values: list[float]
    probs: list[float]
    distances: list[float]
    top_classes: list[int]
    thumbs: list[Image.Image] = field(repr=False)
    edge: str = "grey"


def _affine(kind: str, value: float, w: float, h: float) -> list[float]:
    """PIL's output→input affine coefficients for one transform about the image centre."""
    cx, cy = w / 2.0, h / 2.0
    if kind == "translate":  # shift right by ``value`` pixels
        return [1.0, 0.0, -value, 0.0, 1.0, 0.0]
    if kind == "rotate":  # counter-clockwise by ``value`` degrees (as ``Image.rotate``)
        t = -math.radians(value)
        a, b = round(math.cos(t), 15), round(math.sin(t), 15)
        m = [a, b, 0.0, -b, a, 0.0]
    elif kind == "scale":  # zoom by ``value`` (>1 enlarges)
        m = [1.0 / value, 0.0, 0.0, 0.0, 1.0 / value, 0.0]
    else:
        raise CamError(f"unknown transformation {kind!r}; choose one of {', '.join(TRANSFORMS)}")
    m[2] = cx - (m[0] * cx + m[1] * cy)
    m[5] = cy - (m[3] * cx + m[4] * cy)
    return m


def _mirrored(image: Image.Image) -> Image.Image:
    """A 3×3 mosaic of the image and its mirror images (the centre tile is the image itself)."""
    w, h = image.size
    lr = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    tb = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    both = lr.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    canvas = Image.new("RGB", (3 * w, 3 * h))
    for row, (side, middle) in enumerate(((both, tb), (lr, image), (both, tb))):
        canvas.paste(side, (0, row * h))
        canvas.paste(middle, (w, row * h))
        canvas.paste(side, (2 * w, row * h))
    return canvas


def check(kind: str, value: float, edge: str = "grey") -> None:
    """Raise ``CamError`` for an unknown transformation or edge mode, or a scale outside ``SCALE_RANGE``."""
    if kind not in TRANSFORMS:
        raise CamError(f"unknown transformation {kind!r}; choose one of {', '.join(TRANSFORMS)}")
    if edge not in EDGES:
        raise CamError(f"unknown edge mode {edge!r}; choose one of {', '.join(EDGES)}")
    if not math.isfinite(value):
        raise CamError(f"{kind} value must be a finite number, got {value!r}")
    if kind == "scale" and not SCALE_RANGE[0] <= value <= SCALE_RANGE[1]:
        raise CamError(f"scale factor {value:g} is outside {SCALE_RANGE[0]:g}–{SCALE_RANGE[1]:g}")


def transform_image(image: Image.Image, kind: str, value: float, edge: str = "grey") -> Image.Image:
    """``image`` translated (px, to the right), rotated (degrees, counter-clockwise) or scaled (factor)
    about its centre, on a canvas of the same size; uncovered area grey or mirrored (``edge="reflect"``)."""
    check(kind, value, edge)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    w, h = rgb.size
    m = _affine(kind, float(value), w, h)
    if edge == "reflect":
        m[2] += w
        m[5] += h
        return _mirrored(rgb).transform((w, h), Image.Transform.AFFINE, m, resample=Image.Resampling.BILINEAR)
    return rgb.transform((w, h), Image.Transform.AFFINE, m, resample=Image.Resampling.BILINEAR, fillcolor=GREY)


def _forward(model: nn.Module, x: torch.Tensor, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (N×classes) and the layer's flattened activations (N×D) from one forward."""
    with eval_mode(model):
        rec = record(model, x, [layer])
    kept = rec.calls[next(iter(rec.calls))][0]
    return rec.logits.float().softmax(dim=1), kept.flatten(1).float()


def sweep(model: nn.Module, preprocess: Callable[[Image.Image], torch.Tensor], image: Image.Image, kind: str,
          values: Sequence[float], layer: str, target_class: int | None = None, *, edge: str = "grey",
          batch_size: int = 8, thumb_side: int = 160, work_side: int = WORK_SIDE,
          progress: Callable[[int, int], None] | None = None) -> Sweep:
    """Transform ``image`` by each of ``values`` and measure the class probability and feature distance.

    ``preprocess`` turns a PIL image into the model's 1×3×H×W input. Images larger than ``work_side`` are
    first shrunk (aspect kept) and translations scaled with them, so values stay in the photo's pixels.
    ``target_class`` ``None`` follows the original image's top-1 class. Transformed images run through the
    model ``batch_size`` at a time; ``progress(done, total)`` is called after each batch.
    """
    values = [float(v) for v in values]
    if not values:
        raise CamError("an invariance sweep needs at least one value")
    if len(values) > MAX_STEPS:
        raise CamError(f"{len(values)} steps, over the limit of {MAX_STEPS}")
    for v in values:
        check(kind, v, edge)
    layer_name, module = resolve_layer(model, layer)
    work = image if image.mode == "RGB" else image.convert("RGB")
    factor = 1.0
    if max(work.size) > work_side:
        factor = work_side / max(work.size)
        work = work.resize((max(1, round(work.width * factor)), max(1, round(work.height * factor))),
                           Image.Resampling.LANCZOS)

    base_probs, base_feat = _forward(model, preprocess(work), module)
    if target_class is None:
        target_class = int(base_probs[0].argmax())
    if not 0 <= int(target_class) < base_probs.shape[1]:
        raise CamError(f"class {target_class} does not exist: the model has {base_probs.shape[1]} classes")
    norm = float(base_feat[0].norm())
    if norm == 0.0:
        raise CamError(f"layer {layer_name!r} is all zeros for this image: no distance can be normalized")

    probs: list[float] = []
    distances: list[float] = []
    tops: list[int] = []
    thumbs: list[Image.Image] = []
    step = max(1, int(batch_size))
    for start in range(0, len(values), step):
        chunk = values[start:start + step]
        images = [transform_image(work, kind, v * factor if kind == "translate" else v, edge) for v in chunk]
        x = torch.cat([preprocess(im) for im in images])
        p, feat = _forward(model, x, module)
        if feat.shape[1] != base_feat.shape[1]:
            raise CamError(f"layer {layer_name!r} changed size under the transformation")
        probs += p[:, int(target_class)].tolist()
        tops += p.argmax(dim=1).tolist()
        distances += ((feat - base_feat).norm(dim=1) / norm).tolist()
        for im in images:
            small = im.copy()
            small.thumbnail((thumb_side, thumb_side), Image.Resampling.LANCZOS)
            thumbs.append(small)
        if progress is not None:
            progress(min(start + step, len(values)), len(values))
    return Sweep(kind=kind, layer=layer_name, class_idx=int(target_class), values=values, probs=probs,
                 distances=distances, top_classes=tops, thumbs=thumbs, edge=edge)


def default_values(kind: str, low: float, high: float, steps: int) -> list[float]:
    """``steps`` evenly spaced values from ``low`` to ``high``, always including the identity when in range."""
    if steps < 2:
        return [float(low)]
    vals = [low + (high - low) * i / (steps - 1) for i in range(steps)]
    identity = TRANSFORMS[kind][1] if kind in TRANSFORMS else 0.0
    if low <= identity <= high and not any(abs(v - identity) < 1e-9 for v in vals):
        vals = sorted(vals + [identity])
    return [round(v, 6) for v in vals]
