"""The one place that sets hooks: one forward pass that records layers' activations (and the graph from them on).

``record(model, x, layers, grad_from=…)`` returns the class scores and each named layer's output in map
layout (N×C×h×w). Hooks are scoped to the call and to the calling thread (``hygiene.thread_hooks``) and are
removed on every exit path. With ``grad_from``, autograd stays off until the first of those layers runs and
is switched on inside its hook (grad mode is thread-local): the only graph built is the one from that layer
to the scores, so a gradient CAM costs about one forward pass and no parameter ``.grad`` is written.

A layer whose output is not N×C×H×W (a transformer's tokens) goes through an adapter (``adapter_for``) that
turns it into a map and back; the rest of the network sees the original layout.

``record`` is a short core over hook installers, each ``install(add)`` registering its hooks with
``thread_hooks``' ``add``: ``layer_hooks``, ``edit_hooks``, ``io_hooks`` and whatever the caller passes as
``hooks=[...]`` (e.g. ``methods.attention.AttentionWeights``), so what a method needs beyond activations lives
with the method.
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


Install = Callable[[Callable[..., None]], None]  # given thread_hooks' ``add(module, hook, kind)``, sets its hooks


@dataclass
class Recording:
    """What one forward pass recorded.

    ``calls[name]``: the layer's output (map layout) at each call, in order (a reused module runs several
    times); ``activations[name]`` is the last. With ``grad_from`` these tensors are in the graph that ends in
    ``logits``, so ``torch.autograd.grad(score, recording.activations[name])`` gives ∂score/∂A.
    ``io[module]``: (positional inputs, output) of the last call of each module in ``keep_io``, in call order.
    ``events``: ("start", module) for each call of a module in ``starts_of`` and ("end", module) for each call
    of a module in ``keep_io``, in the order they happened (module order, attention starts).
    """

    logits: torch.Tensor | None
    calls: dict[str, list[torch.Tensor]]
    io: dict[nn.Module, tuple[Any, Any]] = field(default_factory=dict)
    adapters: dict[str, LayerAdapter] = field(default_factory=dict)
    events: list[tuple[str, nn.Module]] = field(default_factory=list)

    @property
    def activations(self) -> dict[str, torch.Tensor]:
        return {name: outs[-1] for name, outs in self.calls.items()}


def io_hooks(rec: Recording, keep_io: Iterable[nn.Module], starts_of: Iterable[nn.Module]) -> Install:
    """Hooks filling ``rec.io`` (each ``keep_io`` module's last (inputs, output), in the order of last calls)
    and ``rec.events`` ("end" after each ``keep_io`` call, "start" before each ``starts_of`` call)."""
    def keep(module: nn.Module, inputs: tuple, output: object) -> None:
        rec.io.pop(module, None)  # the dict's order is the order of last calls
        rec.io[module] = (inputs, output)
        rec.events.append(("end", module))

    def start(module: nn.Module, _inputs: tuple) -> None:
        rec.events.append(("start", module))

    def install(add: Callable[..., None]) -> None:
        for module in keep_io:
            add(module, keep)
        for module in starts_of:
            add(module, start, kind="forward_pre")
    return install


def layer_hooks(model: nn.Module, x: torch.Tensor, layers: Sequence[tuple[str, nn.Module]], rec: Recording, *,
                grad_names: set[str], stop_after_layers: bool, adapter_for: AdapterFinder) -> Install:
    """Hooks recording each ``(name, module)`` of ``layers`` into ``rec.calls`` (through its adapter, in map
    layout), starting autograd at the first of ``grad_names``, and raising ``_Stop`` once every layer has run
    when ``stop_after_layers``."""
    pending = {name for name, _ in layers}

    def hook_for(name: str) -> Callable[..., Any]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> Any:
            if not isinstance(output, torch.Tensor):
                raise CamError(f"layer {name!r} does not output a single tensor; pick another layer")
            adapter = rec.adapters.get(name)
            if adapter is None and output.dim() in (3, 4):
                adapter = adapter_for(model, name, output, x)
                if adapter is not None:
                    rec.adapters[name] = adapter
            fmap = adapter.to_map(output) if adapter is not None else output
            if name in grad_names:
                if not torch.is_grad_enabled():  # the first differentiable layer: the graph starts here
                    fmap = fmap.detach().requires_grad_(True)
                    torch.set_grad_enabled(True)
                rec.calls[name].append(fmap)
                downstream = fmap.clone()  # in-place ops downstream (ReLU(inplace=True)) must not touch ours
            elif fmap.requires_grad:
                rec.calls[name].append(fmap)
                downstream = None
            else:
                # a copy: the forward goes on with ``output`` itself, and an in-place op after the layer (DenseNet's
                # F.relu(features, inplace=True), ResNet's ``out += identity`` after bn2) would rewrite a view
                kept = fmap.detach()
                rec.calls[name].append(kept.clone() if kept.data_ptr() == output.data_ptr() else kept)
                downstream = None
            pending.discard(name)
            if stop_after_layers and not pending:
                raise _Stop
            if downstream is None:
                return None  # output unchanged
            return adapter.from_map(downstream, output) if adapter is not None else downstream
        return hook

    def install(add: Callable[..., None]) -> None:
        for name, module in layers:
            add(module, hook_for(name))
    return install


def edit_hooks(layers: Sequence[tuple[str, nn.Module]], rec: Recording, edit: dict[str, Edit]) -> Install:
    """Hooks replacing each ``edit`` layer's output with ``edit[name](map)``. Installed after ``layer_hooks``
    (hooks run in the order they were added), so the recording keeps the unedited activation and the edit
    sees the layer's map through the adapter ``layer_hooks`` found."""
    def hook_for(name: str, fn: Edit) -> Callable[..., Any]:
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
            adapter = rec.adapters.get(name)
            edited = fn(adapter.to_map(output) if adapter is not None else output)
            return adapter.from_map(edited, output) if adapter is not None else edited
        return hook

    def install(add: Callable[..., None]) -> None:
        for name, module in layers:
            if name in edit:
                add(module, hook_for(name, edit[name]))
    return install


def record(model: nn.Module, x: torch.Tensor, layers: Iterable[str | nn.Module] = (), *,
           grad_from: Sequence[str] | str | None = None, stop_after_layers: bool = False,
           keep_io: Iterable[nn.Module] = (), edit: dict[str, Edit] | None = None,
           input_grad: bool = False, starts_of: Iterable[nn.Module] = (), hooks: Iterable[Install] = (),
           adapter_for: AdapterFinder = find_adapter) -> Recording:
    """Run ``model(x)`` once, recording ``layers``; see the module docstring.

    ``grad_from``: names (among ``layers``) whose activations must be differentiable; autograd starts at the
    first of them to run. ``stop_after_layers``: stop the forward once every layer has run (``logits`` is
    then ``None``). ``edit[name]``: replace that layer's (map-layout) output, e.g. with a batch of ablated
    copies (Ablation-CAM) — the part of the network before the layer then runs once, the rest on the batch.
    ``input_grad``: autograd on from the start (pixel methods differentiate with respect to ``x``).
    ``hooks``: more installers, each called with ``add`` (e.g. ``methods.attention.AttentionWeights``); their
    hooks are scoped and removed like the recorder's own.
    """
    resolved = [resolve_layer(model, layer) for layer in layers]
    names = [name for name, _ in resolved]
    grad_names = {grad_from} if isinstance(grad_from, str) else set(grad_from or ())
    unknown = grad_names - set(names) or set(edit or ()) - set(names)
    if unknown:
        raise CamError(f"layer {sorted(unknown)[0]!r} must also be among the recorded layers")
    rec = Recording(logits=None, calls={name: [] for name in names})
    installs = [layer_hooks(model, x, resolved, rec, grad_names=grad_names,
                            stop_after_layers=stop_after_layers, adapter_for=adapter_for),
                edit_hooks(resolved, rec, edit or {}), io_hooks(rec, keep_io, starts_of), *hooks]
    check_input(model, x)
    with grad_mode(input_grad), thread_hooks() as add:
        for install in installs:
            install(add)
        try:
            rec.logits = logits_of(model(x))
        except _Stop:
            pass
    missing = [name for name in names if not rec.calls[name]]
    if missing:
        raise CamError(f"layer {missing[0]!r} is not run by the model's forward pass; pick another layer")
    return rec
