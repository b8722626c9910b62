"""cam_core.batch: safe ZIP reading, one result or one error per file, and the overlay ZIP / CSV writers."""
from __future__ import annotations

import csv
import io
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from cam_core.batch import (CSV_COLUMNS, Item, gather, overlays_zip, predictions_csv, read_zip, run_batch,
                            sanitize_name)
from cam_core.errors import CamError
from cam_core.predict import predict
from tests.cam_core.nets import GapNet

CATEGORIES = [f"thing{i}" for i in range(5)]


def _png(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _preprocess(image: Image.Image) -> torch.Tensor:
    arr = torch.tensor(np.asarray(image.resize((32, 32), Image.Resampling.BILINEAR)), dtype=torch.float32)
    return ((arr / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def net() -> GapNet:
    torch.manual_seed(0)
    return GapNet(classes=len(CATEGORIES)).eval()


def _zip(entries: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if data is None:
                z.writestr(zipfile.ZipInfo(name), b"")  # a name ending in "/" is a folder entry
            else:
                z.writestr(name, data)
    return buf.getvalue()


MIXED = [("photos/", None), ("photos/a.png", _png(1)), ("photos/b.png", _png(2)),
         ("photos/notes.jpg", b"this is a text file, not a JPEG"), ("__MACOSX/photos/._a.png", b"\x00\x05junk")]


def test_zip_with_folder_macosx_and_a_text_file_gives_two_results_and_one_error(net):
    items = read_zip(_zip(MIXED), "photos.zip")
    assert [it.name for it in items] == ["a.png", "b.png", "notes.jpg"]  # folder and __MACOSX skipped
    results = run_batch(items, net, _preprocess, CATEGORIES, "gradcam", "conv2")
    good = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    assert [r.name for r in good] == ["a.png", "b.png"]
    assert len(bad) == 1 and bad[0].name == "notes.jpg" and bad[0].error.startswith("notes.jpg: ")
    assert "\n" not in bad[0].error and bad[0].heatmap is None
    for r, seed in zip(good, (1, 2)):
        # Independent reference: the network's own top-1 on the same input.
        ref = predict(net, _preprocess(Image.open(io.BytesIO(_png(seed))).convert("RGB")), CATEGORIES, top=1)[0]
        assert (r.class_idx, r.label) == (ref.class_idx, ref.label)
        assert r.prob == pytest.approx(ref.prob, abs=1e-5)
        assert r.layer == "conv2" and r.heatmap.shape == (32, 32)
        assert 0.0 <= r.heatmap.min() and r.heatmap.max() <= 1.0


def test_progress_reports_every_item(net):
    seen = []
    run_batch(read_zip(_zip(MIXED)), net, _preprocess, CATEGORIES, "gradcam", "conv2",
              progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def _lying_zip(declared: int) -> bytes:
    """A ZIP of one small stored member whose headers claim it is ``declared`` bytes uncompressed."""
    data = _zip([("big.png", _png(3))])
    out = bytearray(data)
    # Patch the uncompressed-size field in the local header (offset 22) and the central directory (offset 24).
    local = out.find(b"PK\x03\x04")
    struct.pack_into("<I", out, local + 22, declared)
    central = out.find(b"PK\x01\x02")
    struct.pack_into("<I", out, central + 24, declared)
    return bytes(out)


def test_zip_declaring_a_huge_total_is_refused():
    with pytest.raises(CamError, match="bomb"):
        read_zip(_lying_zip(4_000_000_000), "bomb.zip")


def test_zip_over_a_small_total_limit_is_refused():
    data = _zip([("a.png", _png(1)), ("b.png", _png(2))])
    with pytest.raises(CamError, match="limit"):
        read_zip(data, "two.zip", max_total_bytes=len(_png(1)) + 10)


def test_zip_with_too_many_members_is_refused():
    data = _zip([(f"{i}.png", b"x") for i in range(6)])
    with pytest.raises(CamError, match="6 files"):
        read_zip(data, "many.zip", max_members=5)


def test_member_decompressing_past_its_declared_size_becomes_its_own_error():
    # Declares 10 bytes but holds a whole PNG: read at most 11 bytes, then refuse that member only.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("ok.png", _png(1))
        z.writestr("liar.png", _png(2))
    out = bytearray(buf.getvalue())
    pos = -1
    for _ in range(2):  # second local header and second central-directory entry belong to liar.png
        pos = out.find(b"PK\x03\x04", pos + 1)
    struct.pack_into("<I", out, pos + 22, 10)
    pos = -1
    for _ in range(2):
        pos = out.find(b"PK\x01\x02", pos + 1)
    struct.pack_into("<I", out, pos + 24, 10)
    items = read_zip(bytes(out), "liar.zip")
    assert [(it.name, it.error is None) for it in items] == [("ok.png", True), ("liar.png", False)]
    assert "declared size" in items[1].error or "ZIP" in items[1].error


def test_not_a_zip_is_refused_with_its_name():
    with pytest.raises(CamError, match="^x.zip: not a readable ZIP"):
        read_zip(b"PK\x03\x04 but nothing else", "x.zip")


def test_names_are_sanitized_and_unique():
    assert sanitize_name("../../etc/passwd") == "passwd"
    assert sanitize_name("C:\\Users\\me\\cat<1>.jpg") == "cat_1_.jpg"
    assert sanitize_name("a\x00b\n.png") == "ab.png"
    assert sanitize_name("...") == "image"
    items = gather([("x/cat.png", b"1"), ("y/cat.png", b"2"), ("pack.zip", _zip([("cat.png", b"3")]))])
    assert [it.name for it in items] == ["cat.png", "cat (2).png", "cat (3).png"]
    assert [it.data for it in items] == [b"1", b"2", b"3"]


def test_gather_refuses_more_than_the_limit():
    with pytest.raises(CamError, match="limit of 3"):
        gather([(f"{i}.png", b"x") for i in range(4)], max_items=3)


def test_a_refused_archive_is_one_error_and_the_other_files_go_on():
    """A corrupt archive, one over the file limit and one declaring a zip bomb each become their own error item;
    the photo uploaded beside them is kept (they used to abort the whole batch)."""
    many = _zip([(f"{i}.png", b"x") for i in range(6)])
    items = gather([("cat.png", _png(1)), ("broken.zip", b"PK\x03\x04 but nothing else"), ("many.zip", many),
                    ("bomb.zip", _lying_zip(4_000_000_000))], max_items=5)
    assert [(it.name, it.data) for it in items][0] == ("cat.png", _png(1)) and items[0].error is None
    assert [it.name for it in items[1:]] == ["broken.zip", "many.zip", "bomb.zip"]
    assert items[1].error.startswith("broken.zip: not a readable ZIP archive")
    assert items[2].error == "many.zip: 6 files, over the limit of 5 per batch"
    assert items[3].error.startswith("bomb.zip: ") and "zip bomb" in items[3].error
    assert all(it.data == b"" and "\n" not in it.error for it in items[1:])


def test_a_zip_inside_the_zip_is_its_own_error_with_what_to_do():
    inner = _zip([("a.png", _png(1))])
    items = read_zip(_zip([("inner.zip", inner), ("b.png", _png(2)), ("hidden.png", inner)]), "outer.zip")
    assert [(it.name, it.error is None) for it in items] == [("inner.zip", False), ("b.png", True), ("hidden.png", False)]
    assert items[0].error == ("inner.zip: a ZIP inside the ZIP, which is not opened; put its images in the outer "
                              "archive or upload it on its own")
    assert items[2].error.startswith("hidden.png: a ZIP inside the ZIP")  # recognised by content, not by name


def test_an_archive_listing_a_huge_number_of_entries_is_refused_before_it_is_parsed():
    """25,000 empty folder entries (a 1.3 MB table of contents): zipfile would build an object for each; a
    400 MB upload can list millions. Refused from the end record, before the directory is read."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(25_000):
            z.writestr(zipfile.ZipInfo(f"d{i}/"), b"")
        z.writestr("cat.png", _png(1))
    with pytest.raises(CamError) as err:
        read_zip(buf.getvalue(), "folders.zip")
    assert str(err.value) == ("folders.zip: its table of contents is 1.3 MB, room for far more than 200 files (the "
                              "limit per batch); refused before reading it")
    assert [it.name for it in read_zip(_zip(MIXED), "photos.zip")] == ["a.png", "b.png", "notes.jpg"]


def test_csv_has_one_row_per_file_and_the_error_filled_for_the_bad_one(net):
    results = run_batch(read_zip(_zip(MIXED)), net, _preprocess, CATEGORIES, "gradcam", "conv2")
    rows = list(csv.DictReader(io.StringIO(predictions_csv(results))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["file"] for r in rows] == ["a.png", "b.png", "notes.jpg"]
    for row, res in zip(rows, results):
        assert row["method"] == "gradcam"
        if res.ok:
            assert row["error"] == "" and int(row["class_idx"]) == res.class_idx and row["label"] == res.label
            assert float(row["prob"]) == pytest.approx(res.prob, abs=1e-6) and row["layer"] == "conv2"
        else:
            assert row["error"] == res.error and row["label"] == "" and row["class_idx"] == ""


def test_overlay_zip_holds_one_png_per_good_image(net):
    results = run_batch(read_zip(_zip(MIXED)), net, _preprocess, CATEGORIES, "gradcam", "conv2")
    with zipfile.ZipFile(io.BytesIO(overlays_zip(results, alpha=1.0, cmap="gray"))) as z:
        assert sorted(z.namelist()) == ["a_overlay.png", "b_overlay.png"]
        png = Image.open(io.BytesIO(z.read("a_overlay.png")))
        assert png.format == "PNG" and png.size == (40, 30)
        # alpha = 1 with the grey colormap: the overlay IS the map, so it is grey (R = G = B).
        arr = np.asarray(png.convert("RGB")).astype(int)
        assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def test_an_item_that_arrived_broken_keeps_its_error(net):
    results = run_batch([Item("x.png", b"", "x.png: encrypted ZIP member (cannot read it)")], net, _preprocess,
                        CATEGORIES, "gradcam", "conv2")
    assert results[0].error == "x.png: encrypted ZIP member (cannot read it)"


def test_metrics_per_image_in_the_csv_equal_evaluate_and_a_mean_row(net):
    """Each file's scores are cam_core.evaluate on its own map; the CSV's last row is their plain mean."""
    from cam_core import evaluate, explain
    from cam_core.imaging import load_image

    items = gather([("a.png", _png(1)), ("b.png", _png(2)), ("broken.png", b"nope")])
    results = run_batch(items, net, _preprocess, CATEGORIES, "gradcam", "relu2", metrics=("deletion", "insertion"),
                        settings={"steps": 4})
    for item, result in zip(items[:2], results[:2]):
        x = _preprocess(load_image(item.data, name=item.name))
        exp = explain(net, x, "gradcam", "relu2")
        direct = evaluate(net, x, exp.heatmap, ("deletion", "insertion"), exp.class_idx, steps=4)
        assert result.scores == pytest.approx({k: v.score for k, v in direct.items()}, abs=1e-9)
    assert not results[2].ok and results[2].scores == {}
    rows = list(csv.reader(io.StringIO(predictions_csv(results))))
    assert rows[0] == [*CSV_COLUMNS, "deletion", "insertion"]
    mean = rows[-1]
    assert mean[0] == "mean"
    for col, name in ((len(CSV_COLUMNS), "deletion"), (len(CSV_COLUMNS) + 1, "insertion")):
        by_hand = (results[0].scores[name] + results[1].scores[name]) / 2
        assert float(mean[col]) == pytest.approx(by_hand, abs=1e-6)
