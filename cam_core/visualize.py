"""Feature visualization: the image a channel (or a class) responds to most, by activation maximisation.

Lucid's recipe (Olah et al., "Feature Visualization", Distill 2017), rebuilt on the project's borrowing rules:

- **Fourier-space parameterisation.** The optimised variable is the image's 2-D real FFT spectrum, each frequency
  scaled by ``1/f`` (``decay=1``). Gradient steps then move all frequencies at about the same speed instead of
  favouring the high ones, so the result is not the high-frequency noise a pixel parameterisation gives.
- **Colour decorrelation.** The three spectrum channels are decorrelated colours: a fixed 3×3 matrix (the square
  root of ImageNet's colour covariance, Lucid's ``color_correlation_svd_sqrt``) maps them to RGB, followed by a
  sigmoid to keep pixels in (0, 1). Independent steps per channel then do not drift into one saturated hue.
- **Transformation robustness.** Each step sees the image padded by 1/16 of its side (grey), jittered by up to 1/28
  of it, scaled by 0.95–1.05 and rotated by ±10°, then jittered again by half as much: Lucid's ``standard_transforms``
  expressed as one random affine warp per step (one ``grid_sample`` instead of five tensor ops), with
  a seeded generator, so a seed reproduces the image exactly.

Optimiser: Adam, learning rate 0.05 (Lucid's). Objective: the mean of channel ``channel`` of ``layer`` over its
map, or the logit of ``class_idx``. The forward stops after ``layer`` for a channel objective (later layers are
never run) and gradients come from ``torch.autograd.grad`` with respect to the spectrum only: the model is
borrowed (``hygiene.eval_mode``, hooks of ``recorder.record`` removed on every path), no parameter ``.grad`` is
written, and ``requires_grad`` of the weights is turned off for the call (nothing needs their gradient; it saves
the weight-gradient half of the backward) and restored on every path.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import CamError
from .hygiene import eval_mode
from .recorder import record

Progress = Callable[[int, int], None]

DEFAULT_STEPS = 256
DEFAULT_SIZE = 128
DEFAULT_SEED = 0
LEARNING_RATE = 0.05
DECAY = 1.0

# Lucid's square root of ImageNet's colour covariance (``color_correlation_svd_sqrt``), columns normalised by the
# largest column norm as Lucid does, so a unit step in a decorrelated channel moves RGB by at most one unit.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                            [0.27, 0.00, -0.05],
                            [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


@dataclass
class Visualization:
    """``image``: H×W×3 uint8; ``curve``: the objective at every step (on the transformed image);
    ``activation``: the objective on the final, untransformed image at ``size``."""

    image: np.ndarray
    curve: list[float]
    activation: float
    layer: str | None
    channel: int | None
    class_idx: int | None
    steps: int
    size: int
    seed: int
    elapsed_s: float = 0.0
    settings: dict[str, float] = field(default_factory=dict)


@contextmanager
def _no_weight_grad(model: nn.Module) -> Iterator[None]:
    """Turn ``requires_grad`` off on every parameter for the call, restoring each flag on every exit path."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class _FourierImage:
    """An image parameterised by its scaled, colour-decorrelated real FFT spectrum (see the module docstring)."""

    def __init__(self, size: int, generator: torch.Generator, device: torch.device) -> None:
        fy = torch.fft.fftfreq(size, device=device)[:, None]
        fx = torch.fft.rfftfreq(size, device=device)[None, :]
        freqs = torch.sqrt(fx * fx + fy * fy)
        self.scale = (1.0 / torch.clamp(freqs, min=1.0 / size) ** DECAY) * size  # Lucid: 1/f^decay · √(h·w)
        init = torch.randn((1, 3, *freqs.shape, 2), generator=generator) * 0.01
        self.spectrum = init.to(device).requires_grad_(True)
        self.size = size

    def rgb(self) -> torch.Tensor:
        """1×3×size×size in (0, 1)."""
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / 4.0  # Lucid's constant
        flat = image.permute(0, 2, 3, 1) @ _COLOR.to(image.device).T
        return torch.sigmoid(flat.permute(0, 3, 1, 2))


def _random_warp(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Lucid's standard transforms as one random affine warp with grey padding (see the module docstring)."""
    size = image.shape[-1]
    pad = max(1, size // 16)
    padded = F.pad(image, (pad,) * 4, value=0.5)
    full = padded.shape[-1]

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    jitter = 2.0 * (size / 28.0) / full  # jitter in pixels → normalised [-1, 1] units
    scale = uniform(0.95, 1.05)
    angle = math.radians(uniform(-10.0, 10.0))
    tx = uniform(-jitter, jitter) + uniform(-jitter / 2, jitter / 2)
    ty = uniform(-jitter, jitter) + uniform(-jitter / 2, jitter / 2)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[[cos, -sin, tx], [sin, cos, ty]]], dtype=image.dtype, device=image.device)
    grid = F.affine_grid(theta, list(padded.shape), align_corners=False)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _objective(model: nn.Module, x: torch.Tensor, layer: str | None, channel: int | None,
               class_idx: int | None) -> torch.Tensor:
    """The scalar to maximise for the batch ``x`` (differentiable with respect to ``x``)."""
    if channel is None:
        rec = record(model, x, (), input_grad=True)
        logits = rec.logits
        if logits is None or logits.dim() != 2 or not 0 <= int(class_idx) < logits.shape[1]:  # type: ignore[arg-type]
            raise CamError(f"class {class_idx} is not an output of this model")
        return logits[:, int(class_idx)].mean()  # type: ignore[arg-type]
    rec = record(model, x, [layer], stop_after_layers=True, input_grad=True)  # type: ignore[list-item]
    fmap = rec.activations[layer]  # type: ignore[index]
    if fmap.dim() != 4:
        raise CamError(f"layer {layer!r} does not output a feature map; pick a convolutional layer")
    if not 0 <= channel < fmap.shape[1]:
        raise CamError(f"layer {layer!r} has {fmap.shape[1]} channels; channel {channel} is not one of them")
    return fmap[:, channel].mean()


def visualize(model: nn.Module, layer: str | None = None, channel: int | None = None,
              class_idx: int | None = None, *, steps: int = DEFAULT_STEPS, size: int = DEFAULT_SIZE,
              seed: int = DEFAULT_SEED, progress: Progress | None = None,
              mean: Sequence[float] = (0.485, 0.456, 0.406),
              std: Sequence[float] = (0.229, 0.224, 0.225)) -> Visualization:
    """The image that maximises channel ``channel`` of ``layer`` (or the logit of ``class_idx``); see the module
    docstring for the recipe. ``mean``/``std``: the model's input normalisation (0..1 scale).

    ``progress(done, steps)`` is called after every step. The same ``seed`` gives the same image.
    """
    if (channel is None) == (class_idx is None):
        raise CamError("give either a channel (with its layer) or a class to visualize, not both")
    if channel is not None and not layer:
        raise CamError("a channel needs its layer; list them with `cam-explorer layers`")
    if not 1 <= steps <= 10_000:
        raise CamError(f"steps must be between 1 and 10000, got {steps}")
    if not 16 <= size <= 1024:
        raise CamError(f"size must be between 16 and 1024 pixels, got {size}")
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    m = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(int(seed))
    param = _FourierImage(size, generator, device)
    optimizer = torch.optim.Adam([param.spectrum], lr=LEARNING_RATE)
    curve: list[float] = []
    start = time.perf_counter()
    with eval_mode(model), _no_weight_grad(model):
        for step in range(steps):
            x = (_random_warp(param.rgb(), generator) - m) / s
            with torch.enable_grad():
                value = _objective(model, x, layer, channel, class_idx)
            (grad,) = torch.autograd.grad(-value, [param.spectrum])
            optimizer.zero_grad(set_to_none=True)
            param.spectrum.grad = grad  # the spectrum is ours, not the model's
            optimizer.step()
            curve.append(float(value.detach()))
            if progress is not None:
                progress(step + 1, steps)
        with torch.no_grad():
            final = param.rgb()
            reached = float(_objective(model, (final - m) / s, layer, channel, class_idx).detach())
    image = (final[0].permute(1, 2, 0).clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
    return Visualization(image=image, curve=curve, activation=reached, layer=layer, channel=channel,
                         class_idx=class_idx, steps=steps, size=size, seed=int(seed),
                         elapsed_s=time.perf_counter() - start,
                         settings={"learning_rate": LEARNING_RATE, "decay": DECAY})
