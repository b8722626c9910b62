"""Unpacking an uploaded ZIP into an audit folder: class folders kept, the Batch caps applied, and archives with
hostile paths refused whole before anything is written."""
from __future__ import annotations

import io
import stat
import zipfile

import pytest

from cam_core.audit.upload import unpack_zip
from cam_core.errors import CamError


def _zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_class_folders_kept_top_folder_dropped(tmp_path):
    data = _zip({"set/cat/a.png": b"1", "set/dog/b.jpg": b"2", "set/dog/notes.txt": b"x", "set/.DS_Store": b"",
                 "__MACOSX/set/cat/._a.png": b"", "set/cat/deep/er/c.png": b"3"})
    out = unpack_zip(data, tmp_path / "run")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["cat/a.png", "cat/c.png", "dog/b.jpg"]
    assert (out / "dog" / "b.jpg").read_bytes() == b"2"


@pytest.mark.parametrize("entries,links,message", [
    ({"../evil.png": b"1"}, (), "climbs out"),
    ({"cat/../../evil.png": b"1"}, (), "climbs out"),
    ({"/etc/evil.png": b"1"}, (), "absolute path"),
    ({"C:\\evil.png": b"1"}, (), "absolute path"),
    ({"ok.png": b"1"}, ("link.png",), "symbolic link"),
    ({"notes.txt": b"1"}, (), "no images"),
])
def test_hostile_archives_refused_whole(tmp_path, entries, links, message):
    with pytest.raises(CamError, match=message):
        unpack_zip(_zip(entries, links), tmp_path / "run", "up.zip")
    assert not (tmp_path / "run").exists()  # nothing written
    assert not (tmp_path / "evil.png").exists()


def test_caps(tmp_path):
    many = _zip({f"{i}.png": b"1" for i in range(6)})
    with pytest.raises(CamError, match="6 images, over the limit of 5"):
        unpack_zip(many, tmp_path / "a", max_members=5)
    big = _zip({"a.png": b"\0" * 5000, "b.png": b"\0" * 5000})  # compresses to almost nothing
    with pytest.raises(CamError, match="possible zip bomb"):
        unpack_zip(big, tmp_path / "b", max_total_bytes=8000)
    out = unpack_zip(big, tmp_path / "c", max_member_bytes=100)  # each too large: kept empty (an error row)
    assert sorted(p.stat().st_size for p in out.iterdir()) == [0, 0]
    with pytest.raises(CamError, match="not a readable ZIP"):
        unpack_zip(b"PK\x03\x04 not really", tmp_path / "d")
