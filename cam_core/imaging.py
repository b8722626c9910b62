"""Safe image loading: any photo a person uploads becomes one fully decoded RGB ``PIL.Image``, or a one-line refusal.

The bytes are sniffed (never the extension), the pixel count is checked from the header before decoding,
the whole image is decoded (truncated files fail here, not later), EXIF orientation is applied and every
colour mode is converted to RGB (transparency over white, 16-bit scaled rather than clipped).
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from cam_core.errors import ImageLoadError

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# Formats a photo arrives in (Pillow's JPEG opener also reads the multi-picture MPO files cameras write).
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")

_NOT_AN_IMAGE = "not an image, or a format we cannot read"
_CORRUPT = "truncated or corrupt image data"

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


def load_image(
    source: ImageSource,
    name: str | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """Decode ``source`` (a path, the file's bytes, or a binary file object) into an RGB image.

    ``name`` is what error messages call the file (default: the path's base name, or "image").
    Raises ``ImageLoadError(name, reason)`` for empty, over-size, non-image, truncated or corrupt files.
    """
    data, name = _read_bytes(source, name, max_bytes)
    if not data:
        raise ImageLoadError(name, "empty file")
    if len(data) > max_bytes:
        raise ImageLoadError(name, f"file is {_mb(len(data))}, over the {_mb(max_bytes)} limit")
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone relaxed Pillow globally; truncated files would pass silently
        raise ImageLoadError(name, "refused: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set, so truncation cannot be detected")

    with warnings.catch_warnings():
        # Pillow warns (instead of failing) between MAX_IMAGE_PIXELS and twice that: make it an error here only.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.init()  # register every plugin, so each name in FORMATS is known to Image.open
        try:
            img = Image.open(io.BytesIO(data), formats=FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageLoadError(name, f"image too large to decode safely ({exc})") from None
        except UnidentifiedImageError:
            raise ImageLoadError(name, _NOT_AN_IMAGE) from None
        except Exception as exc:  # a plugin choking on a malformed header
            raise ImageLoadError(name, f"{_CORRUPT} ({type(exc).__name__}: {exc})") from None

        width, height = img.size
        if width < 1 or height < 1:
            raise ImageLoadError(name, f"image has no pixels ({width}×{height})")
        if width * height > max_pixels:
            raise ImageLoadError(
                name,
                f"image is {width}×{height} = {_pixels(width * height)}, over the {_pixels(max_pixels)} limit",
            )
        try:
            img.seek(0)  # first frame of an animation
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageLoadError(name, f"image too large to decode safely ({exc})") from None
        except Exception as exc:  # OSError "image file is truncated", SyntaxError for bad chunks, ...
            raise ImageLoadError(name, f"{_CORRUPT} ({type(exc).__name__}: {exc})") from None

    img = _apply_orientation(img)
    try:
        return to_rgb(img)
    except Exception as exc:
        raise ImageLoadError(name, f"cannot convert colour mode {img.mode} to RGB ({exc})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to a new RGB image: alpha over white, 16-bit and float scaled to 8 bits."""
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        return _scaled_to_8bit(img.convert("I") if mode != "I" else img, 0.0, 65535.0).convert("RGB")
    if mode == "F":
        low, high = img.getextrema()
        if low >= 0.0 and high <= 1.0:  # the usual float convention
            low, high = 0.0, 1.0
        return _scaled_to_8bit(img, float(low), float(high)).convert("RGB")
    return img.convert("RGB")  # RGB (as a copy), L, 1, P, CMYK, YCbCr, ...


def _scaled_to_8bit(img: Image.Image, low: float, high: float) -> Image.Image:
    """Map [low, high] linearly onto [0, 255] (rounded) and return an "L" image.

    For "I" images outside 0..65535 the range is taken from the data, so nothing is clipped.
    """
    if img.mode == "I":
        data_low, data_high = img.getextrema()
        if data_low < low or data_high > high:
            low, high = float(data_low), float(data_high)
    span = high - low
    scale = 255.0 / span if span > 0 else 0.0
    as_float = img.convert("F") if img.mode != "F" else img
    scaled = as_float.point(lambda v: v * scale - low * scale + 0.5)  # +0.5: F→L truncates
    return scaled.convert("L")


def _apply_orientation(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a malformed EXIF block leaves the image as stored."""
    try:
        rotated = ImageOps.exif_transpose(img)
    except Exception:
        return img
    return rotated if rotated is not None else img


def _read_bytes(source: ImageSource, name: str | None, max_bytes: int) -> tuple[bytes, str]:
    """Read at most ``max_bytes + 1`` bytes from ``source`` and choose the name used in messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "image"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or path.name or str(path)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageLoadError(label, f"file is {_mb(size)}, over the {_mb(max_bytes)} limit")
            with path.open("rb") as fh:
                return fh.read(max_bytes + 1), label
        except ImageLoadError:
            raise
        except OSError as exc:
            raise ImageLoadError(label, f"cannot read the file ({exc.strerror or exc})") from None
    if hasattr(source, "read"):
        label = name or os.path.basename(str(getattr(source, "name", "") or "")) or "image"
        data = source.read(max_bytes + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise ImageLoadError(label, "the file object did not return bytes (open it in binary mode)")
        return bytes(data), label
    raise TypeError(f"load_image takes a path, bytes or a binary file object, not {type(source).__name__}")


def _pixels(n: int) -> str:
    """"64 MP", "12.3 MP", or "399 pixels" for small counts."""
    if n < 100_000:
        return f"{n} pixels"
    return f"{n / 1e6:.1f}".rstrip("0").rstrip(".") + " MP"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
