"""The one registry of metrics: name → family, paper, direction, and the settings it reads.

The UI, the CLI and the Learn page read ``METRICS``; a new metric is one entry here and one family module.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import CamError
from . import confidence, deletion_insertion, localization, road
from .common import Context, Plan


@dataclass(frozen=True)
class MetricSpec:
    """A metric: its family (which builds its inputs), where it comes from, how to read it."""

    name: str
    display: str
    family: ModuleType  # has ``plan(ctx, wanted) -> Plan``; metrics of one family share their model runs
    citation: str
    paper_url: str
    explanation: str
    higher_is_better: bool
    settings: tuple[str, ...] = ()
    needs_model: bool = True  # False: read from the map alone (no forward pass, no class)
    needs_box: bool = False

    @property
    def planner(self) -> Callable[[Context, set[str]], Plan]:
        return self.family.plan


_PETSIUK = ("Petsiuk et al., RISE: Randomized Input Sampling for Explanation of Black-box Models, BMVC 2018",
            "https://arxiv.org/abs/1806.07421")
_RONG = ("Rong et al., A Consistent and Efficient Evaluation Strategy for Attribution Methods (ROAD), ICML 2022",
         "https://arxiv.org/abs/2202.00449")
_CHATTOPADHAY = ("Chattopadhay et al., Grad-CAM++: Improved Visual Explanations for Deep CNNs, WACV 2018",
                 "https://arxiv.org/abs/1710.11063")
_ROAD_SETTINGS = ("fractions", "road_noise", "pixel_std", "seed", "chunk")

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("deletion", "Deletion AUC", deletion_insertion, *_PETSIUK,
               deletion_insertion.EXPLANATIONS["deletion"], False, ("steps", "deletion_fill", "chunk")),
    MetricSpec("insertion", "Insertion AUC", deletion_insertion, *_PETSIUK,
               deletion_insertion.EXPLANATIONS["insertion"], True, ("steps", "blur_size", "blur_sigma", "chunk")),
    MetricSpec("road", "ROAD (LeRF − MoRF)", road, *_RONG, road.EXPLANATIONS["road"], True, _ROAD_SETTINGS),
    MetricSpec("road_morf", "ROAD MoRF", road, *_RONG, road.EXPLANATIONS["road_morf"], False, _ROAD_SETTINGS),
    MetricSpec("road_lerf", "ROAD LeRF", road, *_RONG, road.EXPLANATIONS["road_lerf"], True, _ROAD_SETTINGS),
    MetricSpec("average_drop", "Average drop", confidence, *_CHATTOPADHAY,
               confidence.EXPLANATIONS["average_drop"], False, ("chunk",)),
    MetricSpec("increase_in_confidence", "Increase in confidence", confidence, *_CHATTOPADHAY,
               confidence.EXPLANATIONS["increase_in_confidence"], True, ("chunk",)),
    MetricSpec("pointing_game", "Pointing game", localization,
               "Zhang et al., Top-down Neural Attention by Excitation Backprop, ECCV 2016",
               "https://arxiv.org/abs/1608.00507", localization.EXPLANATIONS["pointing_game"], True,
               ("box", "tolerance"), needs_model=False, needs_box=True),
    MetricSpec("energy_in_box", "Energy in box", localization,
               "Wang et al., Score-CAM: Score-Weighted Visual Explanations for CNNs, CVPR workshops 2020",
               "https://arxiv.org/abs/1910.01279", localization.EXPLANATIONS["energy_in_box"], True,
               ("box",), needs_model=False, needs_box=True),
)}


def get_metric(name: str) -> MetricSpec:
    """The registered metric called ``name`` (case-insensitive, ``-`` or ``_``), or a ``CamError`` listing them."""
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    spec = METRICS.get(key)
    if spec is None:
        raise CamError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return spec


def with_pixel_std(settings: dict[str, Any], metrics: Sequence[str], std: Sequence[float] | None) -> dict[str, Any]:
    """``settings`` with ROAD's ``pixel_std`` set to the model's normalization ``std`` when a metric of
    ``metrics`` reads it and it was not given (the app and the CLI both take the default from here)."""
    out = dict(settings)
    if std is not None and "pixel_std" not in out and any("pixel_std" in METRICS[m].settings for m in metrics):
        out["pixel_std"] = [float(v) for v in std]
    return out
