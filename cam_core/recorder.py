"""The one place that sets hooks: one forward pass that records layers' activations (and the graph from them on).

``record(model, x, layers, grad_from=…)`` returns the class scores and each named layer's output in map
layout (N×C×h×w). Hooks are scoped to the call and to the calling thread (``hygiene.thread_hooks``) and are
removed on every exit path. With ``grad_from``, autograd stays off until the first of those layers runs and
is switched on inside its hook (grad mode is thread-local): the only graph built is the one from that layer
to the scores, so a gradient CAM costs about one forward pass and no parameter ``.grad`` is written.

A layer whose output is not N×C×H×W (a transformer's tokens) goes through an adapter (``adapter_for``) that
turns it into a map and back; the rest of the network sees the original layout.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .adapters import LayerAdapter, check_input
from .adapters import adapter_for as find_adapter
from .errors import CamError
from .hygiene import grad_mode, thread_hooks
from .targets import logits_of

Edit = Callable[[torch.Tensor], torch.Tensor]  # map-layout activation -> replacement (may grow the batch)


AdapterFinder = Callable[[nn.Module, str, torch.Tensor, torch.Tensor], "LayerAdapter | None"]


class _Stop(Exception):
    """Raised by a hook once the last layer asked for has run: nothing after it is needed."""


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(dotted name, module)`` for a name like ``"layer4"`` / ``"features.28"`` or a module."""
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name or "(model)", module
        raise CamError("the target layer is not a module of this model")
    try:  # walks only the dotted path: a full named_modules() scan costs ~1 ms on every explain
        return layer, model.get_submodule(layer)
    except AttributeError:
        pass
    modules = dict(model.named_modules())
    close = [n for n in modules if n and (n.endswith(str(layer)) or str(layer) in n)][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else "; list them with `python -m cam_core layers`"
    raise CamError(f"no layer named {layer!r} in this model{hint}")


@dataclass
class Recording:
    """What one forward pass recorded.

    ``calls[name]``: the layer's output (map layout) at each call, in order (a reused module runs several
    times); ``activations[name]`` is the last. With ``grad_from`` these tensors are in the graph that ends in
    ``logits``, so ``torch.autograd.grad(score, recording.activations[name])`` gives ∂score/∂A.
    ``io[module]``: (positional inputs, output) of the last call of each module in ``keep_io``, in call order.
    ``events``: ("start", module) for each call of a module in ``starts_of`` and ("end", module) for each call
    of a module in ``keep_io``, in the order they happened (module order, attention starts).
    ``attention[module]``: the N×heads×T×T weights of each ``nn.MultiheadAttention`` in ``attention_of``, as
    its last call computed them (absent when the module was called with positional options).
    """

    logits: torch.Tensor | None
    calls: dict[str, list[torch.Tensor]]
    io: dict[nn.Module, tuple[Any, Any]] = field(default_factory=dict)
    adapters: dict[str, LayerAdapter] = field(default_factory=dict)
    events: list[tuple[str, nn.Module]] = field(default_factory=list)
    attention: dict[nn.Module, torch.Tensor] = field(default_factory=dict)

    @property
    def activations(self) -> dict[str, torch.Tensor]:
        return {name: outs[-1] for name, outs in self.calls.items()}


def io_hooks(io: dict[nn.Module, tuple[Any, Any]], events: list[tuple[str, nn.Module]]
             ) -> tuple[Callable[..., None], Callable[..., None]]:
    """Hooks filling ``io`` (each module's last (inputs, output), in the order of last calls) and ``events``:
    a forward hook ``keep`` ("end" events) and a pre-hook ``start`` ("start" events)."""
    def keep(module: nn.Module, inputs: tuple, output: object) -> None:
        io.pop(module, None)  # the dict's order is the order of last calls
        io[module] = (inputs, output)
        events.append(("end", module))

    def start(module: nn.Module, _inputs: tuple) -> None:
        events.append(("start", module))

    return keep, start


def attention_hooks() -> tuple[Callable[..., Any], Callable[..., Any], dict[nn.Module, torch.Tensor]]:
    """A kwargs pre-hook asking an ``nn.MultiheadAttention`` for its per-head weights, a forward hook taking
    them (and giving the caller what it asked for), and the dict they land in."""
    attention: dict[nn.Module, torch.Tensor] = {}
    asked: dict[nn.Module, tuple[bool, bool]] = {}

    def ask_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if len(args) > 3:  # options given by position: leave the call alone
            return None
        asked[module] = (bool(kwargs.get("need_weights", True)), bool(kwargs.get("average_attn_weights", True)))
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def take_weights(module: nn.Module, _inputs: tuple, output: Any) -> Any:
        wanted = asked.pop(module, None)
        if wanted is None or not isinstance(output, tuple) or output[1] is None:
            return None
        out, weights = output
        attention[module] = weights.detach()
        need, average = wanted
        return out, (None if not need else weights.mean(dim=1) if average else weights)

    return ask_weights, take_weights, attention


def record(model: nn.Module, x: torch.Tensor, layers: Iterable[str | nn.Module] = (), *,
           grad_from: Sequence[str] | str | None = None, stop_after_layers: bool = False,
           keep_io: Iterable[nn.Module] = (), edit: dict[str, Edit] | None = None,
           input_grad: bool = False, starts_of: Iterable[nn.Module] = (),
           attention_of: Iterable[nn.MultiheadAttention] = (),
           adapter_for: AdapterFinder = find_adapter) -> Recording:
    """Run ``model(x)`` once, recording ``layers``; see the module docstring.

    ``grad_from``: names (among ``layers``) whose activations must be differentiable; autograd starts at the
    first of them to run. ``stop_after_layers``: stop the forward once every layer has run (``logits`` is
    then ``None``). ``edit[name]``: replace that layer's (map-layout) output, e.g. with a batch of ablated
    copies (Ablation-CAM) — the part of the network before the layer then runs once, the rest on the batch.
    ``input_grad``: autograd on from the start (pixel methods differentiate with respect to ``x``).
    ``attention_of``: attention modules asked, for this call only, to return their per-head weights (torchvision's
    ViT calls them with ``need_weights=False``); the caller above them gets what it asked for.
    """
    resolved = [resolve_layer(model, layer) for layer in layers]
    names = [name for name, _ in resolved]
    grad_names = {grad_from} if isinstance(grad_from, str) else set(grad_from or ())
    unknown = grad_names - set(names) or set(edit or ()) - set(names)
    if unknown:
        raise CamError(f"layer {sorted(unknown)[0]!r} must also be among the recorded layers")
    calls: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    adapters: dict[str, LayerAdapter] = {}
    io: dict[nn.Module, tuple[Any, Any]] = {}
    events: list[tuple[str, nn.Module]] = []
    pending = set(names)

    def hook_for(name: str) -> Callable[..., Any]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> Any:
            if not isinstance(output, torch.Tensor):
                raise CamError(f"layer {name!r} does not output a single tensor; pick another layer")
            adapter = adapters.get(name)
            if adapter is None and output.dim() in (3, 4):
                adapter = adapter_for(model, name, output, x)
                if adapter is not None:
                    adapters[name] = adapter
            fmap = adapter.to_map(output) if adapter is not None else output
            replaced = edit is not None and name in edit
            if name in grad_names:
                if not torch.is_grad_enabled():  # the first differentiable layer: the graph starts here
                    fmap = fmap.detach().requires_grad_(True)
                    torch.set_grad_enabled(True)
                calls[name].append(fmap)
                downstream = fmap.clone()  # in-place ops downstream (ReLU(inplace=True)) must not touch ours
            elif fmap.requires_grad:
                calls[name].append(fmap)
                downstream = None
            else:
                # a copy: the forward goes on with ``output`` itself, and an in-place op after the layer (DenseNet's
                # F.relu(features, inplace=True), ResNet's ``out += identity`` after bn2) would rewrite a view
                kept = fmap.detach()
                calls[name].append(kept.clone() if kept.data_ptr() == output.data_ptr() else kept)
                downstream = None
            if replaced:
                downstream = edit[name](fmap)
            pending.discard(name)
            if stop_after_layers and not pending:
                raise _Stop
            if downstream is None:
                return None  # output unchanged
            return adapter.from_map(downstream, output) if adapter is not None else downstream
        return hook

    keep, start = io_hooks(io, events)
    ask_weights, take_weights, attention = attention_hooks()
    check_input(model, x)
    logits = None
    with grad_mode(input_grad), thread_hooks() as add:
        for name, module in resolved:
            add(module, hook_for(name))
        for module in keep_io:
            add(module, keep)
        for module in starts_of:
            add(module, start, kind="forward_pre")
        for module in attention_of:
            add(module, ask_weights, kind="forward_pre_kwargs")
            add(module, take_weights)
        try:
            logits = logits_of(model(x))
        except _Stop:
            pass
    missing = [name for name in names if not calls[name]]
    if missing:
        raise CamError(f"layer {missing[0]!r} is not run by the model's forward pass; pick another layer")
    return Recording(logits=logits, calls=calls, io=io, adapters=adapters, events=events, attention=attention)
