"""What a method explains, as small objects decided before it runs: a class score or one feature-map channel.

``ClassTarget(None)`` means "the top class of the clean image"; the method's own forward pass fixes the index
(``index_for``), and the method returns it — nothing is written back into the request.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import CamError


def logits_of(output: object) -> torch.Tensor:
    """The class-score tensor of a model's output (a tensor, a tuple's first item, or ``.logits``)."""
    if isinstance(output, torch.Tensor):
        scores = output
    elif hasattr(output, "logits"):
        scores = output.logits
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        scores = output[0]
    else:
        raise CamError("the model's output is not a tensor of class scores")
    if scores.dim() != 2:
        raise CamError(f"the model's output has shape {tuple(scores.shape)}; expected N×classes scores")
    if not torch.isfinite(scores).all():
        raise CamError("the model's output contains NaN or Inf: its weights or input are broken, nothing to explain")
    return scores


@dataclass(frozen=True)
class ClassTarget:
    """A class's pre-softmax score (gradient methods) or softmax probability (perturbation methods).

    ``index=None``: the top class of the clean image, fixed by ``index_for`` on its logits.
    """

    index: int | None = None

    def index_for(self, clean_logits: torch.Tensor) -> int:
        """The class index this target means for an image whose clean scores are ``clean_logits`` (1×K)."""
        if self.index is None:
            return int(clean_logits[0].argmax())
        if not 0 <= self.index < clean_logits.shape[1]:
            raise CamError(f"class {self.index} does not exist: the model has {clean_logits.shape[1]} classes "
                           f"(0–{clean_logits.shape[1] - 1})")
        return int(self.index)

    def resolved(self, clean_logits: torch.Tensor) -> ClassTarget:
        """This target with its index fixed."""
        return ClassTarget(self.index_for(clean_logits))

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """Each item's score for the (resolved) class: N logits → N scores."""
        if self.index is None:
            raise CamError("resolve the target on the clean image first (ClassTarget.resolved)")
        return logits[:, self.index]

    def prob(self, logits: torch.Tensor) -> torch.Tensor:
        """Each item's softmax probability of the (resolved) class."""
        return at_least_float32(logits).softmax(dim=1)[:, self.index]


@dataclass(frozen=True)
class ChannelTarget:
    """One feature map of a layer, seeded at its strongest activation (Zeiler & Fergus's projection)."""

    layer: str
    channel: int


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or in its own dtype when that is wider (float64 models keep their precision)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))
