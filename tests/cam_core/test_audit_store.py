"""The audit folder: rows written batch by batch come back through DuckDB as written; a run killed while a part
was being written resumes without losing a finished part or writing any row twice."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cam_core.audit.rows import base_row
from cam_core.audit.store import AuditWriter, open_audit, part_files
from cam_core.errors import CamError

MANIFEST = {"model": "tiny", "weights_sha256": "ab" * 32, "input_size": 64, "layer": "conv",
            "methods": {"gradcam": {}}, "metrics": [], "baseline": 0, "inputs_sha256": "cd" * 32}


def _row(i: int, error: str | None = None) -> dict:
    """A hand-made row: image i predicts class i % 3, labelled i % 2 (so correct when both are equal)."""
    if error:
        return {"index": i, "path": f"img{i}.png", "error": error}
    grid = np.arange(6, dtype=np.float32).reshape(2, 3) * (i + 1)
    return {"index": i, "path": f"img{i}.png", "label": f"c{i % 2}", "label_idx": i % 2, "pred_idx": i % 3,
            "pred_label": f"c{i % 3}", "confidence": 0.5, "top5_idx": [i % 3, 4], "top5_prob": [0.5, 0.25],
            "correct_top1": i % 2 == i % 3, "correct_top5": True, "box": None, "width": 10 + i, "height": 8,
            "error": None, "gradcam__map": grid.ravel().tolist(), "gradcam__map_h": 2, "gradcam__map_w": 3,
            "gradcam__seconds": 0.01}


def test_rows_come_back_through_duckdb_as_written(tmp_path):
    with AuditWriter(tmp_path / "a", MANIFEST) as writer:
        assert writer.write([_row(0), _row(1), _row(2)]) == 3
        failed = base_row(4, "img4.png", "c0", 0, None, error="img4.png: not an image")  # as the pass writes it
        assert writer.write([_row(3), failed]) == 2
        writer.finish()
    audit = open_audit(tmp_path / "a")
    assert audit.count() == 5
    assert len(part_files(tmp_path / "a")) == 2
    np.testing.assert_array_equal(audit.map(3, "gradcam"), np.arange(6, dtype=np.float32).reshape(2, 3) * 4)
    got = audit.sql('SELECT "index", width, correct_top1 FROM rows WHERE label_idx = ? ORDER BY "index"', [1])
    assert got.to_pylist() == [{"index": 1, "width": 11, "correct_top1": True},
                               {"index": 3, "width": 13, "correct_top1": False}]
    manifest = audit.manifest
    # rows 0..3: correct when i%2 == i%3 -> i = 0, 1; row 4 is an error: labelled, but not counted (accuracy is over
    # the labelled rows that did not fail, as the report's)
    assert manifest["counts"] == {"done": 5, "errors": 1, "labelled": 4, "correct_top1": 2, "correct_top5": 4}
    assert manifest["finished"] is not None and manifest["model"] == "tiny"
    with pytest.raises(CamError, match="img4.png: not an image"):
        audit.map(4, "gradcam")
    with pytest.raises(CamError, match="no 'scorecam' maps"):
        audit.map(0, "scorecam")


def test_an_empty_audit_has_the_table_and_no_rows(tmp_path):
    AuditWriter(tmp_path / "a", MANIFEST).close()
    audit = open_audit(tmp_path / "a")
    assert audit.count() == 0
    assert "gradcam__map" in audit.sql("SELECT * FROM rows").column_names


def test_killed_while_writing_a_part_resumes_without_a_row_twice(tmp_path):
    folder = tmp_path / "a"
    # A real process writes part 0, then dies (os._exit, no clean-up) after writing part 1's temporary file
    # and before renaming it: what a kill at the worst moment leaves.
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from cam_core.audit import store
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        from test_audit_store import MANIFEST, _row
        w = store.AuditWriter({str(folder)!r}, MANIFEST)
        w.write([_row(0), _row(1)])
        store._replace_into = lambda tmp, final: os._exit(9)
        w.write([_row(2), _row(3)])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert [p.name for p in (folder / "parts").iterdir() if p.name.endswith(".tmp")] == [".part-00001.parquet.tmp"]

    with AuditWriter(folder, MANIFEST) as writer:  # the lock died with the process
        assert writer.done == {0, 1}
        assert not any(p.name.endswith(".tmp") for p in (folder / "parts").iterdir())
        # the resumed run offers every image again; only the missing ones are written
        assert writer.write([_row(0), _row(1), _row(2)]) == 1
        assert writer.write([_row(2), _row(3)]) == 1
        writer.finish()
    audit = open_audit(folder)
    indices = audit.sql('SELECT "index" FROM rows ORDER BY "index"')["index"].to_pylist()
    assert indices == [0, 1, 2, 3]
    assert audit.manifest["counts"]["done"] == 4 and len(audit.manifest["resumed"]) == 1


def test_a_folder_with_other_settings_or_a_second_writer_is_refused(tmp_path):
    folder = tmp_path / "a"
    with AuditWriter(folder, MANIFEST) as writer:
        writer.write([_row(0)])
        with pytest.raises(CamError, match="another audit is writing"):
            AuditWriter(folder, MANIFEST)
    with pytest.raises(CamError, match="methods differ"):
        AuditWriter(folder, {**MANIFEST, "methods": {"gradcampp": {}}})
    json.loads((folder / "manifest.json").read_text())  # still a whole manifest
    with pytest.raises(CamError, match="not an audit folder"):
        open_audit(tmp_path)


def test_an_audit_left_open_is_closed_at_exit(tmp_path):
    """An audit still open when Python exits (held by a daemon thread, as an app's cache holds them) is closed
    first: DuckDB (nanobind) prints "leaked …" lines for a connection alive at its teardown. A closed audit
    refuses queries with one line."""
    writer = AuditWriter(tmp_path / "a", MANIFEST)
    writer.write([_row(0), _row(1)])
    writer.finish()
    script = textwrap.dedent(f"""
        import threading, time
        from cam_core.audit.store import open_audit
        ready = threading.Event()
        def hold():
            audit = open_audit({str(tmp_path / "a")!r})
            print(audit.count(), flush=True)
            ready.set()
            time.sleep(60)
        threading.Thread(target=hold, daemon=True).start()
        ready.wait(30)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and done.stdout.strip() == "2", done.stderr
    assert "leaked" not in done.stderr
    audit = open_audit(tmp_path / "a")
    audit.close()
    with pytest.raises(CamError, match="closed"):
        audit.count()
