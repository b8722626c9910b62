"""Generates the hostile-input corpus (issue 5): broken, odd-but-valid and malicious files, written fresh
into a folder so that no blob is committed. ``python tests/hostile_corpus.py OUTDIR`` or ``build_corpus(outdir)``.

Images that need content are real photos from ``skimage.data`` (chelsea, coffee). Nothing here is ever
unpickled: the malicious ``.pth`` is only written.
"""
from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

#: Files a loader must refuse, with a word their one-line reason must contain (lower case).
BAD_IMAGES: dict[str, str] = {
    "empty.jpg": "empty",
    "truncated.jpg": "truncated",
    "text.png": "not an image",
    "bomb.png": "too large",
}
#: Odd but valid images: they must load as RGB. Value: (width, height) after EXIF orientation.
ODD_IMAGES: dict[str, tuple[int, int]] = {
    "cmyk.jpg": (451, 300),
    "gray16.png": (400, 400),
    "rgba.png": (400, 400),
    "animated.gif": (451, 300),
    "exif_rotated.jpg": (300, 451),  # stored 451×300 with orientation 6: displayed rotated 90° clockwise
    "one_pixel.png": (1, 1),
    "panorama.jpg": (10000, 200),
    "grayscale.jpg": (451, 300),
}
#: Weights files a loader must refuse, with a word their reason must contain, and the architecture to offer.
BAD_WEIGHTS: dict[str, tuple[str, str]] = {
    "evil.pth": ("efficientnet_lite0", "run code"),
    "evil_legacy.pt": ("efficientnet_lite0", "run code"),
    "wrong_arch.safetensors": ("efficientnet_lite0", "do not fit"),
}
#: The file the malicious pickles would create (inside the corpus folder) if anything unpickled them.
MARKER = "PWNED_marker.txt"
BOMB_SIDE = 30000


def _chelsea() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())


def _coffee() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee())


def _jpeg(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, **kwargs)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit grayscale PNG of ``side``×``side`` black pixels, streamed so it never exists decoded (≈100 KB)."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte 0 + packed bits
    comp = zlib.compressobj(9)
    parts = []
    block = row * 256
    for _ in range(side // 256):
        parts.append(comp.compress(block))
    parts.append(comp.compress(row * (side % 256)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


class _RunsCode:
    """Pickles to ``open(path, "w")``: unpickling it creates ``path`` (the proof that code ran)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _evil_pth(marker: Path) -> bytes:
    """A torch.save zip checkpoint whose state dict hides a code-running object beside real tensors."""
    import torch

    buf = io.BytesIO()
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "payload": _RunsCode(marker)}, buf)
    return buf.getvalue()


def _evil_legacy(marker: Path) -> bytes:
    """A bare (non-zip) pickle with the same payload: the legacy format torch.load also reads."""
    import pickle

    return pickle.dumps({"fc.weight": [0.0], "payload": _RunsCode(marker)}, protocol=2)


def _wrong_arch() -> bytes:
    """A seeded ResNet-18 state dict (10 classes): a real checkpoint, but for another architecture."""
    import torch
    from safetensors.torch import save
    from torchvision.models import resnet18

    torch.manual_seed(0)
    state = resnet18(num_classes=10).state_dict()
    return save({k: v.contiguous() for k, v in state.items()})


def _images() -> dict[str, bytes]:
    cat, coffee = _chelsea(), _coffee()
    cat_jpeg = _jpeg(cat)
    gray = np.asarray(coffee.convert("L").resize((400, 400), Image.Resampling.BILINEAR))
    rgba = coffee.resize((400, 400), Image.Resampling.BILINEAR).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 400).astype(np.uint8), (400, 1))  # column 0 fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    frames = [cat, coffee.resize(cat.size), cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    return {
        "empty.jpg": b"",
        "truncated.jpg": cat_jpeg[: len(cat_jpeg) // 2],
        "text.png": b"This is a plain text file that someone named .png.\n" * 4,
        "bomb.png": bomb_png(),
        "cmyk.jpg": _jpeg(cat.convert("CMYK")),
        "gray16.png": _png(Image.fromarray(gray.astype(np.uint16) * 257)),  # 8-bit values spread over 16 bits
        "rgba.png": _png(rgba),
        "animated.gif": gif.getvalue(),
        "exif_rotated.jpg": _jpeg(cat, exif=exif.tobytes()),
        "one_pixel.png": _png(Image.new("RGB", (1, 1), (200, 30, 40))),
        "panorama.jpg": _jpeg(coffee.resize((10000, 200), Image.Resampling.BILINEAR)),
        "grayscale.jpg": _jpeg(cat.convert("L")),
    }


def build_corpus(outdir: str | Path) -> dict[str, Path]:
    """Write every corpus file into ``outdir`` (created if needed); returns file name → path.

    The malicious pickles point at ``outdir / MARKER``; that file must never appear.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    marker = (out / MARKER).resolve()
    files = {**_images(), "evil.pth": _evil_pth(marker), "evil_legacy.pt": _evil_legacy(marker),
             "wrong_arch.safetensors": _wrong_arch()}
    paths = {}
    for name, data in files.items():
        path = out / name
        path.write_bytes(data)
        paths[name] = path
    return paths


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python tests/hostile_corpus.py OUTDIR\n")
        return 2
    for name, path in build_corpus(argv[0]).items():
        print(f"{path.stat().st_size:>10,d}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
