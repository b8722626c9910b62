"""What happens at one position of one stage, with the real numbers: a convolution's weighted sum, a batch norm's
affine map, an activation function, a pooling window, a linear unit's weighted sum.

Every step carries ``recorded``, the model's own output at that position, beside the value worked out here from
the stage's recorded input and the module's parameters (in float64); a step whose two values disagree beyond
float32 rounding is refused with a ``CamError`` rather than shown.

Batch norm, two ways (``fold_bn``): unfolded, a convolution's sum equals the convolution's output and the norm is
its own step, ``(z − μ)/√(σ² + ε)·γ + β``; folded, the kernel and bias are multiplied through by ``γ/√(σ² + ε)``
(bias ``(b − μ)·γ/√(σ² + ε) + β``), as deployed models do, and the sum equals the norm's output.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CamError
from ..features import rgb_tiles
from .field import sliding_geometry
from .padding import conv_padding
from .recording import Stage, Walkthrough, check_position, input_rgb

_TOLERANCE = 1e-4  # relative to the sum of |terms|: float32 accumulation in the model, float64 here


@dataclass(frozen=True)
class Term:
    """One product of a weighted sum: ``weight × value``, ``where`` it reads from (e.g. "channel 3, row 0, col 2")."""

    where: str
    weight: float
    value: float

    @property
    def product(self) -> float:
        return self.weight * self.value


@dataclass(frozen=True)
class WeightedSum:
    """``total = Σ terms + rest + bias``: the ``terms`` with the largest |product| first, the other ``rest_count``
    products summed into ``rest``; ``recorded`` is the model's own value there."""

    terms: tuple[Term, ...]
    rest: float
    rest_count: int
    bias: float
    total: float
    recorded: float

    def text(self, digits: int = 4) -> str:
        """The sum written out, e.g. ``0.51 × 1.2 + (−0.3) × 0.8 + [24 more terms: 0.07] + bias 0.1 = 0.47``."""
        def num(v: float) -> str:
            s = f"{v:.{digits}g}"
            return f"({s})" if v < 0 else s

        parts = [f"{num(t.weight)} × {num(t.value)}" for t in self.terms]
        if self.rest_count:
            parts.append(f"[{self.rest_count} more terms: {num(self.rest)}]")
        parts.append(f"bias {num(self.bias)}")
        return " + ".join(parts) + f" = {self.total:.{digits}g}"


def weighted_sum(weights: np.ndarray, values: np.ndarray, where: list[str], bias: float, recorded: float,
                 top: int) -> WeightedSum:
    """Write ``Σ weights·values + bias`` with the ``top`` largest products; refuse it unless it equals ``recorded``."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    products = w * v
    order = np.argsort(-np.abs(products), kind="stable")
    shown, others = order[:top], order[top:]
    total = float(products.sum() + bias)
    scale = 1.0 + float(np.abs(products).sum()) + abs(bias)
    if abs(total - recorded) > _TOLERANCE * scale:
        raise CamError(f"the written-out sum {total:.6g} does not match the model's value {recorded:.6g}; "
                       f"this layer computes something the walkthrough does not know")
    return WeightedSum(terms=tuple(Term(where[i], float(w[i]), float(v[i])) for i in shown),
                       rest=float(products[others].sum()), rest_count=len(others), bias=float(bias), total=total,
                       recorded=float(recorded))


@dataclass(frozen=True)
class NormAffine:
    """A batch norm in eval mode per channel: ``y = z·scale + shift`` (``scale = γ/√(σ² + ε)``, ``shift = β − μ·scale``)."""

    mean: np.ndarray
    var: np.ndarray
    eps: float
    gamma: np.ndarray
    beta: np.ndarray

    @property
    def scale(self) -> np.ndarray:
        return self.gamma / np.sqrt(self.var + self.eps)

    @property
    def shift(self) -> np.ndarray:
        return self.beta - self.mean * self.scale


def norm_affine(norm: nn.Module) -> NormAffine:
    """The running statistics and affine parameters of a batch norm (refused when it uses the batch's statistics)."""
    if norm.running_mean is None or norm.running_var is None:
        raise CamError(f"{type(norm).__name__} normalises with each batch's own statistics; it has no fixed formula")
    c = norm.running_mean.numel()
    as64 = lambda t, fill: (np.full(c, fill) if t is None else t.detach().double().cpu().numpy())  # noqa: E731
    return NormAffine(as64(norm.running_mean, 0.0), as64(norm.running_var, 1.0), float(norm.eps),
                      as64(norm.weight, 1.0), as64(norm.bias, 0.0))


@dataclass(frozen=True)
class ConvStep:
    """A convolution at (channel, row, col): the ``patch`` it reads (Cg×kh×kw, padding included), the ``kernel``
    (folded with ``folded``'s batch norm when that is set), the input ``channels`` the group reads, the ``sum``."""

    stage: int
    channel: int
    row: int
    col: int
    patch: np.ndarray
    kernel: np.ndarray
    channels: tuple[int, ...]
    sum: WeightedSum
    folded: str | None
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @property
    def reads_rgb(self) -> bool:
        """True on a first layer: the patch is the photo's pixels and the kernel can be drawn as an RGB tile."""
        return len(self.channels) == 3 and self.kernel.shape[0] == 3

    def patch_rgb(self, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
        """A first layer's patch as the photo's pixels (kh×kw×3 uint8, normalisation undone; padding is the
        model's zero, so it shows as the mean colour)."""
        if not self.reads_rgb:
            raise CamError("only a first-layer patch (three input channels: the photo's RGB) is a photo patch")
        return input_rgb(torch.from_numpy(self.patch)[None], mean, std)

    def strongest_input(self) -> int:
        """Index into ``channels`` of the input channel whose products add up to the most (in absolute value)."""
        return int(np.abs(self.kernel * self.patch).reshape(len(self.channels), -1).sum(axis=1).argmax())

    def kernel_rgb(self) -> np.ndarray:
        """The kernel as a kh×kw×3 tile in [0, 1] (min–max, as the Layers page draws first-layer filters)."""
        if not self.reads_rgb:
            raise CamError("only a first-layer kernel (three input channels: the photo's RGB) is an RGB tile")
        return rgb_tiles(torch.from_numpy(self.kernel)[None])[0]


def conv_step(wt: Walkthrough, index: int, channel: int, row: int, col: int, *, fold_bn: bool = False,
              top: int = 8) -> ConvStep:
    """Convolution stage ``index`` at one output position, its sum written out (see the module docstring)."""
    stage = wt.stage(index)
    if stage.kind != "conv":
        raise CamError(f"stage {index + 1} ({stage.name}) is a {stage.kind}, not a convolution")
    check_position(stage, channel, row, col)
    conv: nn.Conv2d = stage.module
    (top_pad, bottom, left, right), mode = conv_padding(conv, tuple(stage.input.shape[-2:]))
    padded = F.pad(stage.input[None].double(), (left, right, top_pad, bottom), mode=mode)[0]
    (kh, kw), (sh, sw), _pad, (dh, dw) = sliding_geometry(conv, tuple(stage.input.shape[-2:]))
    per_group = conv.in_channels // conv.groups
    group = channel // (conv.out_channels // conv.groups)
    channels = tuple(range(group * per_group, (group + 1) * per_group))
    rows = row * sh + np.arange(kh) * dh
    cols = col * sw + np.arange(kw) * dw
    patch = padded[channels[0]:channels[-1] + 1][:, rows][:, :, cols].cpu().numpy()
    kernel = conv.weight[channel].detach().double().cpu().numpy()
    bias = float(conv.bias[channel].detach()) if conv.bias is not None else 0.0
    recorded = float(stage.output[channel, row, col])
    folded = None
    norm = wt.consumer(index, "norm") if fold_bn else None
    if norm is not None:
        affine = norm_affine(norm.module)
        kernel = kernel * affine.scale[channel]
        bias = bias * affine.scale[channel] + affine.shift[channel]
        recorded, folded = float(norm.output[channel, row, col]), norm.name
    where = [f"channel {c}, row {u}, col {v}" for c in channels for u in range(kh) for v in range(kw)]
    total = weighted_sum(kernel, patch, where, bias, recorded, top)
    return ConvStep(index, channel, row, col, patch, kernel, channels, total, folded, (sh, sw), (dh, dw), conv.groups)


@dataclass(frozen=True)
class NormStep:
    """A batch norm at one position: ``value = (z − mean)/√(var + eps)·gamma + beta``; ``recorded`` the model's."""

    stage: int
    z: float
    mean: float
    var: float
    eps: float
    gamma: float
    beta: float
    value: float
    recorded: float

    def text(self, digits: int = 4) -> str:
        g = lambda v: f"{v:.{digits}g}"  # noqa: E731
        return (f"({g(self.z)} − {g(self.mean)}) / √({g(self.var)} + {g(self.eps)}) × {g(self.gamma)} + "
                f"{g(self.beta)} = {g(self.value)}")


def norm_step(wt: Walkthrough, index: int, channel: int, row: int, col: int) -> NormStep:
    """Batch-norm stage ``index`` at one position, with its running statistics."""
    stage = wt.stage(index)
    if stage.kind != "norm":
        raise CamError(f"stage {index + 1} ({stage.name}) is a {stage.kind}, not a batch norm")
    check_position(stage, channel, row, col)
    a = norm_affine(stage.module)
    z = float(stage.input[channel, row, col])
    value = (z - a.mean[channel]) / np.sqrt(a.var[channel] + a.eps) * a.gamma[channel] + a.beta[channel]
    recorded = float(stage.output[channel, row, col])
    if abs(value - recorded) > _TOLERANCE * (1 + abs(value) + abs(z) * abs(a.scale[channel])):
        raise CamError(f"{stage.name}'s output {recorded:.6g} is not its batch-norm formula's {value:.6g}")
    return NormStep(index, z, float(a.mean[channel]), float(a.var[channel]), a.eps, float(a.gamma[channel]),
                    float(a.beta[channel]), float(value), recorded)


@dataclass(frozen=True)
class ActivationStep:
    """An activation function at one position: ``x`` in, ``y`` out (the model's), the curve ``xs → ys`` to plot."""

    stage: int
    function: str
    x: float
    y: float
    xs: np.ndarray
    ys: np.ndarray


def _apply_elementwise(module: nn.Module, values: torch.Tensor, like: torch.Tensor, channel: int) -> torch.Tensor:
    """``module`` applied to each of ``values`` as if it stood at ``channel`` of a tensor shaped like ``like``."""
    shape = (values.numel(),) + tuple(like.shape[:1]) + (1,) * (like.dim() - 1)
    batch = values.view(-1, *([1] * (len(shape) - 1))).expand(shape).to(like.dtype).clone()
    with torch.no_grad():
        out = module(batch)
    return out.reshape(values.numel(), like.shape[0], -1)[:, channel, 0]


def activation_step(wt: Walkthrough, index: int, channel: int, row: int | None = None, col: int | None = None,
                    points: int = 201) -> ActivationStep:
    """Activation stage ``index`` at a map position (or vector unit ``channel``), and its function to plot."""
    stage = wt.stage(index)
    if stage.kind != "activation":
        raise CamError(f"stage {index + 1} ({stage.name}) is a {stage.kind}, not an activation")
    at = _position(stage, channel, row, col)
    x, y = float(stage.input[at]), float(stage.output[at])
    low = min(float(stage.input.min()), -1.0, x)
    high = max(float(stage.input.max()), 1.0, x)
    xs = torch.linspace(low, high, points, dtype=torch.float64)
    ys = _apply_elementwise(stage.module, torch.cat([xs, torch.tensor([x], dtype=torch.float64)]), stage.input, channel)
    if abs(float(ys[-1]) - y) > _TOLERANCE * (1 + abs(y)):
        raise CamError(f"{stage.name} is not an element-wise function of its input; its curve cannot be drawn")
    return ActivationStep(index, type(stage.module).__name__, x, y, xs.numpy(), ys[:-1].double().numpy())


def _position(stage: Stage, channel: int, row: int | None, col: int | None) -> tuple[int, ...]:
    if stage.is_map:
        if row is None or col is None:
            raise CamError(f"{stage.name} outputs a map; give a row and a column")
        check_position(stage, channel, row, col)
        return channel, row, col
    if not 0 <= channel < stage.output.numel():
        raise CamError(f"unit {channel} is outside {stage.name}'s {stage.output.numel()} outputs")
    return (channel,)


@dataclass(frozen=True)
class PoolStep:
    """A pooling window at one output position: ``values`` (the input map's window, NaN where it lies on
    padding), its ``rows``/``cols`` on the input map, ``op`` ("max" or "mean"), ``divisor``, the ``result``."""

    stage: int
    op: str
    values: np.ndarray
    rows: tuple[int, int]
    cols: tuple[int, int]
    divisor: int
    result: float
    recorded: float


def _window(module: nn.Module, n: int, out: int, o: int, axis: int, geometry) -> np.ndarray:
    """Input indices (may lie on padding: < 0 or ≥ n) the window of output ``o`` reads along one axis."""
    if geometry is None:  # adaptive
        return np.arange((o * n) // out, -(-((o + 1) * n) // out))
    kernel, stride, pad, dilation = geometry
    return o * stride[axis] - pad[axis] + np.arange(kernel[axis]) * dilation[axis]


def pooling_step(wt: Walkthrough, index: int, channel: int, row: int, col: int) -> PoolStep:
    """Pooling stage ``index`` at one output position, the window written out."""
    stage = wt.stage(index)
    if stage.kind != "pooling":
        raise CamError(f"stage {index + 1} ({stage.name}) is a {stage.kind}, not a pooling")
    check_position(stage, channel, row, col)
    module = stage.module
    _, h, w = stage.input.shape
    _, oh, ow = stage.output.shape
    geometry = sliding_geometry(module, (h, w))
    rows, cols = _window(module, h, oh, row, 0, geometry), _window(module, w, ow, col, 1, geometry)
    plane = stage.input[channel].double().cpu().numpy()
    inside_r, inside_c = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    values = np.full((rows.size, cols.size), np.nan)
    values[np.ix_(inside_r, inside_c)] = plane[np.ix_(rows[inside_r], cols[inside_c])]
    real = values[~np.isnan(values)]
    if isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
        op, divisor, result = "max", 1, float(real.max())
    else:
        op = "mean"
        divisor = real.size
        if isinstance(module, nn.AvgPool2d):
            if module.divisor_override:
                divisor = int(module.divisor_override)
            elif module.count_include_pad:  # padded cells count, cells past the padded edge (ceil_mode) do not
                pad = geometry[2]
                in_r = (rows >= -pad[0]) & (rows < h + pad[0])
                in_c = (cols >= -pad[1]) & (cols < w + pad[1])
                divisor = int(in_r.sum() * in_c.sum())
        result = float(real.sum() / divisor)
    recorded = float(stage.output[channel, row, col])
    if abs(result - recorded) > _TOLERANCE * (1 + float(np.abs(real).max())):
        raise CamError(f"{stage.name}'s output {recorded:.6g} is not its window's {op} {result:.6g}")
    return PoolStep(index, op, values, (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1])), divisor,
                    result, recorded)


def linear_step(wt: Walkthrough, index: int, unit: int, *, top: int = 8) -> WeightedSum:
    """Linear stage ``index``'s output ``unit`` (a class's logit on the classifier) as its weighted sum."""
    stage = wt.stage(index)
    if stage.kind != "linear":
        raise CamError(f"stage {index + 1} ({stage.name}) is a {stage.kind}, not a linear layer")
    if stage.input.dim() != 1:
        raise CamError(f"{stage.name} reads a {tuple(stage.input.shape)} tensor per image, not a vector")
    linear: nn.Linear = stage.module
    if not 0 <= unit < linear.out_features:
        raise CamError(f"unit {unit} is outside {stage.name}'s {linear.out_features} outputs")
    weights = linear.weight[unit].detach().double().cpu().numpy()
    bias = float(linear.bias[unit].detach()) if linear.bias is not None else 0.0
    where = [f"feature {j}" for j in range(weights.size)]
    return weighted_sum(weights, stage.input.double().cpu().numpy(), where, bias, float(stage.output[unit]), top)


def classifier(wt: Walkthrough) -> Stage:
    """The last linear stage: the one whose outputs are the logits."""
    linear = [s for s in wt.stages if s.kind == "linear" and s.output.numel() == wt.logits.numel()]
    if not linear:
        raise CamError("this model's class scores do not come from a linear layer")
    return linear[-1]
