"""CAM (Zhou et al. 2016): M = Σ_k W[c,k] · A_k, valid only when A feeds global-average-pool → one linear layer.

The head is not taken on trust: one forward records the last linear layer's input f and output, and
CAM runs only if that output is the model's scores and f is the spatial mean of A (or of ReLU(A)).
"""
from __future__ import annotations

import torch
from torch import nn

from ..adapters import adapter_for
from ..capture import logits_of
from ..errors import CamError
from ..hygiene import grad_mode, submodules, thread_hooks
from .base import MapResult, Target

_SUGGEST = "use Grad-CAM, which works on any layer and equals CAM up to scale where CAM applies"


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.detach(), b.detach()
    scale = float(b.abs().max()) + 1e-6
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4 * scale))


def run_cam(target: Target) -> MapResult:
    """CAM at ``target.layer``; raises ``CamError`` (suggesting Grad-CAM) when the head is not GAP → linear."""
    kept: dict[str, torch.Tensor] = {}
    linears: list[tuple[nn.Linear, torch.Tensor, torch.Tensor]] = []

    def keep_activation(_m: nn.Module, _i: object, output: torch.Tensor) -> None:
        if isinstance(output, torch.Tensor) and output.dim() in (3, 4):  # tokens / channels-last → N×C×h×w
            adapter = adapter_for(target.model, target.layer_name, output, target.x)
            kept["A"] = output.clone() if adapter is None else adapter.to_map(output)
        else:
            kept["A"] = output.clone() if isinstance(output, torch.Tensor) else output

    def keep_linear(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        linears.append((module, inputs[0], output))

    with grad_mode(False), thread_hooks() as add:
        add(target.layer, keep_activation)
        for module in submodules(target.model):
            if isinstance(module, nn.Linear):
                add(module, keep_linear)
        logits = logits_of(target.model(target.x))
    activations = kept.get("A")
    if not isinstance(activations, torch.Tensor) or activations.dim() != 4:
        raise CamError(f"CAM needs a spatial layer; {target.layer_name!r} is not one — {_SUGGEST}")
    if not linears or not _same(linears[-1][2].reshape(logits.shape), logits):
        raise CamError(f"CAM needs a model whose last layer is one linear layer; this one's is not — {_SUGGEST}")
    fc, pooled, _ = linears[-1]
    pooled = pooled.reshape(pooled.shape[0], -1)
    notes: list[str] = []
    if _same(activations.mean(dim=(2, 3)), pooled):
        features = activations
    elif _same(activations.clamp(min=0).mean(dim=(2, 3)), pooled):
        features = activations.clamp(min=0)
        notes.append(f"a ReLU sits between {target.layer_name!r} and the pooling; CAM uses ReLU(A)")
    else:
        raise CamError(f"CAM needs the target layer to feed global-average-pool → the final linear layer, "
                       f"which {target.layer_name!r} does not — {_SUGGEST}")
    weight = fc.weight.detach()[int(target.classes_for(logits))]
    raw = torch.einsum("k,kuv->uv", weight, features[0])
    target.report(1, 1)
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=logits, notes=notes)
