"""cam_core.imaging.load_image: every format and colour mode a photo arrives in, and every hostile file refused."""
from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from cam_core.errors import ImageLoadError
from cam_core.imaging import load_image


def _save(img: Image.Image, path: Path, fmt: str, **kw) -> Path:
    img.save(path, format=fmt, **kw)
    return path


def _halves(size=(40, 20), left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    img = Image.new("RGB", size, right)
    img.paste(left, (0, 0, size[0] // 2, size[1]))
    return img


def _close(a, b, tol=12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _blank_png(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of zeros, written row by row so a huge declared size costs a few KB."""
    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# ---- hostile files ---------------------------------------------------------------------------


def test_zero_byte_file_is_refused(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty.jpg: empty file"):
        load_image(path)


def test_truncated_jpeg_is_refused(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    full = io.BytesIO()
    _halves((256, 192)).save(full, format="JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="truncated or corrupt") as err:
        load_image(path)
    assert "cut.jpg" in str(err.value)


def test_truncated_png_is_refused(tmp_path):
    full = io.BytesIO()
    Image.effect_noise((128, 128), 60).convert("RGB").save(full, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(full.getvalue()[: len(full.getvalue()) * 2 // 3])
    with pytest.raises(ImageLoadError, match="cut.png: truncated or corrupt"):
        load_image(path)


def test_text_named_png_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageLoadError, match="notes.png: not an image"):
        load_image(path)


def test_unsupported_format_is_refused_by_content(tmp_path):
    path = tmp_path / "photo.jpg"  # a PPM with a photo's name: the content decides, not the extension
    Image.new("RGB", (8, 8)).save(path, format="PPM")
    with pytest.raises(ImageLoadError, match="photo.jpg: not an image"):
        load_image(path)


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_blank_png(30000, 30000))
    assert path.stat().st_size < 1_000_000  # declares 900 MP in well under a megabyte
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    assert "bomb.png" in str(err.value)
    assert "too large" in str(err.value) or "over the" in str(err.value)


def test_decompression_bomb_message_says_the_size_and_what_to_do(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_blank_png(30000, 30000))
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    assert str(err.value) == ("bomb.png: image too large to decode safely (900 MP declared, over the 50 MP limit; "
                              "a possible decompression bomb); scale it down")


def _heic() -> bytes:
    """The start of an iPhone photo: an ISO-BMFF ``ftyp`` box with the HEIC brand."""
    return struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00mif1heic" + b"\x00" * 64


def _pillow_bytes(fmt: str, size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("name,make,says", [
    ("iphone.jpg", _heic, "a HEIC file, a format we cannot read; convert it to JPEG or PNG"),
    ("scan.png", lambda: _pillow_bytes("PDF"), "a PDF file, a format we cannot read; convert it to JPEG or PNG"),
    ("favicon.png", lambda: _pillow_bytes("ICO"), "a Windows icon (ICO) file"),
    ("layers.png", lambda: b"8BPS\x00\x01" + bytes(40), "a Photoshop (PSD) file"),
    ("logo.png", lambda: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
     "an SVG drawing (vector graphics), which we cannot read; export it to PNG"),
    ("notes.jpg", lambda: b"plain text\n", "not an image, or a format we cannot read; use JPEG, PNG, WEBP, BMP, "
                                            "TIFF or GIF"),
])
def test_a_format_we_do_not_read_is_named_with_what_to_do(name, make, says):
    with pytest.raises(ImageLoadError) as err:
        load_image(make(), name)
    assert str(err.value).startswith(f"{name}: {says}"), str(err.value)


def test_stream_past_the_byte_cap_does_not_claim_a_size():
    """A file object (a pipe, /dev/zero) is read one byte past the cap: its size is unknown, so none is quoted."""
    with pytest.raises(ImageLoadError) as err:
        load_image(io.BytesIO(bytes(2**20 + 10)), "endless.png", max_bytes=2**20)
    assert str(err.value) == "endless.png: file is over the 1.0 MB limit; save a smaller copy"


def test_pillow_bomb_warning_becomes_a_local_error(tmp_path):
    """Between Pillow's limit and twice it Pillow only warns: refused here, and the global filters are unchanged."""
    path = tmp_path / "big.png"
    path.write_bytes(_blank_png(10000, 10000))  # 100 MP: past Image.MAX_IMAGE_PIXELS (~89 MP)
    assert 10000 * 10000 > Image.MAX_IMAGE_PIXELS
    before = list(warnings.filters)
    with pytest.raises(ImageLoadError, match="big.png: image too large to decode safely"):
        load_image(path, max_pixels=10**9)
    assert warnings.filters == before


def test_pixel_cap_is_checked_from_the_header(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_blank_png(8000, 8000))  # 64 MP: under Pillow's limit, over ours
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    message = str(err.value)
    assert message.startswith("huge.png: ")
    assert "8000×8000" in message and "64 MP" in message and "50 MP" in message


def test_custom_pixel_cap(tmp_path):
    path = _save(Image.new("RGB", (20, 20)), tmp_path / "small.png", "PNG")
    with pytest.raises(ImageLoadError, match="small.png: image is 20×20 = 400 pixels, over the 399 pixels limit"):
        load_image(path, max_pixels=399)
    assert load_image(path, max_pixels=400).size == (20, 20)


def test_byte_cap(tmp_path):
    path = _save(Image.effect_noise((64, 64), 80).convert("RGB"), tmp_path / "noisy.png", "PNG")
    size = path.stat().st_size
    with pytest.raises(ImageLoadError, match="noisy.png: file is .* over the"):
        load_image(path, max_bytes=size - 1)
    with pytest.raises(ImageLoadError, match="upload.png: file is"):
        load_image(path.read_bytes(), "upload.png", max_bytes=size - 1)
    assert load_image(path, max_bytes=size).size == (64, 64)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="nothing.jpg: cannot read"):
        load_image(tmp_path / "nothing.jpg")


# ---- formats and modes -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt,ext,tol", [("JPEG", "jpg", 40), ("PNG", "png", 0), ("WEBP", "webp", 40),
                                         ("BMP", "bmp", 0), ("TIFF", "tif", 0), ("GIF", "gif", 0)])
def test_formats_round_trip(tmp_path, fmt, ext, tol):
    original = _halves((64, 32))
    path = _save(original, tmp_path / f"pic.{ext}", fmt)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (64, 32)
    assert _close(img.getpixel((4, 16)), (255, 0, 0), tol)
    assert _close(img.getpixel((60, 16)), (0, 0, 255), tol)


def test_sources_bytes_and_file_object(tmp_path):
    path = _save(_halves(), tmp_path / "p.png", "PNG")
    data = path.read_bytes()
    assert load_image(data).tobytes() == load_image(path).tobytes()
    with path.open("rb") as fh:
        assert load_image(fh).tobytes() == load_image(path).tobytes()
    with pytest.raises(ImageLoadError, match="p.png: empty file"):
        load_image(io.BytesIO(b""), "p.png")


def test_grayscale_becomes_equal_channels(tmp_path):
    gray = Image.linear_gradient("L").resize((32, 32))
    img = load_image(_save(gray, tmp_path / "g.png", "PNG"))
    assert img.mode == "RGB"
    for xy in [(0, 0), (16, 16), (31, 31)]:
        assert img.getpixel(xy) == (gray.getpixel(xy),) * 3


def test_one_bit_image(tmp_path):
    bw = Image.new("1", (16, 16), 0)
    bw.paste(1, (0, 0, 8, 16))
    img = load_image(_save(bw, tmp_path / "bw.png", "PNG"))
    assert img.getpixel((2, 2)) == (255, 255, 255) and img.getpixel((12, 2)) == (0, 0, 0)


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # no cyan, full magenta + yellow: red
    path = _save(cmyk, tmp_path / "print.jpg", "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    img = load_image(path)
    assert img.mode == "RGB"
    assert _close(img.getpixel((16, 16)), (255, 0, 0), 20)


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    values = [0, 1000, 32768, 65535]
    src = Image.new("I;16", (4, 1))
    for i, v in enumerate(values):
        src.putpixel((i, 0), v)
    path = _save(src, tmp_path / "deep.png", "PNG")
    assert Image.open(path).mode.startswith("I")
    img = load_image(path)
    got = [img.getpixel((i, 0)) for i in range(4)]
    for (r, g, b), v in zip(got, values):
        assert r == g == b
        assert abs(r - v * 255 / 65535) <= 1  # linear 16→8 bit: mid-grey ~128, 1000 → 4 (a clip would give 255)
    assert abs(got[2][0] - 128) <= 1


def test_float_image_is_scaled(tmp_path):
    src = Image.new("F", (3, 1))
    for i, v in enumerate([0.0, 0.5, 1.0]):
        src.putpixel((i, 0), v)
    img = load_image(_save(src, tmp_path / "float.tif", "TIFF"))
    assert [img.getpixel((i, 0))[0] for i in range(3)] == [0, 128, 255]


def test_float_image_with_nan_and_inf_keeps_its_picture(tmp_path):
    """One NaN or Inf (a no-data marker) used to turn the whole image black; it is now left out of the range."""
    values = [0.0, 0.5, 1.0, float("nan"), float("inf"), float("-inf")]
    src = Image.new("F", (len(values), 1))
    for i, v in enumerate(values):
        src.putpixel((i, 0), v)
    img = load_image(_save(src, tmp_path / "depth.tif", "TIFF"))
    assert [img.getpixel((i, 0))[0] for i in range(len(values))] == [0, 128, 255, 0, 255, 0]


def test_float_image_outside_zero_one_uses_its_finite_range(tmp_path):
    src = Image.new("F", (4, 1))
    for i, v in enumerate([-10.0, 30.0, 90.0, float("nan")]):
        src.putpixel((i, 0), v)
    img = load_image(_save(src, tmp_path / "heights.tif", "TIFF"))
    assert [img.getpixel((i, 0))[0] for i in range(4)] == [0, 102, 255, 0]  # (30 + 10) / 100 * 255 = 102


def test_rgba_over_white(tmp_path):
    src = Image.new("RGBA", (3, 1))
    src.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black → white
    src.putpixel((1, 0), (255, 0, 0, 255))  # opaque red stays red
    src.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black → mid grey
    img = load_image(_save(src, tmp_path / "alpha.png", "PNG"))
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((1, 0)) == (255, 0, 0)
    assert _close(img.getpixel((2, 0)), (127, 127, 127), 1)


def test_la_over_white(tmp_path):
    src = Image.new("LA", (2, 1))
    src.putpixel((0, 0), (0, 0))
    src.putpixel((1, 0), (40, 255))
    img = load_image(_save(src, tmp_path / "la.png", "PNG"))
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((1, 0)) == (40, 40, 40)


def test_palette_with_transparency(tmp_path):
    src = Image.new("P", (2, 1))
    src.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    src.putpixel((0, 0), 0)
    src.putpixel((1, 0), 1)
    path = _save(src, tmp_path / "pal.png", "PNG", transparency=0)
    img = load_image(path)
    assert img.getpixel((0, 0)) == (255, 255, 255)  # the transparent index, over white
    assert img.getpixel((1, 0)) == (0, 0, 255)


def test_palette_without_transparency(tmp_path):
    src = Image.new("P", (1, 1))
    src.putpalette([10, 200, 30] + [0] * (255 * 3))
    assert load_image(_save(src, tmp_path / "pal.png", "PNG")).getpixel((0, 0)) == (10, 200, 30)


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 3
    img = load_image(path)
    assert img.size == (16, 16) and img.getpixel((8, 8)) == (255, 0, 0)


def test_exif_orientation_is_applied(tmp_path):
    stored = _halves((40, 20))  # left red, right blue, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = _save(stored, tmp_path / "phone.jpg", "JPEG", quality=95, exif=exif.tobytes())
    img = load_image(path)
    assert img.size == (20, 40)
    # rotating clockwise brings the stored left edge to the top
    assert _close(img.getpixel((10, 5)), (255, 0, 0), 40)
    assert _close(img.getpixel((10, 35)), (0, 0, 255), 40)
    reference = stored.transpose(Image.Transpose.ROTATE_270)
    assert reference.size == img.size


def test_one_pixel_image(tmp_path):
    img = load_image(_save(Image.new("RGB", (1, 1), (9, 99, 199)), tmp_path / "dot.png", "PNG"))
    assert img.size == (1, 1) and img.getpixel((0, 0)) == (9, 99, 199)


def test_panorama_keeps_its_size(tmp_path):
    img = load_image(_save(_halves((10000, 200)), tmp_path / "pano.png", "PNG"))
    assert img.size == (10000, 200)
    assert img.getpixel((10, 100)) == (255, 0, 0) and img.getpixel((9990, 100)) == (0, 0, 255)


def test_result_is_independent_of_the_source(tmp_path):
    path = _save(_halves(), tmp_path / "p.png", "PNG")
    img = load_image(path)
    path.unlink()
    assert img.copy().getpixel((1, 1)) == (255, 0, 0)
