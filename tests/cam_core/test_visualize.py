"""Feature visualization on the embedded Lite0: the optimised image beats every real photo on its own channel,
a seed reproduces it, and the model is left exactly as it was."""
import numpy as np
import pytest
import torch
from PIL import Image

import models
from cam_core import CamError
from cam_core.visualize import visualize
from ui.samples import SAMPLES, sample_png

LAYER = "blocks.3"
STEPS, SIZE = 48, 96


@pytest.fixture(scope="module")
def lite0():
    return models.load("efficientnet_lite0")


def _channel_means(model, layer, x):
    """Mean of every channel of ``layer`` for the batch ``x`` — a plain forward hook, not the project's recorder."""
    kept = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: kept.setdefault("out", out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return kept["out"].mean(dim=(2, 3))[0]


@pytest.fixture(scope="module")
def photo_means(lite0):
    import io
    photos = [Image.open(io.BytesIO(sample_png(name))).convert("RGB") for name in SAMPLES]
    return torch.stack([_channel_means(lite0.model, LAYER, lite0.preprocess(p)) for p in photos])


def _normalized(backbone, image: np.ndarray) -> torch.Tensor:
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    mean = torch.tensor(backbone.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(backbone.spec.std).view(1, 3, 1, 1)
    return (pixels - mean) / std


def _state(model):
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
    return hooks, model.training, [p.requires_grad for p in model.parameters()], \
        [p.grad is None for p in model.parameters()]


@pytest.mark.parametrize("channel", [0, 7, 21])
def test_the_visualization_activates_its_channel_more_than_every_photo(lite0, photo_means, channel):
    before = _state(lite0.model)
    weights = [p.detach().clone() for p in lite0.model.parameters()]
    result = visualize(lite0.model, LAYER, channel, steps=STEPS, size=SIZE, seed=1,
                       mean=lite0.spec.mean, std=lite0.spec.std)
    assert _state(lite0.model) == before
    assert all(torch.equal(a, b) for a, b in zip(weights, lite0.model.parameters()))
    assert result.image.shape == (SIZE, SIZE, 3) and result.image.dtype == np.uint8
    assert len(result.curve) == STEPS
    own = float(_channel_means(lite0.model, LAYER, _normalized(lite0, result.image))[channel])
    assert own == pytest.approx(result.activation, rel=0.05, abs=0.05)  # the reported value is the image's
    assert own > float(photo_means[:, channel].max())


def test_a_seed_reproduces_the_image_and_another_seed_does_not(lite0):
    run = lambda seed: visualize(lite0.model, LAYER, 5, steps=6, size=48, seed=seed,
                                 mean=lite0.spec.mean, std=lite0.spec.std)
    first, again, other = run(3), run(3), run(4)
    assert np.array_equal(first.image, again.image) and first.curve == again.curve
    assert not np.array_equal(first.image, other.image)


def test_a_class_objective_raises_its_logit(lite0):
    result = visualize(lite0.model, class_idx=285, steps=8, size=64, seed=0,
                       mean=lite0.spec.mean, std=lite0.spec.std)
    with torch.no_grad():
        logits = lite0.model(_normalized(lite0, result.image))
    start = visualize(lite0.model, class_idx=285, steps=1, size=64, seed=0, mean=lite0.spec.mean, std=lite0.spec.std)
    assert float(logits[0, 285]) > start.curve[0]


def test_errors_and_an_error_half_way_leave_the_model_as_it_was(lite0):
    before = _state(lite0.model)
    with pytest.raises(CamError, match="channel 9999"):
        visualize(lite0.model, LAYER, 9999, steps=2, size=32)
    with pytest.raises(CamError, match="either a channel"):
        visualize(lite0.model, LAYER, 1, class_idx=3, steps=2, size=32)
    with pytest.raises(CamError, match="no layer"):
        visualize(lite0.model, "nowhere", 1, steps=2, size=32)
    assert _state(lite0.model) == before
