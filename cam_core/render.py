"""Turn heat maps and gradients into pictures: colormaps, overlays on the original image, PNG/.npy.

Heat maps arrive at the model input's resolution (a pure rescale of the whole uploaded image);
everything shown or saved here is mapped back to the uploaded image's own height × width.

Display scaling (``display_map``) is separate from ``Explanation.heatmap``: the heat map stays
max-normalised in [0, 1] for callers, while what is *shown* is scaled to a high percentile (99th by
default) so that one hot pixel cannot turn a pixel-space map almost uniformly dark, and signed maps can
be shown centred on zero with a diverging colormap. Resizing and blending use OpenCV (``cv2.resize``,
``cv2.addWeighted``): the same numbers as PyTorch's bilinear resize, without a tensor round trip.
"""
from __future__ import annotations

import io
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Union

import cv2
import numpy as np
from matplotlib import colormaps
from PIL import Image

from cam_core.errors import CamError

__all__ = [
    "COLORMAPS",
    "COLORMAP_NAMES",
    "DIVERGING",
    "DisplayMap",
    "colorize",
    "display_map",
    "signed_map",
    "legend",
    "end_colours",
    "colorbar_strip",
    "checkerboard_fraction",
    "CHECKERBOARD_NOTE",
    "CHECKERBOARD_THRESHOLD",
    "upsample",
    "overlay",
    "gradient_image",
    "heatmap_at_image_size",
    "save_png",
    "save_npy",
    "to_png_bytes",
]

#: Colormap names offered to the user, in the order the UI and CLI list them.
COLORMAP_NAMES: tuple[str, ...] = (
    "jet", "turbo", "viridis", "inferno", "magma", "plasma", "cividis", "hot", "gray", "coolwarm", "bwr",
)

#: Colormaps whose middle is neutral: the ones a signed map (zero at 0.5) is drawn with.
DIVERGING: tuple[str, ...] = ("coolwarm", "bwr")

#: Words for each colormap's low and high ends, for legends ("red = evidence for tabby").
_END_COLOURS: dict[str, tuple[str, str]] = {
    "jet": ("dark blue", "red"), "turbo": ("dark blue", "red"), "viridis": ("purple", "yellow"),
    "inferno": ("black", "yellow"), "magma": ("black", "pale yellow"), "plasma": ("blue", "yellow"),
    "cividis": ("blue", "yellow"), "hot": ("black", "white"), "gray": ("black", "white"),
    "coolwarm": ("blue", "red"), "bwr": ("blue", "red"),
}

# Rows processed at once when blending: bounds float32 temporaries for very large images.
_BLEND_PIXELS = 1 << 21


def _build_colormaps() -> dict[str, np.ndarray]:
    """256×3 uint8 lookup tables taken from matplotlib, built once at import."""
    tables = {}
    for name in COLORMAP_NAMES:
        cmap = colormaps[name].resampled(256)
        lut = cmap(np.arange(256), bytes=True)[:, :3]
        lut = np.ascontiguousarray(lut, dtype=np.uint8)
        lut.setflags(write=False)
        tables[name] = lut
    return tables


#: name -> 256×3 uint8 lookup table (read-only).
COLORMAPS: dict[str, np.ndarray] = _build_colormaps()


def _lut(cmap: str) -> np.ndarray:
    try:
        return COLORMAPS[cmap]
    except (KeyError, TypeError):
        raise CamError(f"unknown colormap {cmap!r}; choose one of {', '.join(COLORMAPS)}") from None


def _heatmap_array(heatmap: Any) -> np.ndarray:
    """The 2-D float32 map from an array, a tensor or an Explanation (its ``heatmap``)."""
    if isinstance(heatmap, DisplayMap):
        heatmap = heatmap.values
    elif hasattr(heatmap, "heatmap") and not isinstance(heatmap, np.ndarray):
        heatmap = heatmap.heatmap
    if hasattr(heatmap, "detach"):  # a torch tensor
        heatmap = heatmap.detach().float().cpu().numpy()
    arr = np.asarray(heatmap, dtype=np.float32)
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[-2:]) if int(np.prod(arr.shape[:-2])) == 1 else arr
    if arr.ndim != 2 or arr.size == 0:
        raise CamError(f"a heat map must be a non-empty 2-D array, got shape {tuple(arr.shape)}")
    return arr


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Map values in [0, 1] to RGB through a colormap: uint8 H×W×3 (NaN counts as 0, values clipped).

    Binning follows matplotlib (``floor(v·256)``, 1.0 into the last bin), so the result equals
    ``matplotlib.colormaps[cmap](v, bytes=True)[..., :3]`` for every float32 v in [0, 1].
    """
    lut = _lut(cmap)
    if isinstance(heatmap, DisplayMap):
        heatmap = heatmap.values
    elif hasattr(heatmap, "heatmap") and not isinstance(heatmap, np.ndarray):
        heatmap = heatmap.heatmap
    if hasattr(heatmap, "detach"):
        heatmap = heatmap.detach().float().cpu().numpy()
    # a new float32 array; scaling by a power of two is exact, so the bins match matplotlib's
    idx = np.asarray(heatmap, dtype=np.float32) * np.float32(256.0)
    np.nan_to_num(idx, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(idx, 0.0, 255.0, out=idx)
    return lut[idx.astype(np.uint8)]


def unit_range(a: Any) -> np.ndarray:
    """Min–max scaled to [0, 1] as float32 (a flat map becomes zeros): a feature map shown by its own range."""
    a = np.asarray(a, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def tile(a: Any, cmap: str, width: int) -> Image.Image:
    """A small map min–max scaled, colorized and enlarged with nearest neighbour to about ``width`` pixels
    (each cell stays a visible square)."""
    img = Image.fromarray(colorize(unit_range(a), cmap))
    scale = max(1, round(width / img.width))
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def filter_mosaic(tiles: np.ndarray, per_row: int = 16, cell: int = 40, gap: int = 3) -> Image.Image:
    """First-layer filters (K×kh×kw×3 in [0, 1]) as one mosaic on white, each tile enlarged with nearest
    neighbour to about ``cell`` pixels."""
    k, kh, kw, _ = tiles.shape
    scale = max(1, cell // max(kh, kw))
    th, tw = kh * scale, kw * scale
    rows = -(-k // per_row)
    cols = min(k, per_row)
    canvas = np.full((rows * (th + gap) + gap, cols * (tw + gap) + gap, 3), 255, dtype=np.uint8)
    for i in range(k):
        r, c = divmod(i, per_row)
        block = np.repeat(np.repeat((tiles[i] * 255).round().astype(np.uint8), scale, 0), scale, 1)
        y, x = gap + r * (th + gap), gap + c * (tw + gap)
        canvas[y:y + th, x:x + tw] = block
    return Image.fromarray(canvas)


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``size = (h, w)``: float32, ``align_corners=False`` semantics.

    ``cv2.resize(INTER_LINEAR)`` on float32 samples at pixel centres, giving the same numbers as
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` (no antialiasing, which is
    what the engine uses to bring maps to the input size) to float32 rounding, at about 0.6× its time.
    """
    arr = _heatmap_array(heatmap)
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise CamError(f"cannot resize a heat map to {h}×{w}")
    if arr.shape == (h, w):
        return np.array(arr, dtype=np.float32, copy=True)
    return cv2.resize(np.ascontiguousarray(arr), (w, h), interpolation=cv2.INTER_LINEAR)


def _image_size(image: Any) -> tuple[int, int]:
    """(height, width) of a PIL image, an H×W[×C] array or an (h, w) pair."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, np.ndarray):
        return int(image.shape[0]), int(image.shape[1])
    h, w = image
    return int(h), int(w)


def heatmap_at_image_size(explanation_or_heatmap: Any, image: Any) -> np.ndarray:
    """The heat map resized to the uploaded image's own height × width (float32), as the CLI saves it."""
    return upsample(_heatmap_array(explanation_or_heatmap), _image_size(image))


def _check_alpha(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise CamError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
    if not 0.0 <= a <= 1.0:  # also refuses NaN
        raise CamError(f"alpha must be in [0, 1], got {alpha!r}")
    return a


def overlay(image: Image.Image, heatmap: Any, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """Blend a colorized heat map over the ORIGINAL image at its own resolution.

    ``out = (1 − alpha)·image + alpha·colormap(upsample(heatmap, image size))``, rounded to uint8.
    ``alpha = 0`` gives the image's pixels exactly, ``alpha = 1`` the colorized map exactly.
    """
    a = _check_alpha(alpha)
    _lut(cmap)
    hm_small = _heatmap_array(heatmap)
    if not isinstance(image, Image.Image):
        raise CamError(f"overlay needs a PIL image, got {type(image).__name__}")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    base = np.asarray(rgb)  # H×W×3 uint8, read-only view
    h, w = base.shape[:2]
    if a == 0.0:
        return Image.fromarray(np.array(base, copy=True), "RGB")
    hm = upsample(hm_small, (h, w))
    out = np.empty((h, w, 3), dtype=np.uint8)
    rows = max(1, _BLEND_PIXELS // max(w, 1))
    keep, mix = 1.0 - a, a
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        color = colorize(hm[r0:r1], cmap)
        if a == 1.0:
            out[r0:r1] = color
            continue
        # saturate(round((1 − a)·image + a·colour)) in one pass, no float temporaries
        cv2.addWeighted(np.ascontiguousarray(base[r0:r1]), keep, color, mix, 0.0, dst=out[r0:r1])
    return Image.fromarray(out, "RGB")


def gradient_image(grad: Any) -> np.ndarray:
    """A signed 3×H×W pixel-space gradient as a displayable uint8 H×W×3 image.

    Zero maps to mid-grey and ±(99th percentile of |g|) to the ends (0.5 ± 0.5, the
    Springenberg / Zeiler display convention); an all-zero gradient is uniform grey, never NaN.
    """
    if hasattr(grad, "detach"):
        grad = grad.detach().float().cpu().numpy()
    g = np.asarray(grad, dtype=np.float32)
    while g.ndim == 4 and g.shape[0] == 1:
        g = g[0]
    if g.ndim == 2:
        g = g[None]
    if g.ndim != 3 or g.shape[0] not in (1, 3) or g.size == 0:
        raise CamError(f"a gradient image must be 3×H×W, got shape {tuple(np.shape(grad))}")
    g = np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
    mag = np.abs(g)
    scale = float(np.percentile(mag, 99)) if mag.size else 0.0
    if not scale > 0.0:  # sparse gradients: fall back to the largest magnitude
        scale = float(mag.max())
    if not scale > 0.0:
        img = np.full(g.shape[1:] + (3,), 128, dtype=np.uint8)
        return img
    g *= np.float32(0.5 / scale)
    g += np.float32(0.5)
    np.clip(g, 0.0, 1.0, out=g)
    g *= np.float32(255.0)
    np.rint(g, out=g)
    img = np.moveaxis(g.astype(np.uint8), 0, -1)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return np.ascontiguousarray(img)


@dataclass(frozen=True)
class DisplayMap:
    """A map scaled for the eye: ``values`` float32 H×W in [0, 1], ready for ``colorize``/``overlay``.

    Unsigned: ``values = clip(m / scale, 0, 1)``. Signed: ``values = clip(0.5 + 0.5·m / scale, 0, 1)``, so
    zero sits at 0.5 (the neutral middle of a diverging colormap). ``scale`` is the ``percentile``-th
    percentile of ``|m|`` (the map's maximum when that is 0); values beyond it saturate.
    """

    values: np.ndarray
    signed: bool
    percentile: float
    scale: float

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def caption(self) -> str:
        """How the map was scaled, in words (shown beside it)."""
        where = "max" if self.percentile >= 100 else f"{_ordinal(self.percentile)} percentile"
        if self.signed:
            return f"signed, centred on zero; ±{where} of |value| = ±{self.scale:.3g} at the ends, beyond it saturates"
        if self.percentile >= 100:
            return "scaled to its maximum"
        return f"scaled to its {where} ({self.scale:.3g}); the brightest {100 - self.percentile:g}% saturate"


def _ordinal(p: float) -> str:
    n = f"{p:g}"
    if n.endswith(("11", "12", "13")):
        return n + "th"
    return n + {"1": "st", "2": "nd", "3": "rd"}.get(n[-1], "th")


def signed_map(explanation: Any) -> np.ndarray:
    """The signed 2-D map of an ``Explanation`` at its heat map's size (float32).

    Pixel-space methods: the gradient summed over colour channels (positive where brightening the pixel
    raises the score). Layer and perturbation methods: ``raw`` (the map before ReLU) resized bilinearly.
    """
    grad = getattr(explanation, "gradient", None)
    target_shape = tuple(np.shape(explanation.heatmap))
    if grad is not None:
        g = np.asarray(grad, dtype=np.float32)
        return g.sum(axis=0) if g.ndim == 3 else g
    raw = np.asarray(explanation.raw, dtype=np.float32)
    while raw.ndim > 2 and raw.shape[0] == 1:
        raw = raw[0]
    if raw.shape != target_shape:
        raw = upsample(raw, target_shape)
    return raw


def display_map(source: Any, percentile: float = 99.0, signed: bool = False) -> DisplayMap:
    """Scale a map for display by its ``percentile``-th percentile instead of its maximum.

    ``source``: an ``Explanation`` (its ``heatmap``, or ``signed_map`` when ``signed``) or a 2-D array.
    ``percentile`` in (0, 100]; 100 is plain max normalisation. NaN/inf count as 0. A map with no
    non-zero value comes back all 0 (unsigned) or all 0.5 (signed), never NaN.
    """
    try:
        q = float(percentile)
    except (TypeError, ValueError):
        raise CamError(f"display percentile must be a number in (0, 100], got {percentile!r}") from None
    if not 0.0 < q <= 100.0:
        raise CamError(f"display percentile must be in (0, 100], got {percentile!r}")
    if isinstance(source, DisplayMap):
        raise CamError("this map is already scaled for display")
    if hasattr(source, "heatmap") and not isinstance(source, np.ndarray):
        m = signed_map(source) if signed else _heatmap_array(source.heatmap)
    else:
        m = _heatmap_array(source)
    m = np.nan_to_num(np.asarray(m, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    mag = np.abs(m) if signed else np.maximum(m, 0.0)
    scale = float(np.percentile(mag, q)) if q < 100.0 else float(mag.max())
    if not scale > 0.0:  # sparse maps: the percentile can be 0 while some values are not
        scale = float(mag.max())
    if not scale > 0.0:
        values = np.full(m.shape, 0.5 if signed else 0.0, dtype=np.float32)
    elif signed:
        values = np.clip(m * np.float32(0.5 / scale) + np.float32(0.5), 0.0, 1.0)
    else:
        values = np.clip(m * np.float32(1.0 / scale), 0.0, 1.0)
    values = values.astype(np.float32, copy=False)
    values.setflags(write=False)
    return DisplayMap(values=values, signed=bool(signed), percentile=q, scale=scale)


def end_colours(cmap: str) -> tuple[str, str]:
    """The colormap's low and high ends in words, e.g. ``("dark blue", "red")`` for jet."""
    _lut(cmap)
    return _END_COLOURS.get(cmap, ("low end", "high end"))


def legend(cmap: str, target: str, signed: bool = False) -> str:
    """One line saying what the colours mean, e.g. ``"red = evidence for tabby (281) · dark blue = none"``.

    ``target`` names what the map explains (a class label, or a channel).
    """
    low, high = end_colours(cmap)
    if signed:
        mid = {"coolwarm": "light grey", "bwr": "white"}.get(cmap, "the middle colour")
        return f"{high} = evidence for {target} · {low} = evidence against · {mid} = none"
    return f"{high} = strongest evidence for {target} · {low} = none"


def colorbar_strip(cmap: str, width: int = 256, height: int = 10) -> np.ndarray:
    """The colormap as a horizontal uint8 height×width×3 strip, low end on the left (a legend's bar)."""
    ramp = np.linspace(0.0, 1.0, max(int(width), 2), dtype=np.float32)
    return np.ascontiguousarray(np.broadcast_to(colorize(ramp[None, :], cmap), (max(int(height), 1), ramp.size, 3)))


def checkerboard_fraction(source: Any) -> float:
    """Share of a map's variance at the period-2 frequencies (rows or columns alternating), in [0, 1].

    Transposed strided convolutions (deconvnet's backward pass through a stride-2 network) scatter
    signal onto every other pixel, which puts most of the energy there (≈ 0.65 for deconvnet on
    EfficientNet-Lite0, ≤ 0.13 for saliency and guided backprop); natural maps have little.
    ``source``: a 3×H×W gradient (summed over channels), a 2-D array or an ``Explanation``.
    """
    if hasattr(source, "heatmap") and not isinstance(source, np.ndarray):
        m = signed_map(source)
    else:
        m = np.asarray(source.detach().cpu().numpy() if hasattr(source, "detach") else source, dtype=np.float64)
        m = m.sum(axis=0) if m.ndim == 3 else m
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    h, w = m.shape
    if h < 2 or w < 2:
        return 0.0
    power = np.abs(np.fft.fft2(m - m.mean())) ** 2
    total = float(power.sum())
    if not total > 0.0:
        return 0.0
    band = 0.0
    if h % 2 == 0:
        band += float(power[h // 2, :].sum())
    if w % 2 == 0:
        band += float(power[:, w // 2].sum())
    if h % 2 == 0 and w % 2 == 0:
        band -= float(power[h // 2, w // 2])  # counted in both lines
    return band / total


#: Above this ``checkerboard_fraction`` a map is called a checkerboard and the page says why.
CHECKERBOARD_THRESHOLD = 0.3

CHECKERBOARD_NOTE = (
    "The grid pattern is an artefact, not evidence: this network downsamples with strided convolutions, and "
    "projecting back through them (their transposes) spreads the signal onto every other pixel. Read the "
    "blobs, not the dots; guided backprop or Grad-CAM show the same region without it.")


ImageLike = Union[Image.Image, np.ndarray]


def _as_pil(img: ImageLike) -> Image.Image:
    if isinstance(img, Image.Image):
        return img
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise CamError(f"an image array must be uint8, got {arr.dtype}")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4)):
        return Image.fromarray(np.ascontiguousarray(arr))
    raise CamError(f"an image array must be H×W, H×W×3 or H×W×4, got shape {arr.shape}")


def _prepare(path: str | Path) -> Path:
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CamError(f"{p.parent}: cannot create folder ({exc.strerror or exc})") from None
    return p


def save_png(img: ImageLike, path: str | Path) -> Path:
    """Write a PIL image or uint8 array as PNG (parent folders created); returns the path."""
    p = _prepare(path)
    try:
        _as_pil(img).save(p, format="PNG")
    except OSError as exc:
        raise CamError(f"{p}: cannot write PNG ({exc.strerror or exc})") from None
    return p


def save_npy(array: Any, path: str | Path) -> Path:
    """Write an array as float32 ``.npy`` (parent folders created); returns the path."""
    p = _prepare(path)
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    try:
        np.save(p, np.asarray(array, dtype=np.float32), allow_pickle=False)
    except OSError as exc:
        raise CamError(f"{p}: cannot write .npy ({exc.strerror or exc})") from None
    return p


def to_npy_bytes(array: Any) -> bytes:
    """float32 ``.npy`` bytes of an array (for download buttons; no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def to_png_bytes(img: ImageLike) -> bytes:
    """PNG-encoded bytes of a PIL image or uint8 array (for download buttons)."""
    buf = io.BytesIO()
    _as_pil(img).save(buf, format="PNG")
    return buf.getvalue()
