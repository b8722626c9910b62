"""``cam-explorer visualize``: no photo in, one PNG and one JSON line out; usage errors on one line."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cam_explorer.cli import main


def test_visualize_writes_the_png_and_a_record(tmp_path, capsys):
    out = tmp_path / "c7.png"
    code = main(["visualize", "--layer", "blocks.3", "--channel", "7", "--steps", "3", "--size", "40",
                 "--seed", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    record = json.loads(captured.out)
    assert record["layer"] == "blocks.3" and record["channel"] == 7 and record["steps"] == 3
    image = np.asarray(Image.open(out))
    assert image.shape == (40, 40, 3)
    assert np.isfinite(record["activation"])


def test_channel_without_layer_and_a_bad_channel_are_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "x.png")
    assert main(["visualize", "--channel", "1", "--out", out]) == 2
    assert "needs --layer" in capsys.readouterr().err
    assert main(["visualize", "--layer", "blocks.3", "--channel", "100000", "--steps", "1", "--size", "32",
                 "--out", out]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "channel 100000" in err
