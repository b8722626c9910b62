"""The Occlusion page's geometry, probe and colours (cam_core.occlusion_view), against hand-worked numbers."""
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


def test_probe_is_the_prediction_of_the_image_with_the_square_filled():
    import torch

    from cam_core.predict import predict

    from .nets import GapNet, seeded

    net = seeded(GapNet(), seed=1)
    x = torch.randn(1, 3, 12, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    by_hand = x.clone()
    by_hand[:, :, 3:7, 2:6] = 0.5
    got = ov.probe(net, x, 3, 2, 4, 0.5, k=3)
    want = predict(net, by_hand, top=3)
    assert [p.class_idx for p in got] == [p.class_idx for p in want]
    assert [p.prob for p in got] == pytest.approx([p.prob for p in want], abs=1e-6)


def test_fill_colour_undoes_the_normalization_per_channel():
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    black, white = -mean / std, (1 - mean) / std  # what 0 and 255 normalize to
    assert ov.fill_rgb(0.0, black, white) == (124, 116, 104)  # the dataset mean: round(255 · mean)
    assert ov.fill_rgb(list(white), black, white) == (255, 255, 255)
    assert ov.fill_rgb(-99.0, black, white) == (0, 0, 0)  # clipped


def test_winning_classes_most_frequent_first_and_the_colour_scale_top():
    classes, z = ov.winning_classes(np.array([[7, 3, 3], [3, 7, 5]]))
    assert classes == [3, 7, 5] and z == [[1, 0, 0], [0, 1, 2]]
    assert ov.prob_top({"prob_grid": np.array([[0.2, 0.6]]), "base_prob": 0.4}) == 0.6
    assert ov.prob_top({"prob_grid": np.array([[0.0]]), "base_prob": 0.0}) == 1e-6


def test_grid_points_are_every_window_centre_row_by_row():
    g = ov.Grid(np.zeros(3), np.zeros(3), np.array([1.0, 2.0]), np.array([5.0, 6.0]))
    assert g.points() == ([1.0, 2.0, 1.0, 2.0], [5.0, 5.0, 6.0, 6.0])
