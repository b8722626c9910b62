"""Borrow a model without changing it: eval mode shared across threads, hooks scoped to one call and one thread.

Every context manager here restores what it changed on every exit path, exceptions included.
"""
from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_lock = threading.Lock()
# id(model) -> [borrowers, {module: training flag before the first borrower}]
_borrowed: dict[int, list[Any]] = {}


def submodules(model: nn.Module) -> list[nn.Module]:
    """``model`` and every module under it: a plain walk, several times faster than ``model.modules()``."""
    out, stack = [], [model]
    pop, push = stack.pop, stack.extend
    while stack:
        module = pop()
        if module is not None:  # a child slot may hold None
            out.append(module)
            push(module._modules.values())
    return out


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode while at least one caller (of any thread) borrows it.

    The first borrower records which modules were training; the last one turns exactly those back, so two
    threads explaining with the same cached model never flip it back under each other's feet. A model that
    is already in eval mode (the cached case) is left alone: ``model.eval()`` walks every module and costs
    a few milliseconds, a tenth of a small model's forward pass.
    """
    key = id(model)
    with _lock:
        entry = _borrowed.get(key)
        if entry is None:
            training = [m for m in submodules(model) if m.training]
            entry = _borrowed[key] = [0, training]
            if training:
                model.eval()
        entry[0] += 1
    try:
        yield model
    finally:
        with _lock:
            entry[0] -= 1
            if entry[0] == 0:
                del _borrowed[key]
                for module in entry[1]:
                    module.training = True


@contextmanager
def thread_hooks() -> Iterator[Callable[..., None]]:
    """Yield ``add(module, hook, kind="forward")`` registering hooks that fire only in this thread
    (``kind``: "forward", "forward_pre", or "forward_pre_kwargs" for a pre-hook that sees and may change kwargs).

    A shared model may run in other threads (other browser sessions) while our hooks are attached;
    the filter keeps their forward passes untouched. All handles are removed on exit.
    """
    owner = threading.get_ident()
    handles: list[Any] = []

    def add(module: nn.Module, hook: Callable[..., Any], kind: str = "forward") -> None:
        def only_mine(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == owner:
                return hook(*args, **kwargs)
            return None

        only_mine.thread_scoped = True  # type: ignore[attr-defined]  # private_copy leaves these out
        if kind == "forward":
            handles.append(module.register_forward_hook(only_mine))
        elif kind == "forward_pre":
            handles.append(module.register_forward_pre_hook(only_mine))
        elif kind == "forward_pre_kwargs":  # hook(module, args, kwargs) -> (args, kwargs) or None
            handles.append(module.register_forward_pre_hook(only_mine, with_kwargs=True))
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown hook kind {kind!r}")

    try:
        yield add
    finally:
        for handle in handles:
            handle.remove()


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks")
_HOOK_FLAGS = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")


def private_copy(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)`` without the hooks other threads have scoped to themselves on it right now.

    Another thread may be inside ``thread_hooks`` on the same (cached) model: deepcopy would carry its hooks
    into the copy, and iterate their dicts while that thread adds or removes entries. Each hook dict is read
    once (``list(d.items())`` is one C-level pass, no other thread runs in between) and handed to deepcopy
    as the copy's, minus those hooks; the user's own hooks are deep-copied as deepcopy would.
    """
    memo: dict[int, Any] = {}
    kept: list[tuple[dict, list[tuple[Any, Any]]]] = []
    for module in submodules(model):
        scoped: set[int] = set()
        for name in _HOOK_DICTS + _HOOK_FLAGS:
            hooks = module.__dict__.get(name)
            if hooks is None:
                continue
            items = list(hooks.items())
            if name in _HOOK_DICTS:
                scoped |= {key for key, hook in items if getattr(hook, "thread_scoped", False)}
            twin = memo[id(hooks)] = type(hooks)()
            kept.append((twin, [(key, value) for key, value in items if key not in scoped]))
    for twin, items in kept:  # every hook dict is in memo first: a hook bound to a module finds the copy's
        twin.update((key, copy.deepcopy(value, memo)) for key, value in items)
    return copy.deepcopy(model, memo)


@contextmanager
def grad_mode(enabled: bool) -> Iterator[None]:
    """Set this thread's autograd mode, restoring the caller's on exit (also when a hook changed it)."""
    previous = torch.is_grad_enabled()
    # inference_mode(False) itself turns grad mode on, so it is entered first and grad mode set inside.
    with torch.inference_mode(False):
        torch.set_grad_enabled(enabled)
        try:
            yield
        finally:
            torch.set_grad_enabled(previous)
