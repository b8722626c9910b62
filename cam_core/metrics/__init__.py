"""Is the map right? Faithfulness and localization metrics for any heat map: ``evaluate(model, x, heatmap, …)``.

One module per family — ``deletion_insertion`` (Petsiuk et al. 2018), ``road`` (Rong et al. 2022),
``confidence`` (average drop / increase, Chattopadhay et al. 2018), ``localization`` (pointing game, energy in
a box) — registered in ``METRICS`` with their settings in ``SETTINGS``. ``baseline``: the
same metrics on seeded random smooth maps, for a verdict. Definitions: docs/metrics.md.
"""
from .baseline import Baseline, BaselineScores, random_maps
from .evaluate import evaluate, model_runs
from .result import Curve, MetricResult, trapezoid_auc
from .settings import SETTINGS
from .specs import METRICS, MetricSpec, get_metric, with_pixel_std

__all__ = ["Baseline", "BaselineScores", "Curve", "METRICS", "MetricResult", "MetricSpec", "SETTINGS", "evaluate",
           "get_metric", "model_runs", "random_maps", "trapezoid_auc", "with_pixel_std"]
