"""Modified backward rules at every activation the forward pass runs: guided backprop and deconvnet.

A thread-local ``TorchFunctionMode`` intercepts ReLU-family calls whether they come from an ``nn.ReLU``
module (in-place or not, reused or not) or from a functional ``F.relu`` inside ``forward``, so the rule
holds at every ReLU actually executed (the trap module hooks fall into).

Rules (``g`` = gradient arriving from above, ``x`` = the activation's input):
- guided backprop (Springenberg et al. 2015): ReLU/ReLU6 pass ``g · [f'(x) > 0] · [g > 0]``; any other
  activation (SiLU, Hardswish, GELU, …) passes the positive part of its ordinary backward, ``ReLU(g · f'(x))``,
  which is the same rule for ReLU.
- deconvnet (Zeiler & Fergus 2014): every activation passes ``ReLU(g)`` whatever its input.
Max-pool backward routes to the recorded argmax ("switches"), as autograd already does.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

GUIDED = "guided"
DECONV = "deconv"


class _RuleFunction(torch.autograd.Function):
    """Forward: the activation as it is. Backward: the guided or deconvnet rule."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], rule: str,
                kind: str) -> torch.Tensor:
        with torch.no_grad():
            y = fn(x)
        ctx.rule, ctx.fn, ctx.piecewise = rule, fn, kind != "smooth"
        if rule == GUIDED:
            # ReLU and ReLU6 need only the mask where they pass gradient (slope 1); others need their input.
            if kind == "relu":
                ctx.save_for_backward(x > 0)
            elif kind == "relu6":
                ctx.save_for_backward((x > 0) & (x < 6))
            else:
                ctx.save_for_backward(x.detach().clone())
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        if ctx.rule == DECONV:
            return g.clamp(min=0), None, None, None
        (saved,) = ctx.saved_tensors
        if ctx.piecewise:
            return g.clamp(min=0) * saved, None, None, None
        with torch.enable_grad():
            xi = saved.detach().requires_grad_(True)
            (local,) = torch.autograd.grad(ctx.fn(xi), xi, g)
        return local.clamp(min=0), None, None, None


def _relu6_like(args: tuple, kwargs: dict) -> bool:
    low = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
    high = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
    return float(low) == 0.0 and float(high) == 6.0


_RELUS = {F.relu, torch.relu, torch.Tensor.relu, F.relu6}
_INPLACE = {F.relu_, torch.relu_, torch.Tensor.relu_, F.hardtanh_}
_SMOOTH = {F.silu, F.hardswish, F.gelu, F.elu, F.leaky_relu, F.mish, F.selu, F.celu, F.softplus}


class _RuleMode(TorchFunctionMode):
    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is F.hardtanh or func is F.hardtanh_:
            if not _relu6_like(args, kwargs):
                return func(*args, **kwargs)
            kind = "relu6"
        elif func is F.relu6:
            kind = "relu6"
        elif func in _RELUS or func in _INPLACE:
            kind = "relu"
        elif func in _SMOOTH:
            kind = "smooth"
        else:
            return func(*args, **kwargs)
        x = args[0]
        if not (isinstance(x, torch.Tensor) and torch.is_grad_enabled() and x.requires_grad):
            return func(*args, **kwargs)
        in_place = func in _INPLACE or bool(kwargs.pop("inplace", False))
        rest = args[1:]
        if func in _INPLACE:
            func = {F.relu_: F.relu, torch.relu_: F.relu, torch.Tensor.relu_: F.relu, F.hardtanh_: F.hardtanh}[func]
        elif len(rest) and isinstance(rest[-1], bool) and func in (F.relu, F.relu6, F.hardtanh, F.silu,
                                                                      F.hardswish, F.elu, F.leaky_relu, F.mish,
                                                                      F.selu, F.celu):
            in_place = in_place or rest[-1]
            rest = rest[:-1]  # positional `inplace` flag
        self.counts[getattr(func, "__name__", str(func))] += 1
        out = _RuleFunction.apply(x, lambda t: func(t, *rest, **kwargs), self.rule, kind)
        if in_place:  # callers of in-place forms may ignore the return value
            x.copy_(out)
            return x
        return out


@contextmanager
def backprop_rule(rule: str | None) -> Iterator[Counter[str]]:
    """Within the block, activations run in this thread record the ``rule``'s backward.

    Yields a counter of the activation functions intercepted (empty for ``rule=None``).
    """
    if rule is None:
        yield Counter()
        return
    mode = _RuleMode(rule)
    with mode:
        yield mode.counts
