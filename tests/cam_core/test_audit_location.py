"""Image sets and audit folders given as URIs go through ``pyarrow.fs`` (the code ``s3://`` and ``gs://`` use; only
the FileSystem differs), exercised offline with ``file://``: the items are the ones written out by hand and the
ones the plain-path reader (Path, open) finds; an audit over the URI has the same rows as over the path; an audit
folder opened by URI answers the same queries through an Arrow dataset as by path through DuckDB's reader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from cam_core.audit import location, review
from cam_core.audit.engine_local import LocalEngine
from cam_core.audit.inputs import read_inputs
from cam_core.audit.job import AuditJob, run_audit
from cam_core.audit.scan import ScanSettings
from cam_core.audit.store import open_audit
from cam_core.errors import CamError
from tests.cam_core.nets import GapNet, seeded

CATS = ["astronaut", "cat", "coffee"]
MANIFEST = {"model": "gapnet", "weights_sha256": "0" * 64, "input_size": 32, "layer": "conv2",
            "metrics": [], "baseline": 0, "inputs_sha256": "1" * 64, "methods": {"gradcam": {}}}


def uri(path: Path) -> str:
    return path.resolve().as_uri()  # file:///…


def _photo(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).resize((40, 32)).save(path)


def _set(root: Path) -> Path:
    _photo(root / "cat" / "b.png", data.chelsea())
    _photo(root / "cat" / "deep" / "a.png", data.chelsea()[:, ::-1])
    _photo(root / "astronaut" / "z.png", data.astronaut())
    _photo(root / "a b" / "c.png", data.coffee())  # "a b" < "astronaut" as text, after it as a path part
    (root / "cat" / ".hidden.png").write_bytes(b"x")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "astronaut" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


def test_imagefolder_by_uri_lists_what_the_path_lists(tmp_path):
    root = _set(tmp_path / "set")
    by_uri, by_path = read_inputs(uri(root), CATS), read_inputs(root, CATS)
    expected = [("a b/c.png", None), ("astronaut/broken.png", 0), ("astronaut/z.png", 0), ("cat/b.png", 1),
                ("cat/deep/a.png", 1)]
    assert [(i.name, i.label_idx) for i in by_path.items] == expected
    assert [(i.name, i.label_idx) for i in by_uri.items] == expected
    assert by_uri.layout == "imagefolder" and by_uri.unknown == by_path.unknown == {"a b": []}
    for a, b in zip(by_uri.items, by_path.items):
        assert a.path.startswith(uri(root) + "/") and location.resolve(a.path)[1] == b.path
        with location.open_input(a.path) as fh:
            assert fh.read() == Path(b.path).read_bytes()


def test_plain_folder_and_csv_by_uri(tmp_path):
    root = tmp_path / "flat"
    _photo(root / "b.png", data.coffee())
    _photo(root / "a.png", data.astronaut())
    (root / "sub").mkdir()
    assert [i.name for i in read_inputs(uri(root), CATS).items] == []  # a subfolder makes it an ImageFolder
    (root / "sub").rmdir()
    got = read_inputs(uri(root), CATS)
    assert got.layout == "folder" and [i.name for i in got.items] == ["a.png", "b.png"]

    other = tmp_path / "elsewhere" / "c.png"
    _photo(other, data.chelsea())
    (root / "list.csv").write_text(f"path,label,x0,y0,x1,y1\na.png,astronaut,1,2,30,20\nb.png,,,,,\n"
                                   f"a.png,astronaut,,,,\n{other},cat,,,,\n{uri(other)},cat,,,,\n")
    listed = read_inputs(uri(root / "list.csv"), CATS)
    assert listed.layout == "csv" and listed.duplicates == 1 and listed.root == uri(root)
    assert [(i.path, i.label_idx, i.box) for i in listed.items] == [
        (uri(root) + "/a.png", 0, (1.0, 2.0, 30.0, 20.0)), (uri(root) + "/b.png", None, None),
        (uri(other), 1, None), (uri(other), 1, None)]  # an absolute path, and the same file as a URI


def test_missing_uri_is_one_clear_error(tmp_path):
    with pytest.raises(CamError, match="neither a folder of images nor a .csv list"):
        read_inputs(uri(tmp_path / "nothing"), CATS)


def _small_input(image: Image.Image) -> "torch.Tensor":
    import torch

    pixels = np.asarray(image.resize((32, 24)), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()


def test_audit_over_a_uri_has_the_rows_of_the_path_and_reads_back_by_uri(tmp_path):
    root = _set(tmp_path / "set")
    model = seeded(GapNet(classes=len(CATS))).float()
    runs = {}
    for name, source in (("path", root), ("uri", uri(root))):
        inputs = read_inputs(source, CATS)
        job = AuditJob(inputs.items, CATS, ScanSettings("conv2", {"gradcam": {}}), _small_input, batch=2)
        runs[name] = run_audit(tmp_path / name, job, MANIFEST, LocalEngine(model))
    assert runs["path"]["counts"] == runs["uri"]["counts"] and runs["uri"]["counts"]["errors"] == 1
    query = 'SELECT * EXCLUDE ("gradcam__seconds") FROM rows ORDER BY "index"'
    with open_audit(tmp_path / "path") as by_path, open_audit(tmp_path / "uri") as over_uri, \
            open_audit(uri(tmp_path / "path")) as by_uri:
        reference = by_path.sql(query).to_pylist()
        assert len(reference) == 5 and over_uri.sql(query).to_pylist() == reference
        # The same folder read through pyarrow.fs + an Arrow dataset instead of DuckDB's own Parquet reader.
        assert by_uri.sql(query).to_pylist() == reference
        assert by_uri.count() == 5 and by_uri.manifest["counts"] == runs["path"]["counts"]
        np.testing.assert_array_equal(by_uri.map(2, "gradcam"), by_path.map(2, "gradcam"))
        assert review.summary(by_uri) == review.summary(by_path) and review.summary(by_uri).errors == 1
        assert review.per_class(by_uri) == review.per_class(by_path)


def test_audit_written_to_a_uri_resumes_and_reads_back(tmp_path):
    """The writer through pyarrow.fs: the parts and manifest land in the folder (read back by path with DuckDB's
    own reader), a second writer resumes from the parts present, and a part cut short is set aside and redone."""
    root = _set(tmp_path / "set")
    model = seeded(GapNet(classes=len(CATS))).float()
    inputs = read_inputs(root, CATS)
    job = AuditJob(inputs.items, CATS, ScanSettings("conv2", {"gradcam": {}}), _small_input, batch=2)
    local = run_audit(tmp_path / "path", job, MANIFEST, LocalEngine(model))
    out = tmp_path / "bucket" / "run1"  # not created beforehand, as a bucket prefix is not
    remote = run_audit(uri(out), job, MANIFEST, LocalEngine(model))
    assert remote["counts"] == local["counts"] and remote["finished"]
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["part-00000.parquet", "part-00001.parquet",
                                                                  "part-00002.parquet"]
    assert (out / "progress.json").is_file() and (out / "manifest.json").is_file()
    query = 'SELECT * EXCLUDE ("gradcam__seconds") FROM rows ORDER BY "index"'
    with open_audit(tmp_path / "path") as a, open_audit(out) as b:
        assert b.sql(query).to_pylist() == a.sql(query).to_pylist()

    last = out / "parts" / "part-00002.parquet"
    last.write_bytes(last.read_bytes()[:50])  # as if the upload had been cut short
    again = run_audit(uri(out), job, MANIFEST, LocalEngine(model))
    assert again["counts"] == local["counts"] and len(again["resumed"]) == 1
    assert (out / "parts" / "part-00002.parquet.corrupt").is_file()
    with open_audit(tmp_path / "path") as a, open_audit(uri(out)) as b:
        assert b.sql(query).to_pylist() == a.sql(query).to_pylist()  # the lost part's row redone, none twice
