"""How alike two maps are: Spearman rank correlation of |map| and SSIM, plus the input's edge map.

Both measures are the ones Adebayo et al. (NeurIPS 2018, "Sanity Checks for Saliency Maps") report when they
compare a map with the map of a randomized model. Written here in numpy/torch so that ``cam_core`` needs no
SciPy; the tests check them against ``scipy.stats.spearmanr`` and ``skimage.metrics.structural_similarity``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of the flattened ``values``; tied values share the average of the ranks they span.

    ReLU'd maps have large zero plateaus, so ties are the rule, not the exception: giving them one average
    rank (rather than an arbitrary order) is what makes the correlation reproducible.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    starts_run = np.empty(flat.size, dtype=bool)
    starts_run[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_run[1:])
    run = np.cumsum(starts_run) - 1
    starts = np.flatnonzero(starts_run)
    ends = np.append(starts[1:], flat.size)
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 … ends
    ranks = np.empty(flat.size, dtype=np.float64)
    ranks[order] = mean_rank[run]
    return ranks


def centred_ranks(values: np.ndarray) -> tuple[np.ndarray, float]:
    """Average ranks of |values| minus their mean, and their norm: one side of ``spearman``, reusable when one
    map is compared with many."""
    ranks = average_ranks(np.abs(np.asarray(values, dtype=np.float64)))
    ranks -= ranks.mean()
    return ranks, float(np.sqrt((ranks * ranks).sum()))


def spearman(a: np.ndarray | tuple[np.ndarray, float], b: np.ndarray | tuple[np.ndarray, float]) -> float:
    """Spearman's ρ of |a| and |b| (same shape): the Pearson correlation of their average ranks.

    Either side may be given as ``centred_ranks(...)`` already. NaN when either map is constant (a blank map
    has no ranking to compare), as SciPy returns.
    """
    ra, na = a if isinstance(a, tuple) else centred_ranks(a)
    rb, nb = b if isinstance(b, tuple) else centred_ranks(b)
    if ra.shape != rb.shape:
        raise ValueError(f"maps of different sizes {ra.shape} and {rb.shape}")
    if na == 0.0 or nb == 0.0:
        return float("nan")
    return float(np.clip((ra * rb).sum() / (na * nb), -1.0, 1.0))


def _box_means(image: np.ndarray, window: int) -> np.ndarray:
    """Mean over every window×window box lying inside ``image`` (an integral image: O(pixels))."""
    total = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
    np.cumsum(np.cumsum(image, axis=0), axis=1, out=total[1:, 1:])
    w = window
    return (total[w:, w:] - total[:-w, w:] - total[w:, :-w] + total[:-w, :-w]) / (w * w)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, window: int = 7) -> float:
    """Mean structural similarity (Wang et al. 2004) of two 2-D maps, with a uniform ``window``×``window``.

    The same conventions as scikit-image's default: sample (N−1) covariances, K1 = 0.01, K2 = 0.03, and
    the mean taken over the positions where the whole window lies inside the image.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"SSIM needs two maps of one 2-D shape, got {a.shape} and {b.shape}")
    if min(a.shape) < window:
        raise ValueError(f"maps of {a.shape} are smaller than the {window}×{window} SSIM window")
    mean_a, mean_b = _box_means(a, window), _box_means(b, window)
    unbias = window * window / (window * window - 1)
    var_a = unbias * (_box_means(a * a, window) - mean_a * mean_a)
    var_b = unbias * (_box_means(b * b, window) - mean_b * mean_b)
    cov = unbias * (_box_means(a * b, window) - mean_a * mean_b)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    index = ((2 * mean_a * mean_b + c1) * (2 * cov + c2)) / ((mean_a ** 2 + mean_b ** 2 + c1) * (var_a + var_b + c2))
    return float(index.mean())


def edge_map(x: torch.Tensor) -> np.ndarray:
    """Sobel gradient magnitude of the image ``x`` (1×3×H×W or 3×H×W, any normalization), H×W float64.

    The reference for "the map only shows the image": Adebayo et al. found guided backprop close to an edge
    detector whatever the weights.
    """
    image = x.detach().to("cpu", torch.float64)
    image = image[0] if image.dim() == 4 else image
    gray = image.mean(dim=0)[None, None]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
    kernels = torch.stack([kx, kx.T])[:, None]
    grads = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)[0]
    return torch.sqrt(grads[0] ** 2 + grads[1] ** 2).numpy()
