"""What the command line writes that is not a map: progress lines on stderr, durations, file stems."""
from __future__ import annotations

import io

import pytest

from cam_explorer.writers import OutputFolder, Progress, duration, one_line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_log_is_a_line_per_quarter_with_done_total_and_time_left():
    stream = io.StringIO()
    progress = Progress("cat.png occlusion", stream)
    for done in range(1, 13):
        progress(done, 12)
    lines = stream.getvalue().splitlines()
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == ["1/12", "3/12", "6/12", "9/12", "12/12"]
    assert all(line.startswith("cat.png occlusion: ") for line in lines)
    assert all(" left" in line for line in lines[:-1]) and " in " in lines[-1]
    assert progress.total == 12 and progress.shown


def test_progress_on_a_terminal_rewrites_one_line_and_ends_it():
    stream = _Terminal()
    progress = Progress("x", stream)
    for done in (1, 2, 3, 4):
        progress(done, 4)
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "\rx: 4/4 (100%)" in text


def test_one_shot_work_draws_nothing():
    stream = io.StringIO()
    Progress("x", stream)(1, 1)
    assert stream.getvalue() == ""


@pytest.mark.parametrize("seconds, text", [(0.42, "0.4 s"), (12.4, "12 s"), (185, "3 min 05 s")])
def test_durations_read_like_a_person_says_them(seconds, text):
    assert duration(seconds) == text


def test_stems_stay_unique_and_errors_stay_one_line(tmp_path):
    out = OutputFolder(tmp_path / "new" / "folder")
    assert out.path.is_dir()
    assert [out.stem_for(p) for p in ("a/cat.jpg", "b/cat.jpg", "my photo!.png")] == ["cat", "cat_2", "my_photo"]
    assert one_line(ValueError("two\nlines")) == "ValueError: two lines"
