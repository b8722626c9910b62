"""Small display helpers of cam_core.render (Layers' tiles and mosaic, .npy downloads), checked by hand."""
from __future__ import annotations

import io

import numpy as np

from cam_core.render import COLORMAPS, filter_mosaic, tile, to_npy_bytes, unit_range


def test_unit_range_is_min_max_and_a_flat_map_is_zeros():
    np.testing.assert_allclose(unit_range([[2.0, 4.0], [3.0, 6.0]]), [[0.0, 0.5], [0.25, 1.0]])
    assert not unit_range(np.full((2, 2), 7.0)).any()


def test_tile_enlarges_each_cell_to_a_square_of_one_colour():
    img = np.asarray(tile(np.array([[0.0, 1.0]]), "viridis", 8))
    assert img.shape == (4, 8, 3)  # scale 4: 8 px wide
    lut = COLORMAPS["viridis"]
    assert (img[:, :4] == lut[0]).all() and (img[:, 4:] == lut[255]).all()


def test_filter_mosaic_places_each_filter_on_white_with_gaps():
    tiles = np.zeros((3, 2, 2, 3))
    tiles[1] = 1.0
    img = np.asarray(filter_mosaic(tiles, per_row=2, cell=4, gap=1))
    assert img.shape == (1 + 2 * (4 + 1), 1 + 2 * (4 + 1), 3)  # 2 rows, 2 columns of 4×4 tiles
    assert (img[1:5, 1:5] == 0).all() and (img[1:5, 6:10] == 255).all() and (img[6:10, 1:5] == 0).all()
    assert (img[0] == 255).all() and (img[6:10, 6:10] == 255).all()  # gap and the empty cell stay white


def test_npy_bytes_load_back_as_float32_without_pickle():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    back = np.load(io.BytesIO(to_npy_bytes(a)), allow_pickle=False)
    assert back.dtype == np.float32 and (back == a).all()
