"""Average drop and increase in confidence (Chattopadhay et al., Grad-CAM++, WACV 2018, §5.1).

The model sees only what the map keeps: ``O = p^c(x ⊙ map)`` against the clean ``Y = p^c(x)``.
Average drop = ``max(0, Y − O) / Y`` (the paper averages it over images, in %; here one image, in [0, 1]);
increase in confidence = 1 when ``O > Y`` else 0 (the paper's rate over images).

Where the product is taken: in the model's normalized space, ``x · map``, so a weight 0 sends a pixel to 0 =
the dataset mean (the fill the occlusion method and deletion use), not to black. The map is first clipped at
0 and divided by its maximum (an ``Explanation.heatmap`` is already so), so its peak keeps the pixel whole.

Trap: a map of all ones keeps the whole image and scores a perfect drop of 0 — these numbers reward wide
maps; read them beside deletion, never alone.
"""
from __future__ import annotations

import numpy as np
import torch

from ..batching import Stack
from .common import Context, Measured, Plan
from .result import MetricResult


def unit_map(heat: np.ndarray) -> np.ndarray:
    """The map clipped at 0 and scaled so its maximum is 1 (a blank map stays zeros)."""
    positive = np.clip(heat, 0.0, None)
    peak = positive.max()
    return positive / peak if peak > 0 else positive


def plan(ctx: Context, wanted: set[str]) -> Plan:
    x = ctx.x
    weights = torch.as_tensor(unit_map(ctx.heat), dtype=x.dtype, device=x.device)
    masked = x * weights  # one image: nothing to build chunk by chunk
    blank = not bool((weights > 0).any())

    def finish(m: Measured) -> dict[str, MetricResult]:
        kept = float(m.probs[0])
        clean = float(m.clean)
        details = {"clean_prob": clean, "masked_prob": kept}
        notes = ["the map is blank: the model saw only the dataset-mean image"] if blank else []
        made = {
            "average_drop": MetricResult("average_drop", max(0.0, clean - kept) / clean if clean > 0 else 0.0,
                                         None, EXPLANATIONS["average_drop"], False, m.class_idx,
                                         details=dict(details), notes=list(notes)),
            "increase_in_confidence": MetricResult("increase_in_confidence", float(kept > clean), None,
                                                   EXPLANATIONS["increase_in_confidence"], True, m.class_idx,
                                                   details=dict(details), notes=list(notes)),
        }
        return {name: result for name, result in made.items() if name in wanted}

    return Plan([Stack(masked)], finish)


EXPLANATIONS = {
    "average_drop": "Share of the class probability lost when the model sees only what the map keeps (0–1): "
                    "lower is better — but a map of all ones scores a perfect 0, so read it beside deletion.",
    "increase_in_confidence": "1 if the class probability rises when the model sees only what the map keeps, "
                              "else 0: higher is better — but a map of all ones never loses, so read it beside "
                              "deletion.",
}
