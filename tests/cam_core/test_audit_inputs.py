"""The audit's image-set reader against hand-built folders and CSVs (independent: the expected items are written
out by hand from what the test created)."""
from pathlib import Path

import pytest

from cam_core.audit import read_inputs
from cam_core.errors import CamError

CATS = ["tench", "goldfish", "Egyptian cat", "espresso"]
WNIDS = ["n01440764", "n01443537", "n02124075", "n07920052"]


def _touch(p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")


def test_imagefolder_by_label_and_wordnet_id(tmp_path):
    _touch(tmp_path / "Egyptian cat" / "a.jpg")
    _touch(tmp_path / "n07920052" / "b.png")
    _touch(tmp_path / "espreso" / "c.jpg")
    _touch(tmp_path / "espreso" / "d.jpg")
    _touch(tmp_path / "espreso" / "notes.txt")
    got = read_inputs(tmp_path, CATS, WNIDS)
    assert got.layout == "imagefolder"
    assert [(i.name, i.label_idx) for i in got.items] == [
        ("Egyptian cat/a.jpg", 2), ("espreso/c.jpg", None), ("espreso/d.jpg", None), ("n07920052/b.png", 3)]
    assert got.unknown == {"espreso": ["espresso"]}  # reported once, with the closest label
    assert len(got.messages) == 1 and "espresso" in got.messages[0]


def test_csv_with_boxes_and_duplicates(tmp_path):
    _touch(tmp_path / "img" / "a.jpg")
    (tmp_path / "list.csv").write_text("path,label,x0,y0,x1,y1\nimg/a.jpg,egyptian cat,1,2,30,40\n"
                                       "img/a.jpg,egyptian cat,,,,\nimg/b.jpg,,,,,\n")
    got = read_inputs(tmp_path / "list.csv", CATS)
    assert got.layout == "csv" and got.duplicates == 1
    assert [(i.name, i.label_idx, i.box) for i in got.items] == [("img/a.jpg", 2, (1.0, 2.0, 30.0, 40.0)),
                                                                  ("img/b.jpg", None, None)]
    assert Path(got.items[0].path) == (tmp_path / "img" / "a.jpg").resolve()


def test_csv_bad_box_and_plain_folder(tmp_path):
    (tmp_path / "bad.csv").write_text("path,label,x0,y0,x1,y1\na.jpg,tench,5,5,1,1\n")
    with pytest.raises(CamError, match="x0 < x1"):
        read_inputs(tmp_path / "bad.csv", CATS)
    plain = tmp_path / "plain"
    _touch(plain / "z.jpg")
    _touch(plain / "a.PNG")
    got = read_inputs(plain, CATS)
    assert got.layout == "folder" and [i.name for i in got.items] == ["a.PNG", "z.jpg"]
    assert all(i.label is None and i.label_idx is None for i in got.items)
