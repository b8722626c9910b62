"""torchvision's ViT taking the whole uploaded image: position embeddings interpolated to the input's patch grid.

torchvision's ``VisionTransformer`` asserts ``H == W == image_size`` (224), but the app feeds each model the
whole image with its aspect ratio kept (e.g. 224×352). ``AnySizeViT`` is the same architecture with the same
state-dict keys (torchvision's weight files load into it unchanged); for an input whose patch grid differs
from the trained one, the patch part of the position embeddings is resized bicubically (align_corners=False)
to that grid — what DINO and timm's ``dynamic_img_size`` do. At the trained size nothing is interpolated, so
its outputs equal torchvision's exactly. A 320×224 input has a 20×14 grid of 16-pixel patches.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.vision_transformer import Encoder, VisionTransformer


class AnySizeEncoder(Encoder):
    """torchvision's ``Encoder``; ``forward(tokens, grid)`` adds position embeddings resized to ``grid``."""

    def forward(self, input: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:  # noqa: A002
        return self.ln(self.layers(self.dropout(input + self.position_embedding(grid))))

    def position_embedding(self, grid: tuple[int, int] | None) -> torch.Tensor:
        """1×(1 + h·w)×D: the class token's embedding, then the patch embeddings resized to ``grid``."""
        pos = self.pos_embedding
        side = int(round((pos.shape[1] - 1) ** 0.5))
        if grid is None or tuple(grid) == (side, side):
            return pos
        patches = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=tuple(grid), mode="bicubic", align_corners=False)
        return torch.cat([pos[:, :1], patches.flatten(2).transpose(1, 2)], dim=1)


class AnySizeViT(VisionTransformer):
    """``VisionTransformer`` accepting any input at least one patch high and wide (see the module docstring)."""

    any_input_size = True  # read by ``cam_core.adapters.check_input``

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.encoder.__class__ = AnySizeEncoder  # same parameters and buffers, only forward() differs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        grid = (height // self.patch_size, width // self.patch_size)
        if min(grid) < 1:
            raise ValueError(f"input {height}×{width} is smaller than one {self.patch_size}-pixel patch")
        tokens = self.conv_proj(x).reshape(n, self.hidden_dim, grid[0] * grid[1]).permute(0, 2, 1)
        tokens = torch.cat([self.class_token.expand(n, -1, -1), tokens], dim=1)
        tokens = self.encoder(tokens, grid)
        return self.heads(tokens[:, 0])
