"""Audit progress in work units: the pass reports its work many times within one batch (per image, per method,
per chunk of deletion/insertion), and the units it reports are the images the model actually ran (counted by a
forward hook) — which is also what ``Scanner.cost`` announced beforehand."""
from __future__ import annotations

import json

import torch

from cam_core.audit.engine_local import LocalEngine
from cam_core.audit.inputs import InputItem
from cam_core.audit.job import AuditJob, run_audit
from cam_core.audit.progress import PROGRESS
from cam_core.audit.scan import Prepared, ScanSettings, Scanner
from tests.cam_core.nets import GapNet, seeded

CATS = ["a", "b", "c", "d", "e"]
SETTINGS = ScanSettings("conv2", {"gradcam": {}, "saliency": {}}, ("deletion", "insertion"), baseline=2)


def _model() -> GapNet:
    return seeded(GapNet(classes=5)).float().eval()


def _batch(n: int, seed: int = 0) -> list[Prepared]:
    g = torch.Generator().manual_seed(seed)
    return [Prepared(i, InputItem(f"/nowhere/{i}.png", f"{i}.png", None, None, None),
                     torch.randn(1, 3, 24, 24, generator=g), 24, 24) for i in range(n)]


def _images_run(model: torch.nn.Module) -> tuple[list[int], object]:
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[0])))
    return seen, handle


def test_work_is_reported_within_a_batch_and_counts_the_model_runs():
    model = _model()
    batch = _batch(3)
    reported: list[float] = []
    scanner = Scanner(model, CATS, SETTINGS, work=reported.append)
    cost = scanner.cost(batch[0].x)
    seen, handle = _images_run(model)
    try:
        scanner.rows(batch)
    finally:
        handle.remove()
    assert len(reported) > len(batch)  # far more often than once per batch: pass, methods, each curve's chunks
    assert sum(reported) == sum(seen)  # the units are the images the model ran
    assert cost.units * len(batch) == sum(seen)  # and the announced cost is what it took
    assert cost.baseline > 0 and cost.methods["gradcam"] == 0  # gradcam rides on the shared pass


def test_run_audit_calls_progress_within_a_part_and_writes_progress_json(tmp_path):
    model = _model()
    batch = _batch(4, seed=1)
    items = [p.item for p in batch]
    xs = {p.item.path: p.x for p in batch}

    job = AuditJob(items, CATS, SETTINGS, preprocess=None, batch=4)  # one batch: one part (the engine below
    # takes the tensors as they are: no decoding)
    states = []

    class Engine(LocalEngine):
        def __call__(self, job, todo, work=None):
            scanner = Scanner(self.model, job.categories, job.settings, work=work)
            yield scanner.rows([Prepared(i, items[i], xs[items[i].path], 24, 24) for i in todo])

    per_image = Scanner(model, CATS, SETTINGS).cost(batch[0].x).units
    run_audit(tmp_path / "a", job, {"model": "gapnet", "layer": "conv2", "methods": SETTINGS.methods,
                                           "metrics": list(SETTINGS.metrics), "baseline": 2}, Engine(model), states.append,
              per_image=per_image)
    within = [s for s in states if not s.part and s.written == 0 and s.images > 0]
    assert len(within) > 1  # the progress moved more than once inside the one batch
    images = [s.images for s in states]
    assert images == sorted(images) and images[-1] == 4 and all(s.images <= 4 for s in states)
    assert states[-1].part and states[-1].left_s == 0
    saved = json.loads((tmp_path / "a" / PROGRESS).read_text())
    assert saved["written"] == 4 and saved["todo"] == 4
