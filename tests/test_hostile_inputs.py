"""Hostile inputs (issue 5) through the Python API, the CLI and the app: bad files are refused with one line
naming the file and the reason, odd-but-valid files are explained, and no uploaded pickle ever runs code.
"""
from __future__ import annotations

import base64
import io
import json
import pickle
import resource
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.app.conftest import keyed
import torch
from PIL import Image
from torch import nn

from cam_core.errors import CamError, ImageLoadError
from cam_core.explain import explain
from cam_core.imaging import load_image
from cam_core.predict import predict
from tests.hostile_corpus import BAD_IMAGES, BAD_WEIGHTS, MARKER, ODD_IMAGES, build_corpus

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
ALL_IMAGES = [*BAD_IMAGES, *ODD_IMAGES]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return build_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def backbone():
    import models

    return models.load("efficientnet_lite0", device="cpu")


def _one_line_naming(message: str, name: str, reason: str) -> None:
    assert message.startswith(f"{name}: "), message
    assert "\n" not in message and "Traceback" not in message, message
    assert reason in message.lower(), message


def _marker_absent(corpus: dict[str, Path]) -> None:
    folder = next(iter(corpus.values())).parent
    assert not (folder / MARKER).exists(), "a malicious pickle ran code"


# --------------------------------------------------------------------------- (a) Python API: images


def _says_what_to_do_and_shows_nothing_stale(at) -> None:
    """One card in the main area says what failed and what to do; no map of anything else is shown as current."""
    assert not at.exception, [e.value for e in at.exception]
    assert any("What to do" in m.value for m in at.main.markdown), [m.value for m in at.main.markdown]
    captions = [c for el in at.main.get("image") for c in el.captions]
    assert "Heat map" not in captions and "Overlay" not in captions, captions


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_bad_image_is_refused_in_one_line_naming_file_and_reason(corpus, name):
    with pytest.raises(ImageLoadError) as from_path:
        load_image(corpus[name])
    _one_line_naming(str(from_path.value), name, BAD_IMAGES[name])
    # An upload arrives as bytes with the person's file name: the same refusal.
    with pytest.raises(ImageLoadError) as from_bytes:
        load_image(corpus[name].read_bytes(), name=f"upload_{name}")
    _one_line_naming(str(from_bytes.value), f"upload_{name}", BAD_IMAGES[name])


def test_decompression_bomb_is_refused_before_it_is_decoded(corpus):
    head = corpus["bomb.png"].read_bytes()[:24]  # signature, IHDR length and type, then width and height
    assert head[12:16] == b"IHDR" and struct.unpack(">II", head[16:24]) == (30000, 30000)
    assert corpus["bomb.png"].stat().st_size < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(ImageLoadError):
        load_image(corpus["bomb.png"], max_pixels=10**10)  # even with the pixel cap lifted, Pillow's guard holds
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"peak RSS grew by {grown_mib:.0f} MiB: the bomb was decoded"


@pytest.mark.parametrize("name", list(ODD_IMAGES))
def test_odd_image_loads_as_rgb_at_its_displayed_size(corpus, name):
    img = load_image(corpus[name])
    assert img.mode == "RGB" and img.size == ODD_IMAGES[name]


def test_sixteen_bit_png_is_scaled_not_clipped(corpus):
    with Image.open(corpus["gray16.png"]) as raw:
        raw16 = np.asarray(raw).astype(np.int64)
    assert raw16.max() > 255  # really 16-bit data
    rgb = np.asarray(load_image(corpus["gray16.png"]))
    expected = np.rint(raw16 / 257.0).astype(np.uint8)
    for c in range(3):
        assert np.array_equal(rgb[..., c], expected)


def test_transparency_is_composited_over_white(corpus):
    with Image.open(corpus["rgba.png"]) as raw:
        rgba = np.asarray(raw.convert("RGBA")).astype(np.float64)
    rgb = np.asarray(load_image(corpus["rgba.png"])).astype(np.float64)
    alpha = rgba[..., 3:] / 255.0
    expected = rgba[..., :3] * alpha + 255.0 * (1 - alpha)
    assert np.all(rgb[:, 0] == 255)  # the fully transparent column is white, not black
    assert np.abs(rgb - expected).max() <= 1.0


def test_exif_orientation_6_is_rotated_clockwise(corpus):
    with Image.open(corpus["exif_rotated.jpg"]) as raw:
        assert raw.getexif()[0x0112] == 6
        stored = np.asarray(raw.convert("RGB"))
    shown = np.asarray(load_image(corpus["exif_rotated.jpg"]))
    assert np.array_equal(shown, np.rot90(stored, k=-1))


def test_animated_gif_gives_its_first_frame(corpus):
    with Image.open(corpus["animated.gif"]) as raw:
        assert raw.n_frames == 3
        frames = []
        for i in range(2):
            raw.seek(i)
            frames.append(np.asarray(raw.convert("RGB")))
    first = np.asarray(load_image(corpus["animated.gif"]))
    assert np.array_equal(first, frames[0]) and not np.array_equal(first, frames[1])


def test_cmyk_jpeg_keeps_its_colours(corpus):
    from skimage import data

    got = np.asarray(load_image(corpus["cmyk.jpg"])).astype(np.float64)
    assert np.abs(got - data.chelsea()).mean() < 12  # an inverted or swapped decode is ~100 off


@pytest.mark.parametrize("name", list(ODD_IMAGES))
def test_odd_image_is_explained_with_a_finite_map(corpus, backbone, name):
    x = backbone.preprocess(load_image(corpus[name]))
    exp = explain(backbone.model, x, "gradcam", backbone.spec.default_layer)
    heat = exp.heatmap
    assert heat.shape == tuple(x.shape[-2:])
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    assert heat.max() == pytest.approx(1.0) or exp.is_blank


# --------------------------------------------------------------------------- (a) Python API: weights


@pytest.mark.parametrize("name", list(BAD_WEIGHTS))
def test_bad_weights_are_refused_and_run_no_code(corpus, name):
    import models

    arch, reason = BAD_WEIGHTS[name]
    with pytest.raises(CamError) as from_path:
        models.load_own_weights(arch, corpus[name], device="cpu")
    _one_line_naming(str(from_path.value), name, reason)
    with pytest.raises(CamError) as from_bytes:
        models.load_own_weights(arch, corpus[name].read_bytes(), device="cpu", filename=name)
    _one_line_naming(str(from_bytes.value), name, reason)
    _marker_absent(corpus)


def test_wrong_architecture_offered_as_vgg16(corpus):
    import models

    with pytest.raises(CamError) as err:
        models.load_own_weights("vgg16", corpus["wrong_arch.safetensors"], device="cpu")
    _one_line_naming(str(err.value), "wrong_arch.safetensors", "do not fit vgg16")


def test_the_malicious_pickles_really_run_code_when_unpickled_unsafely(tmp_path):
    """Proof that the refusal above matters: our own generated files, unpickled carelessly, do create the marker."""
    files = build_corpus(tmp_path)
    marker = tmp_path / MARKER
    pickle.loads(files["evil_legacy.pt"].read_bytes())
    assert marker.exists()
    marker.unlink()
    torch.load(files["evil.pth"], weights_only=False)
    assert marker.exists()


# --------------------------------------------------------------------------- (a) numerical edges


class _Tiny(nn.Module):
    """conv → ReLU → GAP → linear; ``poison`` puts NaN or Inf into one logit's bias."""

    def __init__(self, poison: float | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)
        if poison is not None:
            with torch.no_grad():
                self.fc.bias[1] = poison

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
@pytest.mark.parametrize("target", [None, 0, 1])
def test_nan_or_inf_in_model_output_is_reported_never_drawn(poison, target):
    net, x = _Tiny(poison), torch.rand(1, 3, 16, 16)
    with pytest.raises(CamError, match="NaN or Inf") as err:
        explain(net, x, "gradcam", "relu", target)
    assert "\n" not in str(err.value)
    with pytest.raises(CamError, match="NaN or Inf"):
        predict(net, x)
    explain(_Tiny(), x, "gradcam", "relu", target)  # the same model without the poison explains fine


# --------------------------------------------------------------------------- (b) CLI


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cam_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_predict_over_the_whole_corpus_reports_each_file(corpus):
    paths = [str(corpus[n]) for n in ALL_IMAGES]
    run = _cli("predict", *paths, "--device", "cpu", "--top", "3")
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["image"] for r in records] == paths  # one line per file, in order
    for name, rec in zip(ALL_IMAGES, records):
        if name in BAD_IMAGES:
            assert set(rec) == {"image", "error"}
            _one_line_naming(rec["error"], name, BAD_IMAGES[name])
        else:
            assert "error" not in rec and len(rec["top"]) == 3, rec


def test_cli_explain_writes_a_map_of_each_odd_images_own_size(corpus, tmp_path):
    paths = [str(corpus[n]) for n in ODD_IMAGES]
    run = _cli("explain", *paths, "--method", "gradcam", "--device", "cpu", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    records = {r["image"]: r for r in map(json.loads, run.stdout.splitlines())}
    assert set(records) == set(paths)
    for name in ODD_IMAGES:
        heat = np.load(records[str(corpus[name])]["heatmap"])
        width, height = ODD_IMAGES[name]
        assert heat.shape == (height, width), name
        assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


# --------------------------------------------------------------------------- (c) the app


@pytest.fixture()
def app():
    from streamlit.testing.v1 import AppTest

    from ui import cache

    cache.clear_all()
    return AppTest.from_file(APP, default_timeout=180)


def _page_still_works(at) -> None:
    """No exception element, a prediction headline and the three panels of the explained image."""
    assert not at.exception, [e.value for e in at.exception]
    assert at.main.get("subheader"), "no prediction headline"
    captions = [c for el in at.main.get("image") for c in el.captions]
    assert captions[:3] == ["Original", "Heat map", "Overlay"], captions


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_app_bad_upload_shows_one_error_and_the_page_goes_on(app, corpus, name):
    at = app.run()
    at.sidebar.file_uploader[0].set_value((name, corpus[name].read_bytes(), "image/png")).run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    _one_line_naming(errors[0], name, BAD_IMAGES[name])
    _says_what_to_do_and_shows_nothing_stale(at)


@pytest.mark.parametrize("name", ["panorama.jpg", "exif_rotated.jpg", "one_pixel.png", "gray16.png"])
def test_app_odd_upload_is_explained(app, corpus, name):
    at = app.run()
    at.sidebar.file_uploader[0].set_value((name, corpus[name].read_bytes(), "image/png")).run()
    assert not at.error, [e.value for e in at.error]
    _page_still_works(at)
    width, height = ODD_IMAGES[name]
    assert [c for el in at.sidebar.get("image") for c in el.captions] == [f"{name} — {width}×{height}"]


def _own_weights(app, arch: str, name: str, data: bytes):
    at = app.run()
    at.sidebar.selectbox(key="w_model").set_value("own").run()
    at.sidebar.selectbox(key="w_own_arch").set_value(arch).run()
    at.sidebar.file_uploader(key="own_weights").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("name", list(BAD_WEIGHTS))
def test_app_bad_own_weights_show_an_error_and_run_no_code(app, corpus, name):
    arch, reason = BAD_WEIGHTS[name]
    at = _own_weights(app, arch, name, corpus[name].read_bytes())
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    _one_line_naming(errors[0], name, reason)
    _marker_absent(corpus)
    _says_what_to_do_and_shows_nothing_stale(at)


def _resnet18_weights(**edit) -> bytes:
    """A seeded 10-class ResNet-18 state dict as safetensors bytes, with ``fc.weight``/``fc.bias`` edited."""
    from safetensors.torch import save
    from torchvision.models import resnet18

    torch.manual_seed(1)
    state = resnet18(num_classes=10).state_dict()
    with torch.no_grad():
        for key, fn in edit.items():
            fn(state[key.replace("__", ".")])
    return save({k: v.contiguous() for k, v in state.items()})


def test_app_model_with_nan_output_is_reported_not_drawn(app):
    data = _resnet18_weights(fc__bias=lambda b: b.__setitem__(4, float("nan")))
    at = _own_weights(app, "resnet18", "nan_head.safetensors", data)
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]  # the file itself is fine
    errors = [e.value for e in at.main.error]
    assert len(errors) == 1 and "NaN" in errors[0] and "\n" not in errors[0], errors
    assert not [c for el in at.main.get("image") for c in el.captions]  # nothing drawn
    assert not at.main.get("plotly_chart")


def _plotly_z(chart) -> np.ndarray:
    """The z values of the page's interactive heat map (plain list or plotly's base64 typed array)."""
    z = json.loads(chart.proto.spec)["data"][0]["z"]
    if isinstance(z, dict):
        arr = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
        return arr.reshape([int(s) for s in str(z["shape"]).split(",")]) if "shape" in z else arr
    return np.asarray(z, dtype=np.float64)


def test_app_class_with_no_positive_evidence_shows_a_blank_map_and_a_note(app):
    # After the last ReLU every feature is >= 0, so a class whose weights are all negative has no positive evidence.
    data = _resnet18_weights(fc__weight=lambda w: w[2].copy_(-w[2].abs() - 1e-3))
    at = _own_weights(app, "resnet18", "no_evidence.safetensors", data)
    assert not at.error, [e.value for e in at.error]
    charts = [c for c in at.main.get("plotly_chart") if c.proto.id and "heatmap_plot" in c.proto.id]
    assert _plotly_z(charts[0]).max() > 0  # the top class has evidence: the check below can fail
    keyed(at, "selectbox", "class").set_value(2).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    notes = [i.value for i in at.main.info]
    assert any("no positive evidence for class 2" in n for n in notes), notes
    _page_still_works(at)
    charts = [c for c in at.main.get("plotly_chart") if c.proto.id and "heatmap_plot" in c.proto.id]
    z = _plotly_z(charts[0])
    assert np.isfinite(z).all() and not z.any()


def test_app_batch_of_the_whole_corpus_explains_the_good_and_names_the_bad(app, corpus):
    if not (ROOT / "pages" / "batch.py").is_file():
        pytest.skip("pages/batch.py is missing: no Batch page to test")
    at = app.run()
    at.switch_page("pages/batch.py").run()
    files = [(n, corpus[n].read_bytes(), "application/octet-stream") for n in ALL_IMAGES]
    at.file_uploader(key="batch_files").set_value(files).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = sorted(e.value for e in at.main.error)
    assert len(errors) == len(BAD_IMAGES), errors
    for message, name in zip(errors, sorted(BAD_IMAGES)):
        _one_line_naming(message, name, BAD_IMAGES[name])
    assert len(at.main.get("image")) == len(ODD_IMAGES)  # every odd-but-valid file has its overlay tile
    summary = [c.value for c in at.main.caption if " files · " in c.value]
    assert summary and summary[0].startswith(f"{len(ALL_IMAGES)} files · {len(ODD_IMAGES)} explained · "
                                             f"{len(BAD_IMAGES)} could not be read"), summary


def test_batch_zip_of_the_corpus_through_the_api(corpus, backbone):
    """The same batch through ``cam_core.batch`` (what the page calls), from one ZIP archive."""
    import zipfile

    from cam_core.batch import explain_item, gather

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n in ALL_IMAGES:
            zf.writestr(f"corpus/{n}", corpus[n].read_bytes())
    items = gather([("corpus.zip", buf.getvalue())])
    assert sorted(it.name.rsplit("/", 1)[-1] for it in items) == sorted(ALL_IMAGES)
    for item in items:
        name = next(n for n in ALL_IMAGES if item.name.endswith(n))
        result = explain_item(item, backbone.model, backbone.preprocess, backbone.categories, "gradcam",
                              backbone.spec.default_layer)
        if name in BAD_IMAGES:
            assert result.heatmap is None
            assert result.error and "\n" not in result.error and BAD_IMAGES[name] in result.error.lower()
            assert name in result.error
        else:
            assert result.error is None and np.isfinite(result.heatmap).all(), (name, result.error)
