"""One engine layer for the UI: every cached engine call goes through ``cached``.

``cached(ctx, name, fn, **inputs)`` keys a result by what it depends on — ``name``, the context's model key
(which includes the input size), device and image digest, and the inputs frozen to hashable values — and
keeps it in a process-wide, thread-safe LRU store (``entries`` per name). Inputs whose names start with
``_`` (the model, the image, a map) reach ``fn`` without the underscore and are not keyed. A per-key lock
makes two sessions asking for one result at once compute it once. ``ENGINE_CALLS[name]`` counts misses
only, so tests can prove that a widget did not recompute. Results are shared, never copied: read-only.

Unlike ``st.cache_data`` nothing is replayed on a hit, so ``fn`` may draw (the Occlusion page's coarse
map) through the ``progress`` callback it gets when ``bar`` is given.
"""
from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st
import torch

from cam_core.explanation import Explanation

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .state import Context

#: How many times each engine entry point really ran (a cache hit does not count).
ENGINE_CALLS: Counter[str] = Counter()
#: Results kept per name unless ``cached(entries=)`` says otherwise.
ENTRIES = 64

Key = tuple[Any, ...]


class Store:
    """LRU results per name behind one lock, with a lock per key while its result is being computed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, OrderedDict[Key, Any]] = {}
        self._computing: dict[Key, list[Any]] = {}  # key → [lock, how many threads hold or wait for it]

    def get(self, name: str, key: Key) -> tuple[bool, Any]:
        """(found, value), marking the entry as just used."""
        with self._lock:
            values = self._values.get(name)
            if values is None or key not in values:
                return False, None
            values.move_to_end(key)
            return True, values[key]

    def put(self, name: str, key: Key, value: Any, entries: int = ENTRIES) -> None:
        """Keep ``value``; the least recently used entries of ``name`` beyond ``entries`` are dropped."""
        with self._lock:
            values = self._values.setdefault(name, OrderedDict())
            values[key] = value
            values.move_to_end(key)
            while len(values) > max(1, int(entries)):
                values.popitem(last=False)

    def compute(self, name: str, key: Key, make: Callable[[], Any], entries: int = ENTRIES) -> Any:
        """The stored value of ``key``, or ``make()`` run once (other threads asking meanwhile wait for it).

        A ``make`` that raises stores nothing: the next caller tries again.
        """
        found, value = self.get(name, key)
        if found:
            return value
        with self._lock:
            slot = self._computing.setdefault(key, [threading.Lock(), 0])
            slot[1] += 1
        try:
            with slot[0]:
                found, value = self.get(name, key)
                if found:
                    return value
                with self._lock:
                    ENGINE_CALLS[name] += 1
                value = make()
                self.put(name, key, value, entries)
                return value
        finally:
            with self._lock:
                slot[1] -= 1
                if slot[1] == 0:
                    self._computing.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


STORE = Store()


def digest(a: Any) -> str:
    """A short content hash of an array or tensor (its bytes, shape and dtype)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.ascontiguousarray(a)
    h = hashlib.blake2b(a.tobytes(), digest_size=12)
    h.update(repr((a.shape, str(a.dtype))).encode())
    return h.hexdigest()


def map_key(exp: Explanation) -> Key:
    """An explanation's identity: what it explains and a digest of its heat map."""
    return (exp.method, exp.class_idx, exp.layer, exp.channel, tuple(np.shape(exp.heatmap)), digest(exp.heatmap))


def freeze(value: Any) -> Any:
    """A hashable stand-in for an input: dicts sorted, lists as tuples, arrays and maps by content.

    Anything else that is not hashable raises ``TypeError`` (pass it as ``_name`` and key what it depends on).
    """
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(freeze(v) for v in value))
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return ("array", digest(value))
    if isinstance(value, Explanation):
        return ("map", *map_key(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    hash(value)  # raises TypeError for an unhashable input
    return value


def key_of(ctx: "Context | None", name: str, /, image: bool = True, **inputs: Any) -> Key:
    """The store's key of ``name`` for ``inputs`` (``_``-prefixed ones left out) on the context's model,
    device and (when ``image``) image."""
    where: tuple[Any, ...] = ()
    if ctx is not None:
        digest_ = ctx.image.digest if image and ctx.image is not None else None
        where = (ctx.model_key, str(ctx.device), digest_)
    keyed = tuple(sorted((k, freeze(v)) for k, v in inputs.items() if not k.startswith("_")))
    return (name, *where, keyed)


def _arguments(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k.lstrip("_"): v for k, v in inputs.items()}


def cached(ctx: "Context | None", name: str, fn: Callable[..., Any], /, *, bar: str | None = None,
           expected: str | Callable[[], str] | None = None, image: bool = True, entries: int = ENTRIES,
           **inputs: Any) -> Any:
    """``fn(**inputs)`` computed once per key (see ``key_of``) and kept; ``ENGINE_CALLS[name]`` counts runs.

    With ``bar`` (e.g. "Occlusion"), a miss shows one progress bar ("Occlusion (about 12 s): 3 of 40") and
    ``fn`` gets ``progress=(done, total)``; ``expected`` is the time text, or a callable only a miss pays for.
    The bar is gone when ``fn`` returns or raises. ``image=False`` leaves the image out of the key. The
    option names (``bar``, ``expected``, ``image``, ``entries``) cannot be inputs.
    """
    key = key_of(ctx, name, image, **inputs)
    args = _arguments(inputs)

    def make() -> Any:
        if bar is None:
            return fn(**args)
        about = expected() if callable(expected) else expected
        label = f"{bar} ({about})" if about else bar
        widget = st.progress(0.0, text=f"{label}: starting…")

        def progress(done: int, total: int) -> None:
            if total > 0:
                widget.progress(min(done / total, 1.0), text=f"{label}: {done} of {total}")

        try:
            return fn(**args, progress=progress)
        finally:
            widget.empty()

    return STORE.compute(name, key, make, entries)


def peek(ctx: "Context | None", name: str, /, image: bool = True, **inputs: Any) -> Any | None:
    """The stored result of ``name`` for ``inputs``, or ``None``; never computes."""
    return STORE.get(name, key_of(ctx, name, image, **inputs))[1]


def keep(ctx: "Context | None", name: str, value: Any, /, image: bool = True, entries: int = ENTRIES,
         **inputs: Any) -> None:
    """Store ``value`` as the result of ``name`` for ``inputs`` (e.g. a result that serves every class)."""
    STORE.put(name, key_of(ctx, name, image, **inputs), value, entries)


def clear() -> None:
    """Empty the store and reset ``ENGINE_CALLS`` (tests start from a clean slate)."""
    STORE.clear()
    ENGINE_CALLS.clear()
