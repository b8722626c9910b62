"""The Occlusion page's geometry and schedule (cam_core.occlusion_view), against hand-worked numbers."""
from __future__ import annotations

import numpy as np
import pytest

from cam_core import occlusion_view as ov
from cam_core.methods.occlusion import window_starts
from cam_core.registry import get_method


def test_defaults_are_the_registry_s():
    params = get_method("occlusion").params
    d = ov.defaults()
    assert d["patch"] == params["patch"].default and d["stride"] == params["stride"].default
    assert d["fill"] == params["fill"].default
    assert "chunk" not in d  # engine-tuned, not a default a person sees


def test_passes_run_coarse_then_fine_only_when_windows_overlap():
    assert ov.passes(32, 16) == [32, 16]
    assert ov.passes(32, 32) == [32]
    assert ov.passes(16, 48) == [48]


def test_cells_tile_the_whole_side_to_both_edges():
    # 100 px, patch 30, stride 25: windows at 0, 25, 50 and one flush with the edge at 70
    starts = window_starts(100, 30, 25)
    assert starts == [0, 25, 50, 70]
    edges = ov.cell_edges(starts, 30, 100)
    # centres 15, 40, 65, 85 → boundaries half-way between them, and the two image edges
    np.testing.assert_allclose(edges, [0, 27.5, 52.5, 75, 100])
    assert len(edges) == len(starts) + 1
    assert ov.cell_edges([0], 100, 100).tolist() == [0.0, 100.0]


def test_photo_grid_rescales_input_pixels_to_the_photo():
    extras = {"rows": [0, 16], "cols": [0, 32, 64], "patch": 32}
    grid = ov.photo_grid(extras, input_hw=(48, 96), photo_size=(960, 480))  # photo 10× the input
    np.testing.assert_allclose(grid.x_edges, [0, 320, 640, 960])
    np.testing.assert_allclose(grid.y_edges, [0, 240, 480])
    np.testing.assert_allclose(grid.x_centres, [160, 480, 800])
    np.testing.assert_allclose(grid.y_centres, [160, 320])


@pytest.mark.parametrize("x, y, expected", [
    (480, 240, (8, 32)),     # centre of a 960×480 photo → input (24, 48) → window at (24−16, 48−16)
    (0, 0, (0, 0)),          # clamped inside at the top-left
    (959, 479, (16, 64)),    # and at the bottom-right: the window ends flush with the input's edge
])
def test_window_at_centres_the_patch_on_the_click(x, y, expected):
    assert ov.window_at(x, y, (960, 480), (48, 96), 32) == expected
