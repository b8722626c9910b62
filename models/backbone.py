"""A loaded classifier with everything needed to use it: weights on a device, preprocessing, class names."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torch import nn

from cam_core.predict import Prediction, predict
from models import preprocess as _pre
from models.spec import BackboneSpec


#: Named occluder / fill colours (0..255 RGB) offered by the app and the CLI; ``Backbone.fill_value`` maps
#: one into the model's normalized space.
FILL_COLOURS: dict[str, tuple[int, int, int]] = {"grey": (128, 128, 128), "black": (0, 0, 0),
                                                 "white": (255, 255, 255)}


class Backbone:
    """``spec`` (how it was trained), ``model`` (eval mode, on ``device``) and ``categories`` (one name per class)."""

    def __init__(self, spec: BackboneSpec, model: nn.Module, categories: Sequence[str], device: torch.device | str) -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.categories = list(categories)

    @property
    def name(self) -> str:
        """The registry name of the architecture (e.g. "efficientnet_lite0")."""
        return self.spec.name

    @property
    def display(self) -> str:
        return self.spec.display

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The whole RGB ``image`` as the model's input: float32 1×3×H×W on the model's device, no crop."""
        return _pre.preprocess(image, self.spec.input_size, self.spec.mean, self.spec.std, self.device)

    def predict(self, image: Image.Image, top: int = 5) -> list[Prediction]:
        """Top-``top`` classes of ``image``, most likely first."""
        return predict(self.model, self.preprocess(image), self.categories, top=top)

    def fill_value(self, rgb: Sequence[float]) -> list[float]:
        """A pixel colour ``(r, g, b)`` on 0..255 in the model's normalized space (for occlusion patches, padding)."""
        return _pre.fill_value(rgb, self.spec.mean, self.spec.std)

    def __repr__(self) -> str:
        return f"Backbone({self.spec.name!r}, {self.num_classes} classes, device={self.device})"
