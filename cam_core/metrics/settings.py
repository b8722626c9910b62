"""The metrics' settings: every keyword ``evaluate`` accepts, its default and range, declared once here.

``MetricSpec.settings`` (``specs.py``) names which of them each metric reads; the UI and the CLI build their
widgets and flags from this table, and ``resolve_settings`` refuses any name that is not in it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import CamError
from ..registry import ParamSpec

ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

SETTINGS: dict[str, ParamSpec] = {
    "steps": ParamSpec(int, 28, "deletion/insertion: equal steps of ceil(H·W/steps) pixels", 1, 100_000, 1),
    "deletion_fill": ParamSpec(object, 0.0, "deletion: value of a removed pixel in the model's normalized space "
                                             "(one number, or one per channel; 0 = the dataset mean)"),
    "blur_size": ParamSpec(int, 11, "insertion: side of the Gaussian blur kernel in pixels (odd)", 1, 255, 2),
    "blur_sigma": ParamSpec(float, 5.0, "insertion: σ of the Gaussian blur in pixels", 0.01, 100.0, 0.1),
    "fractions": ParamSpec(object, ROAD_FRACTIONS, "ROAD: fractions of the pixels REMOVED, each in [0, 1)"),
    "road_noise": ParamSpec(float, 0.01, "ROAD: σ of the noise added to imputed pixels, on [0, 1] pixels",
                            0.0, 1.0, 0.001),
    "pixel_std": ParamSpec(object, 1.0, "ROAD: the model's normalization std (one number or one per channel); "
                                        "the noise in normalized space is road_noise / pixel_std"),
    "seed": ParamSpec(int, 0, "ROAD: seed of the noise and of the tie-breaking order", 0, 2**31 - 1, 1),
    "box": ParamSpec(object, None, "pointing game / energy-in-box: the object's box (x0, y0, x1, y1) in x's pixels"),
    "tolerance": ParamSpec(float, 15.0, "pointing game: a hit may miss the box by this many pixels", 0.0, 1e6, 1.0),
    "chunk": ParamSpec(int, None, "perturbed copies run per batch (default: learned for the model and device)",
                       1, 1024),
}


def resolve_settings(given: dict[str, Any]) -> dict[str, Any]:
    """Every setting, defaults filled in, values type- and range-checked; an unknown name is a ``CamError``."""
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise CamError(f"evaluate has no setting {', '.join(unknown)} (it takes: {', '.join(SETTINGS)})")
    return {name: spec.parse(name, given.get(name, spec.default)) for name, spec in SETTINGS.items()}


def per_channel(name: str, value: Any, channels: int) -> list[float]:
    """A setting that is one number or one number per channel, as ``channels`` finite floats."""
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise CamError(f"setting {name!r} must be a number or {channels} numbers, got {value!r}") from None
    if len(numbers) == 1:
        numbers = numbers * channels
    if len(numbers) != channels:
        raise CamError(f"setting {name!r} needs 1 or {channels} values (one per channel), got {len(numbers)}")
    if not all(abs(v) < float("inf") for v in numbers):
        raise CamError(f"setting {name!r} must be finite, got {value!r}")
    return numbers
