"""Several methods' maps of one image ranked by deletion and insertion against the random-map baseline.

The rule (docs/metrics.md, "Ranking methods"): first by **points** — per curve 2 when the map beats every
random map ("better"), 1 when it beats at least half ("unclear"), 0 otherwise — then by the **margin**: how far
the map's score is from the random maps' mean, in their spreads, in the better direction, averaged over the
curves. Two maps with the same points and margins less than ``TIE`` apart share a rank ("1, 2=, 2=, 4").
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import CamError
from .result import MetricResult

RANKED_BY = ("deletion", "insertion")
#: Margins (in random-map spreads) closer than this are a tie: half the spread of a random map's score.
TIE = 0.5
POINTS = {"better": 2, "unclear": 1, "no better": 0}
#: Method kinds whose maps are pixel-level (gradients, not regions): a deletion curve rewards them partly for
#: breaking the image with scattered holes (Rong et al., ROAD, ICML 2022).
PIXEL_KINDS = ("pixel",)


@dataclass(frozen=True)
class Ranked:
    """One map's place: ``rank`` (1 = best; tied maps share it), ``tied``, ``points``, ``margin``."""

    name: str
    rank: int
    tied: bool
    points: int
    margin: float
    standings: dict[str, str]

    @property
    def place(self) -> str:
        """"1", or "2=" when tied."""
        return f"{self.rank}{'=' if self.tied else ''}"


def margin(result: MetricResult) -> float:
    """(score − random mean) / random spread, positive when better than the random maps' mean."""
    if result.baseline is None:
        raise CamError(f"{result.name}: ranking needs the random-map baseline (evaluate(..., baseline=N))")
    base = result.baseline
    gap = result.score - base.mean if result.higher_is_better else base.mean - result.score
    return gap / max(base.spread, 1e-9)


def rank(scores: Mapping[str, Mapping[str, MetricResult]], metrics: Sequence[str] = RANKED_BY,
         tie: float = TIE) -> list[Ranked]:
    """``{name: {metric: MetricResult with a baseline}}`` ranked best first by the rule above."""
    rows = []
    for name, results in scores.items():
        missing = [m for m in metrics if m not in results]
        if missing:
            raise CamError(f"{name}: no {', '.join(missing)} score to rank by")
        standings = {m: str(results[m].standing) for m in metrics}
        points = sum(POINTS.get(s, 0) for s in standings.values())
        rows.append((name, points, sum(margin(results[m]) for m in metrics) / len(metrics), standings))
    rows.sort(key=lambda r: (-r[1], -r[2]))
    out: list[Ranked] = []
    leader = None
    for i, (name, points, gap, standings) in enumerate(rows):
        if leader is None or points != leader[1] or leader[2] - gap >= tie:
            leader = (i + 1, points, gap)
        out.append(Ranked(name, leader[0], False, points, gap, standings))
    shared = {r.rank for r in out if sum(o.rank == r.rank for o in out) > 1}
    return [Ranked(r.name, r.rank, r.rank in shared, r.points, r.margin, r.standings) for r in out]


def pixel_note(ranked: Sequence[Ranked], kinds: Mapping[str, str], displays: Mapping[str, str] | None = None
               ) -> str | None:
    """One sentence when a pixel-level map ranks in the top half (its kind in ``PIXEL_KINDS``), else ``None``."""
    high = max(1, (len(ranked) + 1) // 2)
    names = [r.name for r in ranked if r.rank <= high and kinds.get(r.name) in PIXEL_KINDS]
    if not names or len(ranked) < 2:
        return None
    shown = ", ".join((displays or {}).get(n, n) for n in names)
    return (f"{shown} {'ranks' if len(names) == 1 else 'rank'} high partly for another reason: a pixel-level map "
            "removes scattered single pixels, which breaks the image in a way the model never saw, so the "
            "probability falls fast even where the object is not (Rong et al., 2022). Trust its place only if "
            "its map also looks right.")
