"""The method registry: one entry per method, parameters validated before any work starts."""
import numpy as np
import pytest
import torch
from torchvision.models import VisionTransformer

from cam_core import METHODS, CamError, explain, get_method

from .nets import GapNet, seeded


CHEAP = {"samples": 2, "masks": 8, "steps": 4, "patch": 8, "stride": 8, "max_channels": 4}  # by parameter name
X = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)


def _tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32,
                              num_classes=5)
    torch.nn.init.normal_(model.heads.head.weight)
    return model.double().eval()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_runs_on_a_tiny_net_and_leaves_it_as_it_was(name):
    """Each entry of METHODS (whatever it is called): documented, its defaults valid, a [0, 1] map at the input's
    size, a layer exactly when its method object needs one, the model untouched."""
    spec = METHODS[name]
    assert spec.name == name and get_method(name) is spec and all(get_method(a) is spec for a in spec.aliases)
    assert spec.display and spec.citation and spec.formula and spec.summary and spec.paper_url.startswith("https://")
    attention = spec.kind == "attention"
    net, x = (_tiny_vit(), torch.randn(1, 3, 32, 32, dtype=torch.float64)) if attention else (seeded(GapNet()), X)
    params = {k: v for k, v in CHEAP.items() if k in spec.params}
    assert set(spec.resolve_params(params)) == set(spec.params)  # defaults fill in and pass their own ranges
    before = [p.requires_grad for p in net.parameters()], [m.training for m in net.modules()]
    layer = None if attention or not spec.needs_layer else "relu2"
    got = explain(net, x, name, target_layer=layer, target_class=1, **params)
    assert got.method == name and got.heatmap.shape == tuple(x.shape[-2:])
    assert np.isfinite(got.heatmap).all() and 0 <= got.heatmap.min() and got.heatmap.max() <= 1
    assert (got.layer is not None) == spec.needs_layer
    assert ([p.requires_grad for p in net.parameters()], [m.training for m in net.modules()]) == before
    assert all(p.grad is None for p in net.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in net.modules())


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
