"""The method registry: one entry per method, parameters validated before any work starts."""
import pytest

from cam_core import METHODS, CamError, get_method


def test_every_seed_method_is_registered_once_with_citation_and_formula():
    expected = {"cam", "gradcam", "gradcam++", "saliency", "smoothgrad", "guided_backprop", "deconvnet",
                "guided_gradcam", "occlusion", "scorecam", "ablationcam", "layercam", "xgradcam", "hirescam",
                "eigencam", "smoothgradcam++", "integrated_gradients", "rise", "attention_rollout",
                "transformer_attribution"}
    assert set(METHODS) == expected
    for name, spec in METHODS.items():
        assert spec.name == name and spec.citation and spec.formula and spec.paper_url.startswith("https://")


def test_parameters_are_filled_range_checked_and_unknown_ones_refused():
    spec = get_method("smoothgrad")
    assert spec.resolve_params({})["samples"] == 25
    assert spec.resolve_params({"samples": "10", "squared": "yes"})["squared"] is True
    for bad in ({"samples": 0}, {"noise": 2.0}, {"squared": "maybe"}, {"patch": 3}):
        with pytest.raises(CamError):
            spec.resolve_params(bad)
    assert get_method("Grad-CAM-PP").name == "gradcam++" and get_method("ig").name == "integrated_gradients"
    with pytest.raises(CamError, match="must be one of"):
        get_method("integrated_gradients").resolve_params({"baseline": "noise"})
    with pytest.raises(CamError, match="unknown method"):
        get_method("magic")
