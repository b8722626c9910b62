"""The Ray Data engine (Ray started in-process on 2 CPUs; its default: one model actor on both CPUs) writes the same
rows as the local engine: same columns, same predictions and errors, maps within 1e-5. Real skimage photos and a corrupt file; a tiny hand-built net
the actors build themselves (module-level loader and preprocessing: what Ray pickles)."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from skimage import data

from cam_core.audit.engine_local import LocalEngine
from cam_core.audit.inputs import read_inputs
from cam_core.audit.job import AuditJob, run_audit
from cam_core.audit.scan import ScanSettings
from cam_core.audit.store import open_audit, part_files
from tests.cam_core.nets import GapNet, seeded

pytestmark = pytest.mark.ray
CATS = ["astronaut", "cat", "coffee", "rocket", "camera"]
MANIFEST = {"model": "gapnet", "weights_sha256": "0" * 64, "input_size": 32, "layer": "conv2",
            "metrics": [], "baseline": 0, "inputs_sha256": "1" * 64}


def tiny_model(device: str) -> torch.nn.Module:
    return seeded(GapNet(classes=len(CATS))).float().to(device)


def small_input(image: Image.Image) -> torch.Tensor:
    """Short side 32 px, aspect kept (so inputs differ in shape), centred values."""
    w, h = image.size
    size = (32, max(8, round(32 * h / w))) if w <= h else (max(8, round(32 * w / h)), 32)
    pixels = np.asarray(image.resize(size), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()


def test_ray_rows_equal_local_rows(tmp_path):
    ray = pytest.importorskip("ray")
    from cam_core.audit.engine_ray import RayEngine

    root = tmp_path / "set"
    for label, photo in (("astronaut", data.astronaut()), ("cat", data.chelsea()), ("coffee", data.coffee()),
                         ("rocket", data.rocket()), ("cat", data.chelsea()[:, ::-1])):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(photo)).resize((photo.shape[1] // 4, photo.shape[0] // 4)).save(
            root / label / f"{len(list((root / label).iterdir()))}.png")
    (root / "coffee" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    inputs = read_inputs(root, CATS)
    methods = {"gradcam": {}, "eigencam": {}, "saliency": {}}
    job = AuditJob(inputs.items, CATS, ScanSettings("conv2", methods), small_input, batch=2)

    local = run_audit(tmp_path / "local", job, {**MANIFEST, "methods": methods}, LocalEngine(tiny_model("cpu")))
    remote = run_audit(tmp_path / "ray", job, {**MANIFEST, "methods": methods},
                       RayEngine(tiny_model, "cpu", num_cpus=2))
    assert not ray.is_initialized()  # started in-process, so shut down again
    assert remote["engine"] == "ray" and local["counts"] == remote["counts"]
    assert local["counts"]["done"] == 6 and local["counts"]["errors"] == 1

    sizes = {name: [pq.read_metadata(f).num_rows for f in part_files(tmp_path / name)] for name in ("local", "ray")}
    assert sizes["ray"] == sizes["local"] == [2, 2, 2]  # a part is one batch, on either engine
    query = 'SELECT * FROM rows ORDER BY "index"'
    a, b = open_audit(tmp_path / "local").sql(query).to_pylist(), open_audit(tmp_path / "ray").sql(query).to_pylist()
    assert len(a) == len(b) == 6
    for ra, rb in zip(a, b):
        for key, value in ra.items():
            if key.endswith("__seconds"):
                continue
            if key.endswith("__map") and value is not None:
                scale = max(float(np.abs(value).max()), 1e-12)
                np.testing.assert_allclose(np.asarray(rb[key]) / scale, np.asarray(value) / scale, atol=1e-5)
            elif key in ("confidence", "top5_prob") and value is not None:
                np.testing.assert_allclose(rb[key], value, atol=1e-6)
            else:
                assert rb[key] == value, key


def test_plan_shares_the_cpus_and_gpus():
    pytest.importorskip("ray")
    from cam_core.audit.engine_ray import CLUSTER_ACTORS, plan

    assert plan(2, 0, None, in_process=True) == (1, 2, 0)  # one actor on both CPUs: one model load
    assert plan(8, 0, 4, in_process=True) == (4, 2, 0)
    assert plan(2, 0, 5, in_process=True) == (2, 1, 0)  # never more actors than CPUs
    assert plan(16, 2, None, in_process=True) == (2, 8, 1)  # one per GPU
    assert plan(16, 2, 6, in_process=False) == (2, 1, 1)
    assert plan(64, 0, None, in_process=False) == (CLUSTER_ACTORS, 1, 0)
