"""The review report of the hand-made sample audit (tests/audit_sample.py): its figures match the counts made by
hand there, the sure mistakes are the right images in the right order, and the file asks nothing of the network."""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
from PIL import Image

from cam_core.audit.report import write_review_report
from cam_explorer.cli import main
from tests import audit_sample


def _section(html: str, start_id: str, end: str) -> str:
    return html[html.index(f'id="{start_id}"'):html.index(end, html.index(f'id="{start_id}"'))]


def test_report_figures_match_the_hand_counts(tmp_path):
    folder = audit_sample.build(tmp_path / "run1")
    out = write_review_report(folder, tmp_path / "review.html")
    html = out.read_text(encoding="utf-8")
    assert 'id="top1">50.0%<' in html and 'id="top5">83.3%<' in html
    summary = _section(html, "summary", "</table>")
    assert "<th>Images</th><td class=\"n\">7<" in summary and "<th>Errors</th><td class=\"n\">1<" in summary
    cells = {(t, p): int(n) for t, p, n in
             re.findall(r'data-true="(\w+)" data-pred="(\w+)"[^>]*>(\d+)</text>', html)}
    assert cells == {("cat", "cat"): 1, ("cat", "dog"): 1, ("dog", "dog"): 1, ("dog", "cup"): 1,
                     ("cup", "cup"): 1, ("cup", "cat"): 1}
    per_class = _section(html, "per-class", "</table>")
    assert re.findall(r"<tr><td>(\w+)</td><td class=\"n\">\d</td><td class=\"n\">(\d)</td><td class=\"n\">"
                      r"([\d.]+%)", per_class) == [("cat", "2", "50.0%"), ("dog", "2", "50.0%"),
                                                    ("cup", "2", "50.0%")]
    mistakes = _section(html, "mistakes", 'id="wrong-reason"')
    assert re.findall(r'data-path="([^"]+)"', mistakes) == ["d.png", "b.png", "f.png"]
    wrong = _section(html, "wrong-reason", "<h2>Provenance")
    assert re.findall(r'data-path="([^"]+)"', wrong) == ["c.png"]
    assert "bad.png: not an image" in html
    assert "ab" * 32 in html and "cam-explorer audit &#x27;data dir&#x27; --method gradcam" in html
    assert "deletion 0.300 (better than random)" in mistakes  # d.png's evidence
    assert "<th>Methods</th><td>gradcam (defaults)</td>" in html


def test_report_is_self_contained(tmp_path):
    folder = audit_sample.build(tmp_path / "run1")
    html = write_review_report(folder, tmp_path / "r.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", html, re.I)
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html
    sources = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)


def test_overlay_is_the_map_over_the_photo(tmp_path):
    """d.png's overlay: 0.5·photo + 0.5·jet(map) at the thumbnail size; away from the peak the map is 0 (jet's
    dark blue), so a pixel far from it is the photo's pixel averaged with (0, 0, 127)."""
    folder = audit_sample.build(tmp_path / "run1")
    html = write_review_report(folder, tmp_path / "r.html").read_text(encoding="utf-8")
    first = re.search(r'data-path="d.png"><img[^>]* src="data:image/png;base64,([^"]+)"', html).group(1)
    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(first))).convert("RGB")).astype(int)
    photo = Image.open(folder / "images" / "d.png").convert("RGB")
    assert got.shape == (photo.height, photo.width, 3)  # 48×40 is under the thumbnail side: kept
    # d.png is row 3: peak at cell (3, 0), i.e. bottom-left; the top-right pixel is far from it
    expected = (np.asarray(photo)[0, -1].astype(int) + np.array([0, 0, 127])) / 2
    np.testing.assert_allclose(got[0, -1], expected, atol=1)


def test_no_image_root_draws_maps_alone(tmp_path):
    from cam_core.audit.report import build_review_report
    from cam_core.audit.store import open_audit

    with open_audit(audit_sample.build(tmp_path / "run1")) as audit:
        html = build_review_report(audit, image_root=None)
    assert html.count("map only: d.png: not found beside the audit") == 1


def test_missing_images_give_the_map_alone_with_a_note(tmp_path):
    folder = audit_sample.build(tmp_path / "run1", data_dir=tmp_path / "gone", images=False)
    html = write_review_report(folder, tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.count("map only: d.png: not found beside the audit") == 1
    assert 'id="top1">50.0%<' in html


def test_cli_writes_the_report_and_one_json_line(tmp_path, capsys):
    folder = audit_sample.build(tmp_path / "run1")
    assert main(["audit-report", str(folder)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["report"] == str(folder / "review.html") and (folder / "review.html").is_file()
    assert (record["images"], record["errors"], record["labelled"], record["top1"]) == (7, 1, 6, 0.5)
    assert main(["audit-report", str(folder), "--out", str(tmp_path / "x.pdf")]) == 2
    assert "give an .html file name" in capsys.readouterr().err
    assert main(["audit-report", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["audit-report", str(tmp_path / "empty")]) == 1
    assert "not an audit folder" in capsys.readouterr().err
