"""Run a plan: the clean pass once, then each chunk of windows recomputing only what the windows change.

A changed tensor is kept as ``Sparse``: the clean activation plus one patch per window (N×C×h×w, the same
shape for every window) at per-window offsets. A sliding op reads, for each window, its input rectangle —
clean values gathered from the (padded) clean activation with the window's patch written over them — and
runs the real kernel on that batch of rectangles. Once a region covers the whole map, or an op is not
understood, the tensor is made whole (``dense``) and the rest runs as a normal batched forward.
Patches are channels_last: gathering rows of an N·H·W×C table is then one ``index_select``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

from .geometry import Span, read, slide, union
from .plan import Plan, Slide, slide_of


@dataclass
class Sparse:
    """A changed tensor: ``patch`` (N×C×h×w) written at (rows.start[n], cols.start[n]) over ``clean``."""

    patch: torch.Tensor
    rows: Span
    cols: Span
    node: fx.Node


def _fetch(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def call(node: fx.Node, gm: fx.GraphModule, modules: dict[str, Any], args: tuple, kwargs: dict) -> Any:
    """Run one node's operation on concrete arguments."""
    if node.op == "call_module":
        return modules[str(node.target)](*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)  # type: ignore[operator]
    if node.op == "call_method":
        return getattr(args[0], str(node.target))(*args[1:], **kwargs)
    if node.op == "get_attr":
        return _fetch(gm, str(node.target))
    raise RuntimeError(f"cannot run node {node.op}")


def _broadcasts_per_position(value: Any) -> bool:
    """A constant that multiplies/adds the same thing at every position (a number, a C×1×1 tensor)."""
    if not isinstance(value, torch.Tensor):
        return isinstance(value, (int, float, bool))
    if value.dim() <= 1:
        return value.numel() == 1
    return tuple(value.shape[-2:]) == (1, 1) and value.dim() <= 4


class Prepared:
    """The clean pass of one image: every node's clean value, geometry of the sliding ops, table caches."""

    def __init__(self, plan: Plan, x: torch.Tensor):
        self.plan, self.x = plan, x
        gm = plan.graph_module
        self.modules = dict(gm.named_modules())
        self.clean: dict[fx.Node, Any] = {}
        self.slides: dict[fx.Node, Slide] = {}
        self._tables: dict[tuple, tuple[torch.Tensor, int]] = {}
        env: dict[fx.Node, Any] = {}
        first = True
        for step in plan.steps:
            n = step.node
            if n.op == "placeholder":
                value = x if first else n.args[0]
                first = False
            elif n.op == "output":
                self.output = fx.node.map_arg(n.args[0], lambda a: env[a])
                continue
            else:
                args, kwargs = fx.node.map_arg((n.args, n.kwargs), lambda a: env[a])
                if step.kind == "slide":
                    geometry = slide_of(self.modules[str(n.target)], args[0].shape)
                    if geometry is not None:
                        self.slides[n] = geometry
                value = call(n, gm, self.modules, args, kwargs)
            env[n] = value
            # a later in-place op may change env[n]; keep the node's own output
            self.clean[n] = value.clone() if isinstance(value, torch.Tensor) and n in plan.varies else value
        self._check_slides()

    def _check_slides(self) -> None:
        """Each sliding op, run our way on the whole clean input, must give the clean output; else dense."""
        for n, g in list(self.slides.items()):
            inp, out = self.clean[n.args[0]], self.clean[n]
            ok = isinstance(inp, torch.Tensor) and inp.dim() == 4 and isinstance(out, torch.Tensor)
            if ok:
                t, b, l, r = g.pads
                padded = torch.nn.functional.pad(inp, (l, r, t, b), value=g.pad_value)
                try:
                    mine = g.run(padded)
                    ok = mine.shape == out.shape and bool(torch.allclose(
                        mine, out, rtol=1e-4, atol=1e-5 * float(out.abs().max().clamp(min=1e-30))))
                except RuntimeError:
                    ok = False
            if not ok:
                del self.slides[n]

    def table(self, node: fx.Node, pads: tuple[int, int, int, int], value: float) -> tuple[torch.Tensor, int]:
        """The clean activation of ``node``, padded, as a (H·W)×C row table; and the padded width."""
        key = (node, pads, value)
        hit = self._tables.get(key)
        if hit is None:
            t, b, l, r = pads
            clean = self.clean[node]
            if any(pads):
                clean = torch.nn.functional.pad(clean, (l, r, t, b), value=value)
            hit = (clean[0].permute(1, 2, 0).reshape(-1, clean.shape[1]).contiguous(), int(clean.shape[-1]))
            self._tables[key] = hit
        return hit


def expand(prep: Prepared, s: Sparse, rows: Span, cols: Span, pads: tuple[int, int, int, int] = (0, 0, 0, 0),
           value: float = 0.0) -> torch.Tensor:
    """N×C×rows.size×cols.size (channels_last): the padded clean tensor of ``s`` with its patches, cut out at
    (rows.start[n], cols.start[n]) in padded coordinates."""
    table, width = prep.table(s.node, pads, value)
    device = table.device
    n, channels = s.patch.shape[0], table.shape[1]
    rh, rw = rows.size, cols.size
    area = rh * rw
    r_idx = rows.start.to(device)[:, None] + torch.arange(rh, device=device)
    c_idx = cols.start.to(device)[:, None] + torch.arange(rw, device=device)
    gather = (r_idx[:, :, None] * width + c_idx[:, None, :]).reshape(-1)
    buffer = torch.empty(n * area + 1, channels, dtype=table.dtype, device=device)
    torch.index_select(table, 0, gather, out=buffer[:n * area])
    ph, pw = s.patch.shape[-2:]
    pr = (s.rows.start.to(device) + pads[0] - rows.start.to(device))[:, None] + torch.arange(ph, device=device)
    pc = (s.cols.start.to(device) + pads[2] - cols.start.to(device))[:, None] + torch.arange(pw, device=device)
    inside = ((pr >= 0) & (pr < rh))[:, :, None] & ((pc >= 0) & (pc < rw))[:, None, :]
    base = (torch.arange(n, device=device) * area)[:, None, None]
    dest = torch.where(inside, base + pr[:, :, None] * rw + pc[:, None, :], n * area).reshape(-1)
    source = s.patch.permute(0, 2, 3, 1).reshape(-1, channels)
    buffer.index_put_((dest,), source)
    return buffer[:n * area].view(n, rh, rw, channels).permute(0, 3, 1, 2)


def densify(prep: Prepared, value: Any) -> Any:
    """A ``Sparse`` made whole (N×C×H×W); anything else as it is."""
    if not isinstance(value, Sparse):
        return value
    clean = prep.clean[value.node]
    n, height, width = value.patch.shape[0], clean.shape[-2], clean.shape[-1]
    zeros = torch.zeros(n, dtype=torch.long)
    return expand(prep, value, Span(zeros, height), Span(zeros, width))


@dataclass
class Decision:
    """What one node does for all windows: ``mode`` sparse/dense, and the spans when sparse."""

    mode: str
    rows: Span | None = None
    cols: Span | None = None
    scalar: bool = False  # binary op with a per-position constant


def _full(rows: Span, cols: Span, shape: torch.Size) -> bool:
    return rows.size == shape[-2] and cols.size == shape[-1]


def geometry(prep: Prepared, window_rows: torch.Tensor, window_cols: torch.Tensor, patch: int
             ) -> dict[fx.Node, Decision]:
    """Per node, whether windows keep it sparse and where each window's change lies (all windows at once)."""
    out: dict[fx.Node, Decision] = {}
    x = prep.x

    def sparse(node: Any) -> Decision | None:
        d = out.get(node) if isinstance(node, fx.Node) else None
        return d if d is not None and d.mode == "sparse" else None

    for step in prep.plan.steps:
        n = step.node
        if step.kind == "input":
            out[n] = Decision("sparse", Span(window_rows, min(patch, x.shape[-2])),
                              Span(window_cols, min(patch, x.shape[-1])))
            continue
        if step.kind in ("const", "output"):
            continue
        shape = prep.clean[n].shape if isinstance(prep.clean[n], torch.Tensor) else None
        src = sparse(n.args[0]) if n.args else None
        decision = Decision("dense")
        if step.kind == "pointwise" and src is not None:
            decision = Decision("sparse", src.rows, src.cols)
        elif step.kind == "slide" and src is not None and n in prep.slides and shape is not None:
            g = prep.slides[n]
            rows = slide(src.rows, g.kernel[0], g.stride[0], g.dilation[0], g.pads[0], shape[-2])
            cols = slide(src.cols, g.kernel[1], g.stride[1], g.dilation[1], g.pads[2], shape[-1])
            decision = Decision("sparse", rows, cols)
        elif step.kind == "binary" and shape is not None and len(shape) == 4:
            a, b = n.args[0], n.args[1]
            da, db = sparse(a), sparse(b)
            const_a = not (isinstance(a, fx.Node) and a in prep.plan.varies)
            const_b = not (isinstance(b, fx.Node) and b in prep.plan.varies)
            if da is not None and db is not None and prep.clean[a].shape == prep.clean[b].shape == shape:
                decision = Decision("sparse", union(da.rows, db.rows, shape[-2]), union(da.cols, db.cols, shape[-1]))
            elif da is not None and const_b and _broadcasts_per_position(prep.clean.get(b, b)) \
                    and prep.clean[a].shape == shape:
                decision = Decision("sparse", da.rows, da.cols, scalar=True)
            elif db is not None and const_a and _broadcasts_per_position(prep.clean.get(a, a)) \
                    and prep.clean[b].shape == shape:
                decision = Decision("sparse", db.rows, db.cols, scalar=True)
        elif step.kind == "meta":
            decision = Decision("meta")
        if decision.mode == "sparse" and shape is not None and _full(decision.rows, decision.cols, shape):
            decision.mode = "whole"  # computed sparse-style, then kept dense
        out[n] = decision
    return out


def run_chunk(prep: Prepared, decisions: dict[fx.Node, Decision], index: slice, fill_patch: torch.Tensor
              ) -> torch.Tensor:
    """The model's output for windows ``index`` (their shared fill patch: 1×C×h×w)."""
    gm, modules = prep.plan.graph_module, prep.modules
    env: dict[fx.Node, Any] = {}
    count = None
    for step in prep.plan.steps:
        n = step.node
        if step.kind == "const":
            env[n] = prep.clean[n]
            continue
        if step.kind == "output":
            return fx.node.map_arg(n.args[0], lambda a: densify(prep, env[a]))
        d = decisions[n]
        if step.kind == "input":
            rows, cols = d.rows.take(index), d.cols.take(index)
            count = int(rows.start.shape[0])
            patch = fill_patch.expand(count, -1, rows.size, cols.size).contiguous(memory_format=torch.channels_last)
            env[n] = Sparse(patch, rows, cols, n)
            continue
        if d.mode == "meta":
            value = env[n.args[0]]
            if isinstance(value, Sparse):
                shape = torch.Size((count, *prep.clean[value.node].shape[1:]))
                if n.op == "call_function":  # getattr(x, "shape"/"ndim")
                    env[n] = shape if n.args[1] == "shape" else len(shape)
                elif n.target == "dim":
                    env[n] = len(shape)
                else:
                    dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
                    env[n] = shape if dim is None else shape[dim]
                continue
        if d.mode in ("sparse", "whole"):
            rows, cols = d.rows.take(index), d.cols.take(index)
            if step.kind == "pointwise":
                src = env[n.args[0]]
                args, kwargs = fx.node.map_arg((n.args, n.kwargs), lambda a: env[a])
                result = call(n, gm, modules, (src.patch, *args[1:]), kwargs)
            elif step.kind == "slide":
                src = env[n.args[0]]
                g = prep.slides[n]
                local = expand(prep, src, read(rows, g.kernel[0], g.stride[0], g.dilation[0]),
                               read(cols, g.kernel[1], g.stride[1], g.dilation[1]), g.pads, g.pad_value)
                result = g.run(local)
            else:  # binary
                def operand(a: Any) -> Any:
                    value = env[a] if isinstance(a, fx.Node) else a
                    if not isinstance(value, Sparse):
                        return value
                    if d.scalar or (value.rows.size == rows.size and value.cols.size == cols.size
                                    and torch.equal(value.rows.start, rows.start)
                                    and torch.equal(value.cols.start, cols.start)):
                        return value.patch
                    return expand(prep, value, rows, cols)

                kwargs = fx.node.map_arg(n.kwargs, lambda a: env[a])
                result = call(n, gm, modules, tuple(operand(a) for a in n.args), kwargs)
            env[n] = result if d.mode == "whole" else Sparse(result, rows, cols, n)
            continue
        args, kwargs = fx.node.map_arg((n.args, n.kwargs), lambda a: densify(prep, env[a]))
        env[n] = call(n, gm, modules, args, kwargs)
    raise RuntimeError("the graph has no output")
