"""Target-layer lists a person can read: no-op and container entries left out, the rest grouped by stage.

``cam_core.layers.layers`` lists every module with a spatial output — on EfficientNet-Lite0 that is 262
entries, 106 of them ``Identity`` (timm's unused ``.aa``/``.se``/``.drop`` slots) and 8 ``Sequential``
containers whose output is the same tensor as their last block's. A *stage* is a run of layers at one
spatial resolution (the network downsamples between stages), which is how the architectures are drawn.
Pure functions on ``LayerInfo`` lists; the UI caches them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .layers import LayerInfo

#: Kinds that pass their input through (or only drop at training time): never a useful target.
NO_OP_KINDS = frozenset({"Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                         "FeatureAlphaDropout", "DropPath", "StochasticDepth", "DropBlock2d", "Flatten"})
#: Kinds that only hold other modules: their output is their last child's.
CONTAINER_KINDS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
#: Kinds that only pool: poor CAM targets (kept out of the stage strip).
POOL_KINDS = frozenset({"AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "MaxPool2d"})


@dataclass(frozen=True)
class LayerChoice:
    """One entry of the grouped list: the layer and the stage (1 = finest grid) it belongs to."""

    info: LayerInfo
    stage: int

    @property
    def name(self) -> str:
        return self.info.name

    def label(self) -> str:
        """``"stage 3 · 28×28 │ blocks.2.0 · InvertedResidual, 40 ch"``."""
        c, h, w = self.info.shape
        return f"stage {self.stage} · {h}×{w} │ {self.info.name} · {self.info.kind}, {c} ch"


def useful(info: LayerInfo) -> bool:
    """False for pass-through, container and pooled-to-a-point (1×1) layers."""
    return (info.kind not in NO_OP_KINDS and info.kind not in CONTAINER_KINDS
            and info.shape[1] * info.shape[2] > 1)


def grouped_layers(infos: Sequence[LayerInfo], keep: Sequence[str] = ()) -> list[LayerChoice]:
    """The useful layers, grouped by stage (finest grid first), in module order within a stage.

    Stages are numbered by resolution: every distinct H×W is one stage, larger grids first. Layers
    named in ``keep`` (e.g. the model's default layer) stay even if they are containers.
    """
    kept = set(keep)
    chosen = [i for i in infos if useful(i) or i.name in kept]
    grids = sorted({i.shape[1:] for i in chosen}, key=lambda hw: (-hw[0] * hw[1], -hw[0]))
    stage_of = {hw: n for n, hw in enumerate(grids, start=1)}
    order = {i.name: n for n, i in enumerate(infos)}
    choices = [LayerChoice(i, stage_of[i.shape[1:]]) for i in chosen]
    return sorted(choices, key=lambda c: (c.stage, order[c.name]))


def stage_strip(infos: Sequence[LayerInfo], max_stages: int = 8) -> list[LayerInfo]:
    """~6–8 layers spread from input to head, for the "channel-mean map at each stage" strip.

    The shallowest modules with a spatial output are taken first; a container whose children change
    shape is replaced by them, and runs of equal shape are reduced to their last layer, going one level
    deeper until there are at least 6. At most ``max_stages`` are returned, evenly spread.
    """
    usable = [i for i in infos if i.kind not in NO_OP_KINDS and i.kind not in POOL_KINDS
              and i.shape[1] * i.shape[2] > 1]
    chosen: list[LayerInfo] = []
    for depth in range(4):
        pool = [i for i in usable if i.name.count(".") <= depth]
        expanded = {i.name for i in pool
                    if len({j.shape for j in pool if j.name.startswith(i.name + ".")}) >= 2}
        keep = [i for i in pool if i.name not in expanded
                and not any(i.name.startswith(j.name + ".") and j.name not in expanded for j in pool)]
        collapsed: list[LayerInfo] = []
        for info in keep:
            if collapsed and collapsed[-1].shape == info.shape:
                collapsed[-1] = info
            else:
                collapsed.append(info)
        chosen = collapsed
        if len(chosen) >= 6:
            break
    if len(chosen) > max_stages:
        idx = np.unique(np.linspace(0, len(chosen) - 1, max_stages).round().astype(int))
        chosen = [chosen[i] for i in idx]
    return chosen
