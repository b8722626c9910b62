"""Transformer maps read from the attention matrices: attention rollout and gradient-weighted rollout.

torchvision's ``EncoderBlock`` calls its ``nn.MultiheadAttention`` with ``need_weights=False``, so the
attention matrices never leave the module. Rollout asks each ``nn.MultiheadAttention`` for its per-head weights
for the one recorded call (a thread-scoped pre-hook sets ``need_weights``; the block still gets what it asked
for). Otherwise — timm-style modules (a fused ``qkv`` Linear with ``num_heads``, e.g. DeiT), and transformer
attribution, which needs q, k and v anyway — they are recomputed from the module's own query/key projections on
its input: ``A_h = softmax(q_h k_hᵀ / √d)`` per head ``h``. No module is patched.

- **Attention rollout** (Abnar & Zuidema, ACL 2020): per layer ``Â = (fuse_heads(A) + I) / 2`` with rows
  renormalised, ``R = Â_L ⋯ Â_1``; the map is the class token's row of ``R`` over the patch tokens.
  ``discard_ratio`` first zeroes that fraction of the smallest fused entries (ties by flat index), as in
  the widely used vit-explain code; 0 is the paper's rollout.
- **Transformer attribution**, gradient × attention rollout (Chefer, Gur & Wolf, CVPR 2021; the rule of
  their ICCV 2021 "Generic Attention-model Explainability" without LRP relevances): per layer
  ``Ā = mean_h (∇A_h ⊙ A_h)⁺``, ``R ← R + Ā R`` from ``R = I``; map = class token's row over the patches.
  ``∇A = ∂y^c/∂A`` is exact by the chain rule through the module's output projection: with ``g`` the
  gradient at the attention module's output, ``∂y^c/∂A_h = (g W_o)_h V_hᵀ``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..adapters import TokenGrid, adapter_for
from ..errors import CamError
from ..recorder import record
from .base import Function, MapResult, Target


class AttentionWeights:
    """A ``record(..., hooks=[...])`` installer asking each ``nn.MultiheadAttention`` in ``modules`` for its
    per-head weights for that call only (torchvision's ViT calls them with ``need_weights=False``); the caller
    above still gets what it asked for. ``found[module]``: the N×heads×T×T weights of its last call (absent
    when the module was called with positional options)."""

    def __init__(self, modules: Iterable[nn.MultiheadAttention]) -> None:
        self.modules = list(modules)
        self.found: dict[nn.Module, torch.Tensor] = {}
        self._asked: dict[nn.Module, tuple[bool, bool]] = {}

    def __call__(self, add: Callable[..., None]) -> None:
        for module in self.modules:
            add(module, self._ask, kind="forward_pre_kwargs")
            add(module, self._take)

    def _ask(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if len(args) > 3:  # options given by position: leave the call alone
            return None
        self._asked[module] = (bool(kwargs.get("need_weights", True)),
                               bool(kwargs.get("average_attn_weights", True)))
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def _take(self, module: nn.Module, _inputs: tuple, output: Any) -> Any:
        wanted = self._asked.pop(module, None)
        if wanted is None or not isinstance(output, tuple) or output[1] is None:
            return None
        out, weights = output
        self.found[module] = weights.detach()
        need, average = wanted
        return out, (None if not need else weights.mean(dim=1) if average else weights)


FUSIONS = ("mean", "max", "min")
_NOT_A_VIT = "attention rollout and transformer attribution need a vision transformer with global attention (ViT, DeiT)"


def is_attention(module: nn.Module) -> bool:
    """An attention module whose matrices can be recomputed: ``nn.MultiheadAttention`` or timm-style ``qkv``."""
    return isinstance(module, nn.MultiheadAttention) or (
        isinstance(getattr(module, "qkv", None), nn.Linear) and isinstance(getattr(module, "num_heads", None), int))


def has_attention(model: nn.Module) -> bool:
    """True for a model with attention layers (ViT, DeiT, Swin); a CNN has none."""
    return any(is_attention(m) for m in model.modules())


def _projections(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None, int, float, nn.Linear]:
    """(packed q/k/v weight, its bias, heads, scale, output projection) of an attention module."""
    if isinstance(module, nn.MultiheadAttention):
        if not module._qkv_same_embed_dim or module.bias_k is not None or module.add_zero_attn:
            raise CamError("this attention layer uses separate key/value sizes or extra key biases; "
                           "its attention cannot be recomputed")
        if not module.batch_first:
            raise CamError("this transformer's attention is sequence-first; only batch-first models are supported")
        heads = module.num_heads
        return (module.in_proj_weight, module.in_proj_bias, heads, (module.embed_dim // heads) ** -0.5,
                module.out_proj)
    norm = getattr(module, "norm", None)
    if (norm is not None and not isinstance(norm, nn.Identity)) or getattr(module, "gate", None) is not None:
        raise CamError("this attention layer normalises or gates its output before projecting it; not supported")
    heads = module.num_heads
    dim = module.qkv.out_features // 3
    return module.qkv.weight, module.qkv.bias, heads, float(getattr(module, "scale", (dim // heads) ** -0.5)), \
        module.proj


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    n, tokens, dim = t.shape
    return t.reshape(n, tokens, heads, dim // heads).transpose(1, 2)  # N×heads×T×d


def attention_matrices(module: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """N×heads×T×T attention of ``module`` on its input ``tokens`` (N×T×D), from its own q, k projections."""
    weight, bias, heads, scale, _ = _projections(module)
    dim = weight.shape[0] // 3
    qk = F.linear(tokens, weight[:2 * dim], None if bias is None else bias[:2 * dim])
    q, k = _heads(qk[..., :dim], heads), _heads(qk[..., dim:], heads)
    if not isinstance(module, nn.MultiheadAttention):  # timm: optional per-head q/k norms
        q, k = getattr(module, "q_norm", nn.Identity())(q), getattr(module, "k_norm", nn.Identity())(k)
    return torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)


def attention_gradient(module: nn.Module, tokens: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """∂y/∂A (N×heads×T×T) from the gradient ``grad_out`` at the module's output: ``(g W_o)_h V_hᵀ``."""
    weight, bias, heads, _, out_proj = _projections(module)
    dim = weight.shape[0] // 3
    v = _heads(F.linear(tokens, weight[2 * dim:], None if bias is None else bias[2 * dim:]), heads)
    g = _heads(grad_out @ out_proj.weight, heads)
    return g @ v.transpose(-2, -1)


@dataclass
class _Call:
    name: str
    module: nn.Module
    tokens: torch.Tensor
    output: torch.Tensor | None = None
    fused: torch.Tensor | None = None


def _attention_modules(model: nn.Module) -> dict[nn.Module, str]:
    found = {module: name for name, module in model.named_modules() if is_attention(module)}
    if not found:
        raise CamError(f"this model has no attention layers: {_NOT_A_VIT}")
    return found


def _token_input(call: _Call, args: tuple) -> torch.Tensor:
    tokens = args[0] if args else None
    if not isinstance(tokens, torch.Tensor):
        raise CamError(f"attention layer {call.name!r} was called without a token tensor")
    if isinstance(call.module, nn.MultiheadAttention) and not (len(args) >= 3 and args[1] is tokens
                                                               and args[2] is tokens):
        raise CamError(f"attention layer {call.name!r} is cross-attention; rollout needs self-attention")
    if tokens.dim() != 3:
        raise CamError(f"{call.name!r} attends within windows (Swin-style), so there is no attention over the "
                       f"whole image to roll out; use Grad-CAM — {_NOT_A_VIT}")
    return tokens


def _grid(model: nn.Module, calls: list[_Call], x: torch.Tensor) -> TokenGrid:
    if not calls:
        raise CamError(f"no attention layer ran in the model's forward pass: {_NOT_A_VIT}")
    grid = adapter_for(model, calls[0].name, calls[0].tokens, x)
    if not isinstance(grid, TokenGrid) or grid.prefix == 0:
        raise CamError(f"this transformer has no class token whose attention could be read: {_NOT_A_VIT}")
    return grid


def _discard(fused: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the ``ratio`` fraction of smallest entries (stable: ties by flat index)."""
    count = int(ratio * fused.numel())
    if count <= 0:
        return fused
    flat = fused.flatten().clone()
    flat[torch.sort(flat, stable=True).indices[:count]] = 0
    return flat.view_as(fused)


def fuse_heads(attention: torch.Tensor, how: str) -> torch.Tensor:
    """heads×T×T → T×T by mean, max or min over the heads."""
    if how == "mean":
        return attention.mean(dim=0)
    if how == "max":
        return attention.amax(dim=0)
    if how == "min":
        return attention.amin(dim=0)
    raise CamError(f"head fusion must be one of {', '.join(FUSIONS)}, got {how!r}")


def rollout(fused: list[torch.Tensor], discard_ratio: float = 0.0) -> torch.Tensor:
    """R = Â_L ⋯ Â_1 with Â = (discard(A) + I)/2 rows renormalised (``fused``: T×T per layer, first layer first)."""
    result = None
    for a in fused:
        a = _discard(a, discard_ratio)
        a = (a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)) / 2
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    return result


def run_attention_rollout(target: Target, head_fusion: str, discard_ratio: float) -> MapResult:
    """Attention rollout of ``target.model`` on ``target.x`` (one forward without autograd)."""
    if not 0.0 <= discard_ratio < 1.0:
        raise CamError(f"discard ratio must be in [0, 1), got {discard_ratio}")
    model, x = target.model, target.x
    names = _attention_modules(model)
    # nn.MultiheadAttention hands over the weights its own forward computed (no second q·kᵀ); others recompute
    asked = AttentionWeights(m for m in names if isinstance(m, nn.MultiheadAttention))
    rec = record(model, x, keep_io=list(names), hooks=[asked])
    calls = []
    with torch.no_grad():
        for module, (args, _output) in rec.io.items():
            call = _Call(names[module], module, torch.empty(0))
            call.tokens = _token_input(call, args)
            weights = asked.found.get(module)
            if weights is None:
                weights = attention_matrices(module, call.tokens[:1])
            call.fused = fuse_heads(weights[0], head_fusion)
            calls.append(call)
        grid = _grid(model, calls, x)
        rolled = rollout([c.fused for c in calls], discard_ratio)
    logits = rec.logits
    cls = target.cls.resolved(logits)
    raw = rolled[0, grid.prefix:].reshape(grid.grid)
    target.report(1, 1)
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=logits, class_idx=cls.index,
                     notes=["attention rollout does not depend on the class: every class gets this map"],
                     extras={"grid": grid.grid, "layers": len(calls)})


def run_transformer_attribution(target: Target) -> MapResult:
    """Gradient × attention rollout for ``target``'s class (one forward with autograd, one backward)."""
    model, x = target.model, target.x
    names = _attention_modules(model)
    leaf = x.detach().requires_grad_(True)  # the graph starts at the input, whatever the weights' requires_grad
    rec = record(model, leaf, keep_io=list(names), input_grad=True)
    calls = []
    for module, (args, output) in rec.io.items():
        call = _Call(names[module], module, torch.empty(0))
        call.tokens = _token_input(call, args)
        call.output = output[0] if isinstance(output, tuple) else output
        calls.append(call)
    logits = rec.logits
    grid = _grid(model, calls, x)
    cls = target.cls.resolved(logits.detach())
    with torch.enable_grad():
        score = cls.score(logits).sum()
    outputs = [c.output for c in calls]
    if any(o is None or not o.requires_grad for o in outputs):
        raise CamError("an attention layer's output is not connected to the class score; cannot weight it")
    grads = torch.autograd.grad(score, outputs, allow_unused=True)
    with torch.no_grad():
        tokens = calls[0].tokens.shape[1]
        relevance = torch.eye(tokens, dtype=logits.dtype, device=logits.device)
        for call, grad in zip(calls, grads):
            inputs = call.tokens[:1].detach()
            attention = attention_matrices(call.module, inputs)[0]
            gradient = (torch.zeros_like(attention) if grad is None
                        else attention_gradient(call.module, inputs, grad[:1])[0])
            weighted = (gradient * attention).clamp(min=0).mean(dim=0)
            relevance = relevance + weighted @ relevance
    raw = relevance[0, grid.prefix:].reshape(grid.grid)
    target.report(1, 1)
    return MapResult(raw=raw, positive=raw.clamp(min=0), logits=logits.detach(), class_idx=cls.index,
                     extras={"grid": grid.grid, "layers": len(calls)})


ROLLOUT = Function(run_attention_rollout)
TRANSFORMER_ATTRIBUTION = Function(run_transformer_attribution)
