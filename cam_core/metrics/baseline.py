"""A reference for every score: the same metric on seeded random smooth maps, and a verdict against them.

A deletion AUC of 0.05 means nothing alone; "better than all 16 random maps (random: 0.21 ± 0.03)" does.
``random_maps`` draws the maps (a coarse grid of uniform values, bilinearly upsampled: blobs about the size
of an object part, no ties); ``Baseline`` scores them once per (model weights, image, class, metric,
settings) and keeps the scores, so every method's map on that image is judged against the same draw.
The rule (``verdict``): a map is *better* than a random map when its score is strictly better in the
metric's direction; better than all of them → "better than all N random maps"; better than at least half
→ "better than k of N random maps — not clearly better than chance"; fewer → "no better than a random map".
"""
from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CamError

#: Cells of the random grid along the image's shorter side (the longer side gets as many cells per pixel).
GRID = 7
#: Random maps scored when ``evaluate(..., baseline=True)`` or the CLI's default.
DEFAULT_COUNT = 16
#: (model, image, class, metric, settings) entries a ``Baseline`` keeps (oldest dropped first).
MAX_ENTRIES = 64


def random_maps(height: int, width: int, count: int, seed: int = 0, grid: int = GRID) -> list[np.ndarray]:
    """``count`` smooth random maps, H×W in [0, 1]: map ``i`` is uniform noise on a ``grid``-cell grid
    (on the shorter side) drawn from ``(seed, i)``, bilinearly upsampled — the same maps for the same seed."""
    if height < 1 or width < 1:
        raise CamError("random maps need an image of at least 1×1 pixels")
    short = min(height, width)
    cells = max(1, min(grid, short))
    gh = max(1, round(cells * height / short))
    gw = max(1, round(cells * width / short))
    maps = []
    for i in range(count):
        coarse = np.random.default_rng((seed, i)).random((gh, gw))
        up = F.interpolate(torch.from_numpy(coarse)[None, None], size=(height, width), mode="bilinear",
                           align_corners=False)[0, 0].numpy()
        lo, hi = up.min(), up.max()
        maps.append((up - lo) / (hi - lo) if hi > lo else np.zeros_like(up))
    return maps


@dataclass(frozen=True)
class BaselineScores:
    """One metric's scores on the random maps: ``mean``, ``spread`` (sample standard deviation), ``n``."""

    scores: tuple[float, ...]
    seed: int

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def spread(self) -> float:
        return float(np.std(self.scores, ddof=1)) if self.n > 1 else 0.0

    def beaten(self, score: float, higher_is_better: bool) -> int:
        """How many random maps ``score`` is strictly better than, in the metric's direction."""
        return sum(1 for s in self.scores if (score > s if higher_is_better else score < s))

    def as_dict(self) -> dict[str, Any]:
        return {"mean": round(self.mean, 6), "spread": round(self.spread, 6), "n": self.n, "seed": self.seed}


#: The three standings of a map against the random maps, best first.
STANDINGS = ("better", "unclear", "no better")


def standing(score: float, base: BaselineScores, higher_is_better: bool) -> str:
    """``"better"`` (beats every random map), ``"unclear"`` (at least half) or ``"no better"``."""
    beaten = base.beaten(score, higher_is_better)
    if beaten == base.n:
        return "better"
    return "unclear" if 2 * beaten >= base.n else "no better"


def verdict(score: float, base: BaselineScores, higher_is_better: bool) -> str:
    """One plain sentence: how ``score`` compares with the random maps (the rule in the module docstring)."""
    beaten, n = base.beaten(score, higher_is_better), base.n
    ref = f"random: {_num(base.mean)} ± {_num(base.spread)}"
    level = standing(score, base, higher_is_better)
    if level == "better":
        return f"better than {'the' if n == 1 else 'all'} {n} random map{'s' * (n != 1)} ({ref})"
    if level == "unclear":
        return f"better than {beaten} of {n} random maps — not clearly better than chance ({ref})"
    return f"no better than a random map (better than {beaten} of {n}; {ref})"


def _num(v: float) -> str:
    return f"{v:.3f}" if abs(v) >= 0.001 or v == 0 else f"{v:.1e}"


def _digest(x: torch.Tensor) -> str:
    data = x.detach().to("cpu", torch.float64).contiguous().numpy()
    return hashlib.blake2b(data.tobytes() + str(data.shape).encode(), digest_size=16).hexdigest()


def _weights_version(model: nn.Module) -> tuple[int, int]:
    """Changes when a parameter is written in place (``_version``) or replaced (its storage)."""
    params = list(model.parameters())
    return sum(p._version for p in params), sum(p.data_ptr() % 1_000_003 for p in params)


def _settings_key(settings: dict[str, Any], names: tuple[str, ...]) -> str:
    return repr(sorted((k, repr(settings[k])) for k in names))


class Baseline:
    """``n`` random maps (seed ``seed``) and their scores, kept per model, image, class, metric and settings.

    Pass one to ``evaluate(..., baseline=…)`` to own the cache (e.g. one per app session); an integer uses a
    process-wide one per (n, seed). Thread-safe; at most ``max_entries`` entries are kept.
    """

    def __init__(self, n: int = DEFAULT_COUNT, seed: int = 0, max_entries: int = MAX_ENTRIES) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise CamError(f"the baseline needs at least one random map, got {n!r}")
        self.n, self.seed = n, int(seed)
        self._entries: OrderedDict[tuple, tuple[Any, BaselineScores]] = OrderedDict()
        self._lock = threading.Lock()
        self.runs = 0  # scoring runs made (cache misses), for tests and diagnostics

    def maps(self, height: int, width: int) -> list[np.ndarray]:
        return random_maps(height, width, self.n, self.seed)

    def key(self, model: nn.Module, x: torch.Tensor, class_idx: Any, metric: str, settings: dict[str, Any],
            names: tuple[str, ...]) -> tuple:
        return (id(model), _weights_version(model), _digest(x), class_idx, metric, _settings_key(settings, names))

    def get(self, model: nn.Module, key: tuple) -> BaselineScores | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0]() is not model:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, model: nn.Module, key: tuple, scores: BaselineScores) -> None:
        with self._lock:
            self._entries[key] = (weakref.ref(model), scores)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)


_SHARED: dict[tuple[int, int], Baseline] = {}
_SHARED_LOCK = threading.Lock()


def shared_baseline(n: int, seed: int = 0) -> Baseline:
    """The process-wide ``Baseline`` of ``n`` maps and ``seed`` (what ``evaluate(..., baseline=n)`` uses)."""
    with _SHARED_LOCK:
        return _SHARED.setdefault((n, seed), Baseline(n, seed))


def as_baseline(value: Any) -> Baseline | None:
    """``evaluate``'s ``baseline=``: ``None``/``0``/``False`` → none, ``True`` → 16 maps, n → n maps, a ``Baseline``."""
    if value is None or value is False or (isinstance(value, int) and not isinstance(value, bool) and value == 0):
        return None
    if isinstance(value, Baseline):
        return value
    if value is True:
        return shared_baseline(DEFAULT_COUNT)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return shared_baseline(value)
    raise CamError(f"baseline must be a number of random maps (0 for none) or a Baseline, got {value!r}")

