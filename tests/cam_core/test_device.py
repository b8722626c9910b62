"""cam_core.device: explicit choices honoured or refused, labels readable."""
from __future__ import annotations

import pytest
import torch

from cam_core.device import device_label, pick_device
from cam_core.errors import CamError


def test_cpu_and_auto():
    assert pick_device("cpu") == torch.device("cpu")
    auto = pick_device()
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    elif torch.backends.mps.is_available():
        assert auto.type == "mps"
    else:
        assert auto.type == "cpu"
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda_is_refused():
    with pytest.raises(CamError, match="CUDA is not available"):
        pick_device("cuda")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_unavailable_mps_is_refused():
    with pytest.raises(CamError, match="MPS is not available"):
        pick_device("mps")


def test_unknown_device_is_refused():
    with pytest.raises(CamError, match="'tpu'"):
        pick_device("tpu")


def test_labels():
    threads = torch.get_num_threads()
    assert device_label(torch.device("cpu")) == f"CPU ({threads} thread{'s' if threads != 1 else ''})"
    assert device_label("mps") == "Apple MPS"
    if torch.cuda.is_available():
        assert device_label("cuda") == f"CUDA ({torch.cuda.get_device_name(0)})"
