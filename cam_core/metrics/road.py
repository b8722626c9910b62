"""ROAD — RemOve And Debias (Rong et al., ICML 2022): remove pixels, fill them in without leaking the mask.

At each fraction ``f`` of the pixels REMOVED (``fractions``, default 0.1 … 0.9; ``round(f·H·W)`` pixels),
removal goes most relevant first (MoRF) or least relevant first (LeRF). Each removed pixel becomes the
weighted mean of its 8 neighbours (1/6 edge, 1/12 diagonal, renormalised at the image border), all removed
pixels of an image solved jointly as one sparse linear system, plus Gaussian noise on the imputed pixels
(σ = ``road_noise`` = 0.01 on [0, 1] pixels, seeded). Scores: the class probability at every fraction;
``road`` = mean(LeRF) − mean(MoRF), higher better.

Normalized space: x arrives normalized, ``(p − mean)/std`` per channel. The imputation is a weighted mean
with weights summing to 1, so imputing the normalized image equals normalizing the imputed pixel image —
no mean/std needed. The noise is not: σ on [0, 1] pixels is σ/std in normalized space, so pass the model's
std as ``pixel_std`` (torchvision models (0.229, 0.224, 0.225); EfficientNet-Lite 128/255); the default 1
adds σ in normalized units as given.

Equal map values (a ReLU'd map's zero plateau) are ordered by one seeded random permutation, fixed for the
call: MoRF at 10 % removes exactly 10 % of the pixels whatever the ties. (pytorch-grad-cam's ROAD counts the
fraction KEPT, and its threshold on tied values makes MoRF remove everything at low percentiles.)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import CamError
from .common import Context, Measured, Plan
from .result import Curve, MetricResult
from .settings import per_channel

# (row offset, column offset, weight): the 4 edge neighbours weigh 1/6, the 4 diagonal ones 1/12.
NEIGHBOURS = tuple((dr, dc, 1 / 12 if dr and dc else 1 / 6)
                   for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)

X_LABEL = "fraction of pixels removed"
Y_LABEL = "probability of the class"


def impute(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """``image`` (C×H×W) with every ``removed`` pixel (H×W bool) the weighted mean of its in-image neighbours.

    All removed pixels are unknowns of one sparse system ``v_p = Σ_q w_pq v_q / Σ_q w_pq``, solved by one LU
    factorisation for all channels. It has a unique solution unless every pixel is removed.
    """
    # lazy on purpose: scipy (through scikit-image) is only needed by ROAD's fill, and it is slow to import
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import splu

    channels, height, width = image.shape
    flat_removed = removed.ravel()
    unknown = np.flatnonzero(flat_removed)
    out = image.astype(np.float64, copy=True)
    if unknown.size == 0:
        return out
    if unknown.size == flat_removed.size:
        raise CamError("ROAD cannot fill in an image with every pixel removed; use fractions below 1")
    flat = out.reshape(channels, -1)
    variable = np.full(flat_removed.size, -1, dtype=np.int64)
    variable[unknown] = np.arange(unknown.size)
    rows, cols = unknown // width, unknown % width
    diagonal = np.zeros(unknown.size)
    rhs = np.zeros((unknown.size, channels))
    a_rows, a_cols, a_vals = [], [], []
    for dr, dc, weight in NEIGHBOURS:
        r, c = rows + dr, cols + dc
        inside = np.flatnonzero((r >= 0) & (r < height) & (c >= 0) & (c < width))
        neighbour = r[inside] * width + c[inside]
        diagonal[inside] += weight
        is_unknown = flat_removed[neighbour]
        a_rows.append(inside[is_unknown])
        a_cols.append(variable[neighbour[is_unknown]])
        a_vals.append(np.full(int(is_unknown.sum()), -weight))
        known = ~is_unknown
        rhs[inside[known]] += weight * flat[:, neighbour[known]].T  # each equation once per offset: no repeats
    ids = np.arange(unknown.size)
    matrix = csc_matrix((np.concatenate([diagonal, *a_vals]),
                         (np.concatenate([ids, *a_rows]), np.concatenate([ids, *a_cols]))),
                        shape=(unknown.size, unknown.size))
    solution = splu(matrix).solve(rhs)
    flat[:, unknown] = solution.T
    return out


def removal_counts(pixels: int, fractions: Sequence[float]) -> list[int]:
    """Pixels removed at each fraction: ``round(f · pixels)``, at most all but one."""
    return [min(int(np.floor(f * pixels + 0.5)), pixels - 1) for f in fractions]


def tie_broken_orders(heat: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(MoRF, LeRF) flat pixel orders: by map value, equal values by one seeded random permutation."""
    values = heat.ravel()
    key = np.random.default_rng(seed).permutation(values.size)
    return np.lexsort((key, -values)), np.lexsort((key, values))


def check_fractions(value: Any) -> list[float]:
    """The removed fractions, sorted, each in [0, 1)."""
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        fractions = sorted({float(v) for v in values})
    except (TypeError, ValueError):
        raise CamError(f"fractions must be numbers in [0, 1) (the share of pixels removed), got {value!r}") from None
    if not fractions or not all(0.0 <= f < 1.0 for f in fractions):
        raise CamError(f"fractions must be numbers in [0, 1) (the share of pixels removed), got {value!r}")
    return fractions


class Removals:
    """Item ``i``: the image with the first ``counts[i]`` pixels of ``orders[i]`` removed and imputed, plus noise.

    The noise of item ``i`` comes from its own generator seeded by (seed, i), so results do not depend on the
    chunk size; each item's sparse solve runs when its chunk is filled.
    """

    def __init__(self, x: torch.Tensor, orders: list[np.ndarray], counts: list[int], noise: list[float],
                 seed: int) -> None:
        self.template = x
        self.count = len(counts)
        self._image = x[0].detach().cpu().double().numpy()
        self._orders, self._counts, self._seed = orders, counts, seed
        self._noise = np.asarray(noise)[:, None]

    def item(self, i: int) -> np.ndarray:
        """Item ``i`` as a C×H×W array."""
        channels, height, width = self._image.shape
        removed = np.zeros(height * width, dtype=bool)
        removed[self._orders[i][:self._counts[i]]] = True
        out = impute(self._image, removed.reshape(height, width))
        flat = out.reshape(channels, -1)
        where = np.flatnonzero(removed)
        if where.size and self._noise.any():
            rng = np.random.default_rng([self._seed, i])
            flat[:, where] += self._noise * rng.standard_normal((channels, where.size))
        return out

    def fill(self, start: int, out: torch.Tensor) -> None:
        for j in range(out.shape[0]):
            out[j].copy_(torch.from_numpy(self.item(start + j)))


def plan(ctx: Context, wanted: set[str]) -> Plan:
    x, s = ctx.x, ctx.settings
    channels, height, width = x.shape[1:]
    fractions = check_fractions(s["fractions"])
    stds = per_channel("pixel_std", s["pixel_std"], channels)
    if not all(v > 0 for v in stds):
        raise CamError(f"pixel_std must be positive, got {s['pixel_std']!r}")
    noise = [float(s["road_noise"]) / v for v in stds]
    counts = removal_counts(height * width, fractions)
    morf, lerf = tie_broken_orders(ctx.heat, int(s["seed"]))
    n = len(fractions)
    variants = Removals(x, [morf] * n + [lerf] * n, counts * 2, noise, int(s["seed"]))
    xs = np.asarray(fractions)

    def finish(m: Measured) -> dict[str, MetricResult]:
        morf_y, lerf_y = m.probs[:n].copy(), m.probs[n:2 * n].copy()
        curves = {"MoRF": Curve(xs.copy(), morf_y, X_LABEL, Y_LABEL),
                  "LeRF": Curve(xs.copy(), lerf_y, X_LABEL, Y_LABEL)}
        details = {"clean_prob": m.clean, "fractions": fractions, "pixels_removed": counts,
                   "noise_normalized": noise, "seed": int(s["seed"])}
        gap = Curve(xs.copy(), lerf_y - morf_y, X_LABEL, "LeRF − MoRF probability")
        made = {
            "road": MetricResult("road", float(lerf_y.mean() - morf_y.mean()), gap, EXPLANATIONS["road"], True,
                                 m.class_idx, curves, details),
            "road_morf": MetricResult("road_morf", float(morf_y.mean()), curves["MoRF"],
                                      EXPLANATIONS["road_morf"], False, m.class_idx, curves, details),
            "road_lerf": MetricResult("road_lerf", float(lerf_y.mean()), curves["LeRF"],
                                      EXPLANATIONS["road_lerf"], True, m.class_idx, curves, details),
        }
        return {name: result for name, result in made.items() if name in wanted}

    return Plan([variants], finish)


EXPLANATIONS = {
    "road": "Mean probability with the LEAST important pixels removed minus with the MOST important removed "
            "(gaps filled from neighbours, −1 to 1): higher is better — removing what the map ranks high hurts "
            "more.",
    "road_morf": "Mean class probability as the map's most important pixels are removed and filled in from "
                 "their neighbours (0–1): lower is better.",
    "road_lerf": "Mean class probability as the map's least important pixels are removed and filled in from "
                 "their neighbours (0–1): higher is better.",
}
