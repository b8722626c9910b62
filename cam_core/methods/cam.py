"""CAM (Zhou et al. 2016): M = Σ_k W[c,k] · A_k, valid only when A feeds global-average-pool → one linear layer.

The head is not taken on trust: one forward records the last linear layer's input f and output, and
CAM runs only if that output is the model's scores and f is the spatial mean of A (or of ReLU(A)).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import CamError
from ..hygiene import submodules
from ..recorder import record
from .base import Function, MapResult, Target

_SUGGEST = "use Grad-CAM, which works on any layer and equals CAM up to scale where CAM applies"


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.detach(), b.detach()
    scale = float(b.abs().max()) + 1e-6
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4 * scale))


def run_cam(target: Target) -> MapResult:
    """CAM at ``target.layer``; raises ``CamError`` (suggesting Grad-CAM) when the head is not GAP → linear."""
    linears = [m for m in submodules(target.model) if isinstance(m, nn.Linear)]
    rec = record(target.model, target.x, [target.layer_name], keep_io=linears)
    activations, logits = rec.activations[target.layer_name], rec.logits
    if activations.dim() != 4:
        raise CamError(f"CAM needs a spatial layer; {target.layer_name!r} is not one — {_SUGGEST}")
    last = list(rec.io)[-1] if rec.io else None  # the last linear layer to run
    if last is None or not _same(rec.io[last][1].reshape(logits.shape), logits):
        raise CamError(f"CAM needs a model whose last layer is one linear layer; this one's is not — {_SUGGEST}")
    pooled = rec.io[last][0][0].reshape(logits.shape[0], -1)
    notes: list[str] = []
    if _same(activations.mean(dim=(2, 3)), pooled):
        features = activations
    elif _same(activations.clamp(min=0).mean(dim=(2, 3)), pooled):
        features = activations.clamp(min=0)
        notes.append(f"a ReLU sits between {target.layer_name!r} and the pooling; CAM uses ReLU(A)")
    else:
        raise CamError(f"CAM needs the target layer to feed global-average-pool → the final linear layer, "
                       f"which {target.layer_name!r} does not — {_SUGGEST}")
    cls = target.cls.resolved(logits)
    raw = torch.einsum("k,kuv->uv", last.weight.detach()[cls.index], features[0])
    target.report(1, 1)
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=logits, notes=notes, class_idx=cls.index)


CAM = Function(run_cam, needs_layer=True)
