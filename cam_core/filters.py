"""Image filters shared by methods and metrics, on tensors in the model's space."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, kernel: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """N×C×H×W blurred per channel by a separable Gaussian (``kernel`` taps, std ``sigma``), edges replicated.

    Kernel 11 and σ = 5 are the RISE code's insertion baseline.
    """
    half = kernel // 2
    taps = torch.arange(kernel, dtype=torch.float64, device=x.device) - half
    weights = torch.exp(-0.5 * (taps / sigma) ** 2)
    weights = (weights / weights.sum()).to(x.dtype)
    channels = x.shape[1]
    padded = F.pad(x, (half, half, half, half), mode="replicate")
    rows = F.conv2d(padded, weights.view(1, 1, 1, -1).expand(channels, 1, 1, kernel), groups=channels)
    return F.conv2d(rows, weights.view(1, 1, -1, 1).expand(channels, 1, kernel, 1), groups=channels)
