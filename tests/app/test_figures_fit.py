"""Plots fit their data: a class at 3 % is readable on the top-k chart and on a fitted axis."""
from __future__ import annotations

from collections import namedtuple

import pytest

from cam_core.report import fitted_range
from ui.figures import top_k_bar

P = namedtuple("P", "label prob class_idx")


def test_the_top_k_axis_fits_an_unsure_prediction():
    fig = top_k_bar([P("tabby", 0.03, 281), P("lynx", 0.02, 287)])
    lo, hi = fig.layout.xaxis.range
    assert lo == 0 and hi == pytest.approx(0.05)  # at least 5 % wide: the 3 % bar fills 60 % of it
    sure = top_k_bar([P("tabby", 0.9, 281), P("lynx", 0.05, 287)])
    assert sure.layout.xaxis.range[1] == 1.0  # never beyond 100 %


def test_a_fitted_range_holds_the_data_with_a_margin():
    assert fitted_range([0.01, 0.03]) == pytest.approx((-0.005, 0.045))  # 0.02 apart: widened to 0.05
    assert fitted_range([0.0, 1.0]) == pytest.approx((-0.05, 1.05))
    assert fitted_range([]) == (0.0, 1.0)
