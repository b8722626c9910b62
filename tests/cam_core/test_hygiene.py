"""The model is borrowed, never changed: hooks, flags, requires_grad, .grad — and safe across threads."""
import threading

import pytest
import torch
import torchvision
from torch import nn

from cam_core import METHODS, CamError, explain, layers

from .nets import GapNet, seeded

X = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
FAST = {"smoothgrad": {"samples": 2}, "occlusion": {"patch": 8, "stride": 8}}
# Attention methods refuse CNNs (no attention layers); their hygiene is checked on a ViT in test_transformers.py.
CNN_METHODS = [name for name, spec in METHODS.items() if spec.kind != "attention"]


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())


def _state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()])


def test_no_hooks_grads_or_flag_changes_after_100_calls_of_every_method_errors_included():
    net = seeded(GapNet())
    net.train()
    net.conv1.eval()  # mixed flags must come back exactly
    net.conv1.weight.requires_grad_(False)
    before = _state(net)
    for i in range(100):
        for name in CNN_METHODS:
            explain(net, X, name, target_layer="relu2", target_class=i % 5, **FAST.get(name, {}))
        with pytest.raises(CamError):  # an error half-way, after hooks are attached
            explain(net, X, "gradcam", target_layer="relu2", target_class=50)
        with pytest.raises(CamError):
            explain(net, X, "cam", target_layer="conv1")
    assert _hooks(net) == 0
    assert _state(net) == before
    assert all(p.grad is None for p in net.parameters())
    assert torch.is_grad_enabled()


def test_an_exception_inside_the_forward_leaves_nothing_behind():
    net = seeded(GapNet())

    class Boom(RuntimeError):
        pass

    def explode(*_):
        raise Boom("user model failed")

    handle = net.fc.register_forward_hook(explode)
    for name in CNN_METHODS:
        with pytest.raises(Boom):
            explain(net, X, name, target_layer="relu2", **FAST.get(name, {}))
    handle.remove()
    assert _hooks(net) == 0 and not net.training and torch.is_grad_enabled()


def test_grad_mode_of_the_caller_is_kept():
    net = seeded(GapNet())
    with torch.no_grad():
        result = explain(net, X, "gradcam", target_layer="relu2")
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        again = explain(net, X, "gradcam", target_layer="relu2")
    assert result.raw == pytest.approx(again.raw)


def test_eval_mode_is_used_even_for_a_model_left_in_train_mode():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=6).train()
    x = torch.randn(1, 3, 64, 64)
    first = explain(net, x, "gradcam", target_class=1)
    second = explain(net, x, "gradcam", target_class=1)
    assert net.training and first.raw == pytest.approx(second.raw, abs=1e-6)


def test_eight_threads_on_one_model_get_the_sequential_maps():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=8).eval()
    x = torch.randn(1, 3, 64, 64)
    jobs = [(m, c) for c in range(8) for m in ("gradcam", "guided_backprop", "gradcam++", "saliency")]
    alone = {job: explain(net, x, job[0], target_class=job[1]) for job in jobs}
    together: dict = {}
    errors: list = []
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for _ in range(2):
                for job in jobs[worker::8]:
                    together[job] = explain(net, x, job[0], target_class=job[1])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for job in jobs:
        assert together[job].class_idx == job[1]
        assert together[job].raw == pytest.approx(alone[job].raw, rel=1e-4, abs=1e-6), job
    assert _hooks(net) == 0 and all(p.grad is None for p in net.parameters())


def test_in_place_relu_models_from_torchvision_give_finite_maps_for_every_method():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.randn(1, 3, 64, 64)
    for name in CNN_METHODS:
        result = explain(net, x, name, **FAST.get(name, {}))
        assert result.heatmap.shape == (64, 64)
        assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
    assert _hooks(net) == 0


def test_layers_lists_spatial_layers_with_shapes():
    net = seeded(GapNet())
    found = {info.name: info.shape for info in layers(net, X)}
    assert found["conv1"] == (6, 16, 16) and found["relu2"] == (8, 8, 8) and "fc" not in found


class PausingNet(GapNet):
    """GapNet whose forward, while torch.fx traces it, calls ``pause()`` (a test's chance to act mid-trace)."""

    def __init__(self) -> None:
        super().__init__()
        self.pause = lambda: None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.fx.Proxy):
            self.pause()
        return super().forward(x)


def _in_thread(fn):
    """Start ``fn`` in a thread; ``join()`` returns its result or raises its exception."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # pragma: no cover - re-raised in join
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join(timeout=60)
        assert not thread.is_alive()
        if "error" in box:
            raise box["error"]
        return box.get("value")
    return join


def test_other_threads_forwards_are_untouched_while_occlusion_traces_the_model():
    # fx patches nn.Module.__call__/__getattr__ for the whole process while it traces: another session's
    # forward (on the same model or any other) used to become part of the trace (NameError, proxies).
    net, other = seeded(PausingNet()), seeded(GapNet())
    expected = [explain(m, X, "gradcam", target_layer="relu2", target_class=1).raw for m in (net, other)]
    full = explain(net, X, "occlusion", target_class=1, patch=8, stride=8, engine="full").raw
    tracing, release = threading.Event(), threading.Event()

    def pause() -> None:
        tracing.set()
        assert release.wait(timeout=30)

    net.pause = pause
    call, getattr_ = nn.Module.__call__, nn.Module.__getattr__
    occlusion = _in_thread(lambda: explain(net, X, "occlusion", target_class=1, patch=8, stride=8).raw)
    try:
        assert tracing.wait(timeout=30)
        during = [explain(m, X, "gradcam", target_layer="relu2", target_class=1).raw for m in (net, other)]
    finally:
        release.set()
    assert occlusion() == pytest.approx(full, abs=1e-12)
    for got, want in zip(during, expected):
        assert got == pytest.approx(want, abs=1e-12)
    assert nn.Module.__call__ is call and nn.Module.__getattr__ is getattr_
    assert _hooks(net) == 0 and _hooks(other) == 0


def test_two_traces_at_once_leave_nn_module_as_it_was():
    # fx undoes its patches in order: two interleaved traces used to leave nn.Module.__call__ patched for good.
    from cam_core.incremental.plan import trace

    first, second = seeded(PausingNet()), seeded(PausingNet())
    second_tracing, first_done = threading.Event(), threading.Event()
    first.pause = lambda: second_tracing.wait(timeout=0.5)  # serialised traces: the second never starts here
    second.pause = lambda: (second_tracing.set(), first_done.wait(timeout=30))
    call = nn.Module.__call__
    try:
        def trace_first():
            try:
                return trace(first)
            finally:
                first_done.set()

        join_first = _in_thread(trace_first)
        join_second = _in_thread(lambda: trace(second))
        graphs = join_first(), join_second()
        assert nn.Module.__call__ is call
    finally:
        nn.Module.__call__ = call  # never leave the rest of the session patched
    assert all(g is not None for g in graphs)
    assert torch.equal(graphs[0](X), first(X)) and torch.equal(graphs[1](X), second(X))


def test_sanity_check_copies_the_model_without_another_threads_hooks():
    # deepcopy of a shared model used to carry another session's thread-scoped hooks into the private copy
    # (and iterate their dicts while that session removed them).
    from cam_core import sanity_check
    from cam_core.hygiene import thread_hooks
    from cam_core.sanity.check import _copy

    net = seeded(GapNet())
    mine = net.conv1.register_forward_hook(lambda m, i, o: None)  # the user's own hook is copied
    alone = sanity_check(net, X, "gradcam", 1, target_layer="relu2")
    hooked, release = threading.Event(), threading.Event()

    def hold_hooks() -> None:
        with thread_hooks() as add:
            add(net.relu2, lambda *_: None)
            add(net.conv2, lambda *_: None, kind="forward_pre")
            hooked.set()
            assert release.wait(timeout=30)

    join = _in_thread(hold_hooks)
    try:
        assert hooked.wait(timeout=30)
        twin = _copy(net)
        during = sanity_check(net, X, "gradcam", 1, target_layer="relu2")
    finally:
        release.set()
    join()
    assert len(twin.conv1._forward_hooks) == 1
    assert not twin.relu2._forward_hooks and not twin.conv2._forward_pre_hooks
    assert during.rhos == pytest.approx(alone.rhos) and during.original == pytest.approx(alone.original)
    mine.remove()
    assert _hooks(net) == 0
