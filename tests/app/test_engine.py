"""ui.engine: results keyed by what they depend on, counted on misses only, computed once across threads."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from ui import engine
from ui.engine import ENGINE_CALLS, cached
from ui.state import Context, ImageRef


@pytest.fixture(autouse=True)
def _empty_store():
    engine.clear()
    yield
    engine.clear()


class _Backbone:
    """Just enough of ``models.Backbone`` for ``Context.x``: a preprocess that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        self.calls += 1
        return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def _image(name: str, value: int) -> ImageRef:
    img = Image.new("RGB", (4, 3), (value, value, value))
    return ImageRef(name, img, digest=f"digest-{value}", data=b"")


def _ctx(model: str = "m", image: ImageRef | None = None, device: str = "cpu", backbone=None) -> Context:
    return Context(model, backbone, torch.device(device), device, image or _image("a.png", 10))


def _double(value, scale=2):
    return value * scale


def test_same_inputs_hit_and_only_misses_count():
    ctx = _ctx()
    assert cached(ctx, "double", _double, value=3) == 6
    assert cached(_ctx(), "double", _double, value=3) == 6  # another Context of the same model and image
    assert ENGINE_CALLS["double"] == 1


@pytest.mark.parametrize("other", [
    dict(ctx=_ctx(model="m@320")),  # another model (or input size: it is in the model key)
    dict(ctx=_ctx(image=_image("b.png", 20))),  # another image
    dict(ctx=_ctx(device="meta")),  # another device
    dict(value=4),  # another input (e.g. layer)
    dict(name="triple"),  # another engine call
])
def test_anything_the_result_depends_on_misses(other):
    cached(_ctx(), "double", _double, value=3)
    args = dict(ctx=_ctx(), name="double", value=3) | other
    cached(args["ctx"], args["name"], _double, value=args["value"])
    assert sum(ENGINE_CALLS.values()) == 2


def test_underscored_inputs_reach_fn_but_are_not_keyed():
    ctx = _ctx()
    assert cached(ctx, "scaled", _double, value=3, _scale=10) == 30
    assert cached(ctx, "scaled", _double, value=3, _scale=99) == 30  # not keyed: the stored result
    assert ENGINE_CALLS["scaled"] == 1


def test_image_false_leaves_the_image_out_of_the_key():
    cached(_ctx(), "shape", _double, image=False, value=1)
    cached(_ctx(image=_image("b.png", 20)), "shape", _double, image=False, value=1)
    assert ENGINE_CALLS["shape"] == 1


def test_inputs_are_frozen_by_value():
    ctx = _ctx()
    first = cached(ctx, "params", lambda params, arr: len(params), params={"a": 1, "b": [2, 3]}, arr=np.ones(3))
    again = cached(ctx, "params", lambda params, arr: len(params), params={"b": (2, 3), "a": 1}, arr=np.ones(3))
    assert first == again == 2 and ENGINE_CALLS["params"] == 1
    cached(ctx, "params", lambda params, arr: len(params), params={"a": 1, "b": [2, 3]}, arr=np.zeros(3))
    assert ENGINE_CALLS["params"] == 2  # another array's content
    with pytest.raises(TypeError):
        cached(ctx, "params", lambda thing: 0, thing=bytearray(b"unhashable"))


def test_least_recently_used_entry_is_dropped():
    ctx = _ctx()
    for v in (1, 2, 1, 3):  # 1 is used again after 2, so 2 is the oldest when 3 comes
        cached(ctx, "lru", _double, entries=2, value=v)
    assert ENGINE_CALLS["lru"] == 3
    cached(ctx, "lru", _double, entries=2, value=1)
    assert ENGINE_CALLS["lru"] == 3
    cached(ctx, "lru", _double, entries=2, value=2)
    assert ENGINE_CALLS["lru"] == 4


def test_an_error_is_not_stored():
    ctx = _ctx()
    tries = []

    def flaky(value):
        tries.append(value)
        if len(tries) == 1:
            raise ValueError("first try fails")
        return value

    with pytest.raises(ValueError):
        cached(ctx, "flaky", flaky, value=1)
    assert cached(ctx, "flaky", flaky, value=1) == 1 and len(tries) == 2


def test_two_threads_asking_at_once_compute_once():
    ctx = _ctx()
    started, release = threading.Event(), threading.Event()
    runs = []

    def slow(value):
        runs.append(value)
        started.set()
        release.wait(5)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(cached(ctx, "slow", slow, value=1)))
               for _ in range(2)]
    threads[0].start()
    assert started.wait(5)
    threads[1].start()  # finds the first computing, and waits for it
    release.set()
    for t in threads:
        t.join(5)
    assert len(runs) == 1 and ENGINE_CALLS["slow"] == 1
    assert len(results) == 2 and results[0] is results[1]


def test_progress_is_passed_only_with_a_bar():
    ctx = _ctx()
    seen = {}

    def fn(value, progress=None):
        seen[value] = progress
        if progress is not None:
            progress(1, 2)
        return value

    cached(ctx, "bar", fn, value=1)
    cached(ctx, "bar", fn, bar="Occlusion", expected=lambda: "about 3 s", value=2)
    assert seen[1] is None and callable(seen[2])


def test_the_preprocessed_input_is_computed_once_per_image_and_model():
    backbone = _Backbone()
    image = _image("a.png", 10)
    x = _ctx(backbone=backbone, image=image).x
    assert x.shape == (1, 3, 3, 4)
    assert _ctx(backbone=backbone, image=image).x is x  # a new page run: the same tensor
    assert backbone.calls == 1
    _ctx(backbone=backbone, image=_image("b.png", 20)).x
    _ctx(model="m@320", backbone=backbone, image=image).x
    assert backbone.calls == 3
