"""Choose where the model runs (CUDA, then Apple MPS, then CPU) and describe it in words for the user."""
from __future__ import annotations

import torch

from cam_core.errors import CamError

PREFERENCES = ("auto", "cuda", "mps", "cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(preference: str | torch.device = "auto") -> torch.device:
    """Return the device for ``preference``: "auto" (CUDA, then MPS, then CPU), "cuda", "cuda:N", "mps" or "cpu".

    An explicit accelerator that is not available raises ``CamError`` rather than silently using the CPU.
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    choice = (preference or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise CamError(f"device {preference!r}: unknown; choose one of {', '.join(PREFERENCES)}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CamError(f"device {preference!r}: CUDA is not available on this machine (use 'auto' or 'cpu')")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CamError(
                f"device {preference!r}: there are only {torch.cuda.device_count()} CUDA device(s) on this machine"
            )
        return device
    if device.type == "mps":
        if not _mps_available():
            raise CamError(f"device {preference!r}: Apple MPS is not available on this machine (use 'auto' or 'cpu')")
        return device
    raise CamError(f"device {preference!r}: unsupported; choose one of {', '.join(PREFERENCES)}")


def device_label(device: torch.device | str) -> str:
    """Describe ``device`` for people: "CUDA (NVIDIA H100 80GB HBM3)", "Apple MPS" or "CPU (2 threads)"."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return f"CUDA ({torch.cuda.get_device_name(device)})"
        except Exception:  # no driver at this moment; still say what was asked for
            return "CUDA"
    if device.type == "mps":
        return "Apple MPS"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"CPU ({threads} thread{'s' if threads != 1 else ''})"
    return device.type.upper()
