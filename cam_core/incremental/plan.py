"""Read a network as a graph (torch.fx) and sort its operations by how a local change flows through them.

Kinds of step:
  ``pointwise``  — per-position ops (BN in eval, ReLU-like activations, Identity, dropout in eval): the
                   changed region stays where it is, the op runs on the region only;
  ``slide``      — convolutions and max/avg pooling with zero (−∞ for max) padding: the region grows by
                   the kernel; recomputed from the clean input around it;
  ``binary``     — element-wise ops of two tensors (residual additions): the union of both regions;
  ``dense``      — anything else (global pooling, linear layers, squeeze-excitation, attention, reshapes):
                   the changed tensors are made whole and the op runs normally on the batch.
Anything the plan does not recognise is ``dense``, so an unknown network is never wrong, only slower; a
network that cannot be traced at all (or carries hooks, or mutates a tensor another op still reads)
gets no plan and occlusion runs plain forwards.
"""
from __future__ import annotations

import math
import operator
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as torch_module

from ..hygiene import submodules

_POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh,
                      nn.LeakyReLU, nn.ELU, nn.Mish, nn.Hardtanh, nn.Identity, nn.Dropout, nn.Dropout2d)
# timm's own activations and eval-time no-ops (by class name: timm is not a dependency of cam_core)
_POINTWISE_NAMES = {"Swish", "SwishMe", "HardSwish", "HardSwishMe", "HardSigmoid", "HardSigmoidMe", "Mish",
                    "MishMe", "HardMish", "HardMishMe", "GELUTanh", "QuickGELU", "DropPath"}
_NORM_ACT_NAMES = {"BatchNormAct2d"}  # BN (eval) → drop (eval) → activation, all per position
_LEAF_NAMES = _POINTWISE_NAMES | _NORM_ACT_NAMES | {"Conv2dSame"}

_POINTWISE_FUNCS = {F.relu, F.relu6, F.hardswish, F.hardsigmoid, F.silu, F.gelu, F.elu, F.leaky_relu,
                    F.hardtanh, torch.relu, torch.sigmoid, torch.tanh, torch.relu_, torch.clamp, F.mish}
_POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_",
                      "hardtanh", "hardtanh_", "contiguous"}
_BINARY_FUNCS = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
                 operator.truediv, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div}
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
_INPLACE_FUNCS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, torch.relu_}


@dataclass
class Slide:
    """A sliding op's geometry per axis (rows, cols) and how to run it on an already padded input."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    pad_value: float
    run: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Step:
    node: fx.Node
    kind: str  # input, const, pointwise, slide, binary, meta, dense, output
    slide: Slide | None = None


@dataclass
class Plan:
    graph_module: fx.GraphModule
    steps: list[Step]
    varies: set[fx.Node] = field(default_factory=set)


class _Tracer(fx.Tracer):
    """fx's tracer, blind to other threads.

    While it traces, fx patches ``nn.Module.__call__`` and ``__getattr__`` for the whole process: another
    thread's forward (another session on the same cached model, or any other model) would be turned into
    graph nodes of this trace and get proxies back. Calls and attribute reads from other threads go through
    untouched.
    """

    def __init__(self) -> None:
        super().__init__()
        self._owner = threading.get_ident()

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m).__name__ in _LEAF_NAMES or super().is_leaf_module(m, qualname)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if threading.get_ident() != self._owner:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        if threading.get_ident() != self._owner:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def pointwise_module(m: nn.Module) -> bool:
    """Whether ``m`` (in its current mode) acts on each position on its own."""
    if isinstance(m, nn.BatchNorm2d):
        return not m.training and m.running_mean is not None and m.running_var is not None
    if isinstance(m, (nn.Dropout, nn.Dropout2d)) or type(m).__name__ == "DropPath":
        return not m.training
    if isinstance(m, _POINTWISE_MODULES) or type(m).__name__ in _POINTWISE_NAMES:
        return True
    if type(m).__name__ in _NORM_ACT_NAMES:
        if m.training or getattr(m, "running_mean", None) is None or getattr(m, "running_var", None) is None:
            return False
        return all(pointwise_module(child) for child in m.children())
    return False


def _same_pads(length: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding: output ⌈length/stride⌉, the odd pixel of padding after."""
    total = max((math.ceil(length / stride) - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


def slide_of(m: nn.Module, in_shape: torch.Size) -> Slide | None:
    """The sliding geometry of a convolution or pooling module, or ``None`` when it is anything else."""
    height, width = int(in_shape[-2]), int(in_shape[-1])
    if isinstance(m, nn.Conv2d) and type(m).__name__ in {"Conv2d", "Conv2dSame"}:
        if m.padding_mode != "zeros":
            return None
        k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
        if type(m).__name__ == "Conv2dSame":
            (t, b), (l, r) = _same_pads(height, k[0], s[0], d[0]), _same_pads(width, k[1], s[1], d[1])
        elif m.padding == "same":
            tot = (d[0] * (k[0] - 1), d[1] * (k[1] - 1))
            t, b, l, r = tot[0] // 2, tot[0] - tot[0] // 2, tot[1] // 2, tot[1] - tot[1] // 2
        elif m.padding == "valid":
            t = b = l = r = 0
        else:
            p = _pair(m.padding)
            t, b, l, r = p[0], p[0], p[1], p[1]
        # patches are channels_last; a weight in the same layout spares oneDNN a reorder on every call
        # (a copy: the model's own weight is left as it is)
        weight = m.weight.detach().contiguous(memory_format=torch.channels_last)
        bias, groups = m.bias, m.groups
        return Slide(k, s, d, (t, b, l, r), 0.0,
                     lambda z: F.conv2d(z, weight, bias, s, 0, d, groups))
    if type(m) is nn.MaxPool2d:
        if m.ceil_mode or m.return_indices:
            return None
        k, s, d, p = _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.dilation), _pair(m.padding)
        return Slide(k, s, d, (p[0], p[0], p[1], p[1]), -math.inf,
                     lambda z: F.max_pool2d(z, k, s, 0, d))
    if type(m) is nn.AvgPool2d:
        p = _pair(m.padding)
        if m.ceil_mode or m.divisor_override is not None or (not m.count_include_pad and any(p)):
            return None
        k, s = _pair(m.kernel_size), _pair(m.stride or m.kernel_size)
        return Slide(k, s, (1, 1), (p[0], p[0], p[1], p[1]), 0.0, lambda z: F.avg_pool2d(z, k, s, 0))
    return None


def has_hooks(model: nn.Module) -> bool:
    if any(getattr(torch_module, name, None) for name in ("_global_forward_hooks", "_global_forward_pre_hooks")):
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in submodules(model))


_lock = threading.Lock()
# fx's patches of nn.Module are process-wide and undone in the order they were made: two traces at once would
# undo each other's and could leave nn.Module.__call__ patched for good. One trace at a time.
_trace_lock = threading.Lock()
_traced: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, fx.GraphModule | None]] = weakref.WeakKeyDictionary()


def trace(model: nn.Module) -> fx.GraphModule | None:
    """The model's graph (cached per model, redone when its modules change); ``None`` if it cannot be traced."""
    stamp = tuple(id(m) for m in submodules(model))
    with _lock:
        hit = _traced.get(model)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    # Tracing runs the model's Python forward with proxies: an attribute a forward assigns (a call counter,
    # a cache) would be left holding a proxy. Every module's attributes are put back as they were.
    # Only what tracing changed is put back, key by key: other threads may be running the model meanwhile, so
    # its __dict__ is never emptied, even for an instant.
    with _trace_lock:
        saved = [(m, dict(m.__dict__)) for m in submodules(model)]
        try:
            tracer = _Tracer()
            graph = tracer.trace(model)
            traced: fx.GraphModule | None = fx.GraphModule(tracer.root, graph)
        except Exception:  # any tracing failure only means: no incremental plan
            traced = None
        finally:
            for module, attributes in saved:
                _put_back(module.__dict__, attributes)
    with _lock:
        _traced[model] = (stamp, traced)
    return traced


_MISSING = object()


def _put_back(now: dict[str, Any], before: dict[str, Any]) -> None:
    """Make ``now`` hold what ``before`` held, touching only the keys that differ."""
    for key in [k for k in now if k not in before]:
        del now[key]
    for key, value in before.items():
        if now.get(key, _MISSING) is not value:
            now[key] = value


def _args(node: fx.Node) -> list[Any]:
    out: list[Any] = []
    fx.node.map_arg((node.args, node.kwargs), out.append)
    return out


def _mutates(node: fx.Node, modules: dict[str, nn.Module]) -> fx.Node | None:
    """The node whose tensor ``node`` changes in place, if any."""
    first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    if node.op == "call_module" and getattr(modules.get(str(node.target)), "inplace", False):
        return first
    if node.op == "call_function" and (node.target in _INPLACE_FUNCS or node.kwargs.get("inplace")):
        return first
    if node.op == "call_method" and str(node.target).endswith("_"):
        return first
    return None


def build_plan(model: nn.Module) -> Plan | None:
    """Classify every node of the traced model; ``None`` when no exact incremental plan exists."""
    if has_hooks(model):
        return None
    gm = trace(model)
    if gm is None:
        return None
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if not placeholders or any(n.args == () for n in placeholders[1:]):
        return None  # more than one required input
    varies: set[fx.Node] = {placeholders[0]}
    steps: list[Step] = []
    for n in nodes:
        if n is placeholders[0]:
            steps.append(Step(n, "input"))
            continue
        if n.op == "output":
            steps.append(Step(n, "output"))
            continue
        inputs = [a for a in _args(n) if isinstance(a, fx.Node)]
        if not any(a in varies for a in inputs):
            steps.append(Step(n, "const"))
            continue
        varies.add(n)
        steps.append(Step(n, _kind(n, modules, varies)))
    order = {n: i for i, n in enumerate(nodes)}
    for n in nodes:  # an op changing in place a tensor that a later op still reads, or a constant: no plan
        target = _mutates(n, modules)
        if target is not None and (target not in varies
                                   or any(u is not n and order[u] > order[n] for u in target.users)):
            return None
    return Plan(gm, steps, varies)


def _kind(n: fx.Node, modules: dict[str, nn.Module], varies: set[fx.Node]) -> str:
    varying = [a for a in _args(n) if isinstance(a, fx.Node) and a in varies]
    first = n.args[0] if n.args else None
    if n.op == "call_module":
        m = modules[str(n.target)]
        if len(varying) == 1 and first is varying[0] and len(n.args) == 1 and not n.kwargs:
            if pointwise_module(m):
                return "pointwise"
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                return "slide"
        return "dense"
    if n.op == "call_function":
        if n.target in _POINTWISE_FUNCS and varying == [first]:
            return "pointwise"
        if n.target in _BINARY_FUNCS and len(n.args) == 2 and set(n.kwargs) <= {"alpha"}:
            return "binary"
        if n.target is getattr and n.args[1] in ("shape", "ndim"):
            return "meta"
        return "dense"
    if n.op == "call_method":
        if n.target in _POINTWISE_METHODS and varying == [first]:
            return "pointwise"
        if n.target in _BINARY_METHODS and len(n.args) == 2 and set(n.kwargs) <= {"alpha"}:
            return "binary"
        if n.target in ("size", "dim") and varying == [first]:
            return "meta"
        return "dense"
    return "dense"
