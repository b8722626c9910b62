"""Top-activating patches over an image set: the running top-k of one pass equals brute force (every activation
of every image kept, a plain loop), each box contains every input pixel its unit depends on (a gradient probe),
the deconvnet projection is of the kept unit, and the Parquet file reads back the same. Tiny hand-built net,
skimage photos of two sizes, a corrupt file."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from cam_core.audit.inputs import InputItem
from cam_core.top_patches import TopPatches, collect, crop, projection, read_patches, ties_note, write_patches
from tests.cam_core.nets import GapNet, seeded

LAYER = "relu2"
MEAN = STD = (0.5, 0.5, 0.5)
PHOTOS = (("chelsea", (32, 32)), ("coffee", (48, 32)), ("astronaut", (32, 32)), ("rocket", (48, 32)),
          ("cat", (32, 32)), ("immunohistochemistry", (32, 32)), ("camera", (48, 32)))


def _preprocess(image: Image.Image) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    return (x - 0.5) / 0.5


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory) -> list[InputItem]:
    root = tmp_path_factory.mktemp("photos")
    items = []
    for name, size in PHOTOS:
        Image.fromarray(getattr(data, name)()).convert("RGB").resize(size).save(root / f"{name}.png")
        items.append(InputItem(str(root / f"{name}.png"), f"{name}.png", None, None, None))
    (root / "broken.png").write_bytes(b"not a png")
    items.insert(3, InputItem(str(root / "broken.png"), "broken.png", None, None, None))
    return items


def _model() -> torch.nn.Module:
    return seeded(GapNet(classes=5)).float().eval()


def _activations(model, x):
    with torch.no_grad():
        return model.relu2(model.conv2(model.relu1(model.conv1(x.clone()))))[0]


def test_running_top_k_equals_brute_force(photo_set):
    model = _model()
    k = 3
    top, errors = collect(model, photo_set, list("abcde"), _preprocess, LAYER, k=k, batch=3)
    assert len(errors) == 1 and errors[0].startswith("broken.png")
    # brute force: every activation of every image kept, each image alone
    kept = {}
    for index, item in enumerate(photo_set):
        if item.name == "broken.png":
            continue
        a = _activations(model, _preprocess(Image.open(item.path))).flatten(1)
        for c in range(a.shape[0]):
            pos = int(a[c].argmax())
            kept.setdefault(c, []).append((float(a[c, pos]), index, pos, a.shape))
    got = top.patches()
    assert top.images == len(photo_set) - 1 and len(got) == 8 * k
    for c, entries in kept.items():
        want = sorted(entries, key=lambda t: -t[0])[:k]
        mine = [p for p in got if p.channel == c]
        assert [p.rank for p in mine] == list(range(k))
        assert [p.index for p in mine] == [w[1] for w in want]
        np.testing.assert_allclose([p.value for p in mine], [w[0] for w in want], rtol=1e-5)
        assert [(p.row, p.col) for p in mine] == [divmod(w[2], _activations(model, _preprocess(
            Image.open(photo_set[w[1]].path))).shape[-1]) for w in want]


def test_box_contains_every_pixel_the_unit_depends_on(photo_set):
    model = _model()
    top, _ = collect(model, photo_set, list("abcde"), _preprocess, LAYER, k=2, channels=[1, 6], batch=4)
    for p in top.patches():
        x = _preprocess(Image.open(photo_set[p.index].path)).requires_grad_(True)
        a = model.relu2(model.conv2(model.relu1(model.conv1(x))))
        (g,) = torch.autograd.grad(a[0, p.channel, p.row, p.col], x)
        rows, cols = np.nonzero(g[0].abs().sum(0).numpy())
        assert p.box.top <= rows.min() and rows.max() <= p.box.bottom  # the box holds the unit's support
        assert p.box.left <= cols.min() and cols.max() <= p.box.right
        assert p.box.height <= 7 and p.box.width <= 7  # two 3×3 convs: at most 7×7
        x = x.detach()
        assert crop(x, p, MEAN, STD).shape == (p.box.height, p.box.width, 3)
        assert projection(model, x, LAYER, p).shape == (p.box.height, p.box.width, 3)  # the kept unit's
    assert {p.channel for p in top.patches()} == {1, 6}


def test_patch_file_reads_back(photo_set, tmp_path):
    model = _model()
    top, _ = collect(model, photo_set, list("abcde"), _preprocess, LAYER, k=2, batch=8)
    paths = [i.name for i in photo_set]
    write_patches(tmp_path, LAYER, top.table(paths), {"k": 2, "images": top.images})
    table, meta = read_patches(tmp_path, LAYER)
    assert meta == {"layer": LAYER, "k": 2, "images": top.images}
    rows = table.to_pylist()
    assert [(r["channel"], r["rank"], r["index"], r["path"]) for r in rows] == [
        (p.channel, p.rank, p.index, paths[p.index]) for p in top.patches()]
    assert (tmp_path / "patches" / f"{LAYER}.parquet").is_file()


def test_an_image_redone_alone_counts_once():
    from cam_core.audit.scan import BatchRecord

    model = _model()
    top = TopPatches(model, LAYER, k=2)
    x = torch.randn(2, 3, 16, 16)
    rec = BatchRecord([0, 1], x, torch.zeros(2, 5), torch.zeros(2), LAYER, _activations(model, x[:1])[None].repeat(2, 1, 1, 1))
    top(rec)
    top(BatchRecord([1], x[1:], torch.zeros(1, 5), torch.zeros(1), LAYER, rec.activations[1:]))
    assert top.images == 2 and [p.index for p in top.patches() if p.channel == 0] == [0, 1]


def test_audit_images_keep_the_audits_indices_and_stay_under_the_root(tmp_path):
    from cam_core.top_patches import audit_images

    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.fromarray(data.coffee()).resize((8, 8)).save(root / name)
    Image.fromarray(data.coffee()).resize((8, 8)).save(tmp_path / "outside.png")
    rows = [{"index": 0, "path": "a.png", "error": None}, {"index": 1, "path": "bad.png", "error": "bad.png: no"},
            {"index": 2, "path": "sub/b.png", "error": None}, {"index": 3, "path": "../outside.png", "error": None},
            {"index": 4, "path": "gone.png", "error": None}]
    items, missing = audit_images(rows, root.resolve())
    assert sorted(items) == [0, 2]  # the audit's own indices; the error row is not passed again
    assert [items[i].name for i in (0, 2)] == ["a.png", "sub/b.png"]
    assert missing == ["../outside.png", "gone.png"]  # leaving the root is never read


def test_a_pass_is_expected_at_the_last_pass_rate_else_the_forwards_times_its_factor():
    from cam_core.batching import TIMINGS, _Timing, timing_key
    from cam_core.top_patches import PASS_FACTOR, expected_seconds

    model, x = _model(), torch.zeros(1, 3, 32, 32)
    key = timing_key(model, x)
    TIMINGS.section("batches").pop(key, None)
    try:
        assert expected_seconds(model, x, 10) is None  # nothing measured: the first batch times it
        assert expected_seconds(model, x, 10, per_image=0.2) == pytest.approx(2.0)
        TIMINGS.section("batches")[key] = _Timing(8, 0.01, False)
        assert expected_seconds(model, x, 10) == pytest.approx(10 * 0.01 * PASS_FACTOR)
        assert expected_seconds(model, x, 10, per_image=0.2) == pytest.approx(2.0)  # a pass's own rate wins
    finally:
        TIMINGS.section("batches").pop(key, None)


def test_a_channel_silent_on_some_or_all_images_says_its_patches_are_ties(photo_set):
    """Channel 2 is cut off (zero weights, bias −1: 0 after the ReLU everywhere); channel 5's bias is lowered
    between the 2nd and 3rd strongest images' maxima (a plain forward each), so exactly 2 images activate it."""
    model = _model()
    photos = [i for i in photo_set if i.name != "broken.png"]
    with torch.no_grad():
        model.conv2.weight[2] = 0.0
        model.conv2.bias[2] = -1.0
        pre = sorted((float(model.conv2(model.relu1(model.conv1(_preprocess(Image.open(i.path)))))[0, 5].max())
                      for i in photos), reverse=True)
        model.conv2.bias[5] -= 0.5 * (pre[1] + pre[2])
    top, _ = collect(model, photos, list("abcde"), _preprocess, LAYER, k=len(photos), batch=3)
    values = {c: [p.value for p in top.patches() if p.channel == c] for c in (2, 5)}
    assert values[2] == [0.0] * len(photos)
    assert ties_note(values[2]).startswith("Not active on any image here")
    assert ties_note(values[5]).startswith(f"Only 2 images activate it above 0; the other {len(photos) - 2} are ties")
    assert ties_note(values[5][:2]) is None and ties_note([1.0, 0.5, 0.5]) is None  # distinct, or ties above 0
