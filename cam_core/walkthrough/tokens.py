"""What the walkthrough shows for a transformer: the patch grid, and the attention of one patch's token."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..adapters import TokenGrid, adapter_for
from ..errors import CamError
from ..hygiene import eval_mode
from ..methods.attention import AttentionWeights, attention_matrices, is_attention
from ..recorder import record


@dataclass(eq=False)
class TokenAttention:
    """Per attention block (``blocks``, in call order) its N=1 heads×T×T weights; ``grid`` patches, ``prefix``
    non-patch tokens (class, distillation) first, ``patch`` the size of one patch in input pixels, ``logits``
    the model's class scores for the image."""

    blocks: list[str]
    weights: list[torch.Tensor]
    grid: tuple[int, int]
    prefix: int
    patch: tuple[int, int]
    logits: torch.Tensor

    def of_patch(self, block: int, row: int, col: int, head: int | None = None) -> np.ndarray:
        """How much the token of patch (``row``, ``col``) attends to each patch (grid-shaped; mean over heads
        unless ``head`` is given). The prefix tokens' share is left out, so the map sums to at most 1."""
        if not 0 <= block < len(self.blocks):
            raise CamError(f"block {block} does not exist; this model has {len(self.blocks)} attention blocks")
        h, w = self.grid
        if not (0 <= row < h and 0 <= col < w):
            raise CamError(f"patch (row {row}, column {col}) is outside the {h}×{w} patch grid")
        a = self.weights[block]
        if head is not None and not 0 <= head < a.shape[0]:
            raise CamError(f"head {head} does not exist; this block has {a.shape[0]} heads")
        a = a[head] if head is not None else a.mean(dim=0)
        return a[self.prefix + row * w + col, self.prefix:].reshape(h, w).double().cpu().numpy()


def token_attention(model: nn.Module, x: torch.Tensor) -> TokenAttention:
    """Every attention block's weights for the first image of ``x``, from one forward pass (no autograd)."""
    x = x[:1]
    found = {m: n for n, m in model.named_modules() if is_attention(m)}
    if not found:
        raise CamError("this model has no attention layers; use the walkthrough's stages instead")
    asked = AttentionWeights(m for m in found if isinstance(m, nn.MultiheadAttention))
    with eval_mode(model), torch.no_grad():
        rec = record(model, x, keep_io=list(found), hooks=[asked])
        blocks, weights = [], []
        for module, (args, _out) in rec.io.items():
            tokens = args[0] if args else None
            if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3:
                raise CamError(f"{found[module]} attends within windows, not over the whole image")
            a = asked.found.get(module)
            weights.append((a if a is not None else attention_matrices(module, tokens))[0])
            blocks.append(found[module])
    first = rec.io[next(iter(rec.io))][0][0]
    grid = adapter_for(model, blocks[0], first, x)
    if not isinstance(grid, TokenGrid):
        raise CamError("this transformer's tokens do not form a patch grid")
    gh, gw = grid.grid
    return TokenAttention(blocks, weights, grid.grid, grid.prefix, (x.shape[-2] // gh, x.shape[-1] // gw),
                          rec.logits[0].detach().clone())
