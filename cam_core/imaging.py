"""Safe image loading: any photo a person uploads becomes one fully decoded RGB ``PIL.Image``, or a one-line refusal.

The bytes are sniffed (never the extension), the pixel count is checked from the header before decoding,
the whole image is decoded (truncated files fail here, not later), EXIF orientation is applied and every
colour mode is converted to RGB (transparency over white, 16-bit scaled rather than clipped, NaN in a
float image ignored). Each refusal says what to do: a format we do not read is named (HEIC, SVG, PDF, …).
"""
from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from cam_core.errors import ImageLoadError

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# Formats a photo arrives in (Pillow's JPEG opener also reads the multi-picture MPO files cameras write).
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")

_READABLE = ", ".join(FORMATS[:-1]) + " or " + FORMATS[-1]
_NOT_AN_IMAGE = f"not an image, or a format we cannot read; use {_READABLE}"
#: Formats people upload that we do not decode, recognised by their first bytes (checked only after Pillow
#: refused the file) so that the refusal names them: (signature, offset, name).
_OTHER_FORMATS: tuple[tuple[bytes, int, str], ...] = (
    *((b"ftyp" + brand, 4, "HEIC") for brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")),
    (b"ftypavif", 4, "AVIF"),
    (b"ftypavis", 4, "AVIF"),
    (b"JXL ", 4, "JPEG XL"),
    (b"\xff\x0a", 0, "JPEG XL"),
    (b"%PDF", 0, "PDF"),
    (b"8BPS", 0, "Photoshop (PSD)"),
    (b"\x00\x00\x01\x00", 0, "Windows icon (ICO)"),
)
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
        # A stream is read one byte past the cap, so its size is unknown: "over", not "is 50.0 MB".
        size = "over" if len(data) == max_bytes + 1 else f"{_mb(len(data))}, over"
        raise ImageLoadError(name, f"file is {size} the {_mb(max_bytes)} limit; save a smaller copy")
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone relaxed Pillow globally; truncated files would pass silently
        raise ImageLoadError(name, "refused: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set, so truncation cannot be detected")

    with warnings.catch_warnings():
        # Pillow warns (instead of failing) between MAX_IMAGE_PIXELS and twice that: make it an error here only.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.init()  # register every plugin, so each name in FORMATS is known to Image.open
        try:
            img = Image.open(io.BytesIO(data), formats=FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageLoadError(name, _bomb_reason(exc, max_pixels)) from None
        except UnidentifiedImageError:
            raise ImageLoadError(name, _unreadable_reason(data)) from None
        except Exception as exc:  # a plugin choking on a malformed header
            raise ImageLoadError(name, f"{_CORRUPT} ({type(exc).__name__}: {exc})") from None

        width, height = img.size
        if width < 1 or height < 1:
            raise ImageLoadError(name, f"image has no pixels ({width}×{height})")
        if width * height > max_pixels:
            raise ImageLoadError(
                name,
                f"image is {width}×{height} = {_pixels(width * height)}, over the {_pixels(max_pixels)} limit; "
                "scale it down",
            )
        try:
            img.seek(0)  # first frame of an animation
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageLoadError(name, _bomb_reason(exc, max_pixels)) from None
        except Exception as exc:  # OSError "image file is truncated", SyntaxError for bad chunks, ...
            raise ImageLoadError(name, f"{_CORRUPT} ({type(exc).__name__}: {exc})") from None

    img = _apply_orientation(img)
    try:
        return to_rgb(img)
    except Exception as exc:
        raise ImageLoadError(name, f"cannot convert colour mode {img.mode} to RGB ({exc})") from None


def thumbnail(image: Image.Image, max_side: int) -> Image.Image:
    """A copy of ``image`` scaled down (aspect kept, Lanczos) so that its long side is at most ``max_side``."""
    img = image.copy()
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to a new RGB image: alpha over white, 16-bit and float scaled to 8 bits."""
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = img if mode == "RGBA" else img.convert("RGBA")
        # Pasting through the alpha band blends over white in place: no full-size RGBA temporaries (a 50 MP
        # photo with alpha would otherwise need four of them, 200 MB each).
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, (0, 0), rgba)
        return out
    if mode.startswith("I;16") or mode == "I":
        return _scaled_to_8bit(img.convert("I") if mode != "I" else img, 0.0, 65535.0).convert("RGB")
    if mode == "F":
        return _float_to_8bit(img).convert("RGB")
    return img.convert("RGB")  # RGB (as a copy), L, 1, P, CMYK, YCbCr, ...


def _float_to_8bit(img: Image.Image) -> Image.Image:
    """An "F" image as "L": its finite values' range onto [0, 255] ([0, 1] when they lie inside it).

    NaN and ±Inf are not data (a no-value marker, a division by zero): they are left out of the range, NaN and
    -Inf are drawn at its low end and +Inf at its high end. (Pillow's ``getextrema`` and ``point`` let one
    NaN turn the whole image black.)
    """
    values = np.array(img, dtype=np.float32)
    finite = np.isfinite(values)
    if finite.all():
        low, high = float(values.min()), float(values.max())
    elif finite.any():
        kept = values[finite]
        low, high = float(kept.min()), float(kept.max())
    else:
        low = high = 0.0
    del finite
    if low >= 0.0 and high <= 1.0:  # the usual float convention
        low, high = 0.0, 1.0
    np.nan_to_num(values, copy=False, nan=low, posinf=high, neginf=low)
    scale = 255.0 / (high - low) if high > low else 0.0  # an infinite span (±3e38) gives 0: a flat image
    values *= np.float32(scale)
    values += np.float32(0.5 - low * scale)  # +0.5: the cast below truncates
    np.clip(values, 0.0, 255.0, out=values)
    return Image.fromarray(values.astype(np.uint8), mode="L")


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


def _bomb_reason(exc: Exception, max_pixels: int) -> str:
    """Pillow's decompression-bomb refusal in our words: the declared pixel count, the limit, what to do."""
    match = re.search(r"\((\d+) pixels\)", str(exc))
    declared = f"{_pixels(int(match.group(1)))} declared" if match else str(exc)
    return (f"image too large to decode safely ({declared}, over the {_pixels(max_pixels)} limit; a possible "
            "decompression bomb); scale it down")


def _unreadable_reason(data: bytes) -> str:
    """Why Pillow could not open ``data``: a format we recognise but do not read is named, with what to do."""
    for signature, offset, kind in _OTHER_FORMATS:
        if data[offset:offset + len(signature)] == signature:
            return f"a {kind} file, a format we cannot read; convert it to JPEG or PNG"
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in head:
        return "an SVG drawing (vector graphics), which we cannot read; export it to PNG"
    return _NOT_AN_IMAGE


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
                raise ImageLoadError(label, f"file is {_mb(size)}, over the {_mb(max_bytes)} limit; save a smaller copy")
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
