"""Turn heat maps and gradients into pictures: colormaps, overlays on the original image, PNG/.npy.

Heat maps arrive at the model input's resolution (a pure rescale of the whole uploaded image);
everything shown or saved here is mapped back to the uploaded image's own height × width.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from cam_core.errors import CamError

__all__ = [
    "COLORMAPS",
    "COLORMAP_NAMES",
    "colorize",
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

# Rows processed at once when blending: bounds float32 temporaries for very large images.
_BLEND_PIXELS = 1 << 21


def _build_colormaps() -> dict[str, np.ndarray]:
    """256×3 uint8 lookup tables taken from matplotlib, built once at import."""
    from matplotlib import colormaps

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
    if hasattr(heatmap, "heatmap") and not isinstance(heatmap, np.ndarray):
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
    if hasattr(heatmap, "heatmap") and not isinstance(heatmap, np.ndarray):
        heatmap = heatmap.heatmap
    if hasattr(heatmap, "detach"):
        heatmap = heatmap.detach().float().cpu().numpy()
    # a new float32 array; scaling by a power of two is exact, so the bins match matplotlib's
    idx = np.asarray(heatmap, dtype=np.float32) * np.float32(256.0)
    np.nan_to_num(idx, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(idx, 0.0, 255.0, out=idx)
    return lut[idx.astype(np.uint8)]


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``size = (h, w)``: float32, ``align_corners=False`` semantics.

    Same numbers as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``
    (no antialiasing), which is what the engine uses to bring maps to the input size.
    """
    import torch
    import torch.nn.functional as F

    arr = _heatmap_array(heatmap)
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise CamError(f"cannot resize a heat map to {h}×{w}")
    if arr.shape == (h, w):
        return np.array(arr, dtype=np.float32, copy=True)
    t = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
    with torch.no_grad():
        out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


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
    keep, mix = np.float32(1.0 - a), np.float32(a)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        color = colorize(hm[r0:r1], cmap)
        if a == 1.0:
            out[r0:r1] = color
            continue
        blend = base[r0:r1].astype(np.float32)
        blend *= keep
        blend += color.astype(np.float32) * mix
        np.rint(blend, out=blend)
        np.clip(blend, 0.0, 255.0, out=blend)
        out[r0:r1] = blend.astype(np.uint8)
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


def to_png_bytes(img: ImageLike) -> bytes:
    """PNG-encoded bytes of a PIL image or uint8 array (for download buttons)."""
    buf = io.BytesIO()
    _as_pil(img).save(buf, format="PNG")
    return buf.getvalue()
