"""Borrow a model without changing it: eval mode shared across threads, hooks scoped to one call and one thread.

Every context manager here restores what it changed on every exit path, exceptions included.
"""
from __future__ import annotations

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
    """Yield ``add(module, hook, kind="forward")`` registering hooks that fire only in this thread.

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

        if kind == "forward":
            handles.append(module.register_forward_hook(only_mine))
        elif kind == "forward_pre":
            handles.append(module.register_forward_pre_hook(only_mine))
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown hook kind {kind!r}")

    try:
        yield add
    finally:
        for handle in handles:
            handle.remove()


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
