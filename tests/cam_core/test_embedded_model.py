"""On the embedded EfficientNet-Lite0 and a real photo, the maps point at the object."""
import numpy as np
import pytest
from skimage import data
from PIL import Image

import models
from cam_core import explain


@pytest.fixture(scope="module")
def lite0_on_chelsea():
    backbone = models.load("efficientnet_lite0")
    image = Image.fromarray(data.chelsea())  # 451×300, a cat's face filling the left ~85%
    return backbone, image, backbone.preprocess(image)


def _in_image_coords(heatmap: np.ndarray, image: Image.Image) -> tuple[float, float]:
    row, col = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    return (row + 0.5) * image.height / heatmap.shape[0], (col + 0.5) * image.width / heatmap.shape[1]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "cam"])
def test_peak_lies_on_the_cat(lite0_on_chelsea, method):
    """The cat's face spans x ∈ [40, 380], y ∈ [20, 300] of chelsea(); the right edge (x > 400) is background."""
    backbone, image, x = lite0_on_chelsea
    result = explain(backbone.model, x, method, target_layer=backbone.spec.default_layer)
    assert 281 <= result.class_idx <= 285  # a cat class
    y, x_pos = _in_image_coords(result.heatmap, image)
    assert 40 <= x_pos <= 380 and 20 <= y <= 300
    cols = result.heatmap.shape[1]
    face = result.heatmap[:, int(cols * 100 / 451):int(cols * 350 / 451)].mean()
    background = result.heatmap[:, int(cols * 410 / 451):].mean()
    assert face > 2 * background


def test_cam_and_gradcam_agree_on_the_gap_fc_head(lite0_on_chelsea):
    backbone, _, x = lite0_on_chelsea
    cam = explain(backbone.model, x, "cam", target_layer="bn2", target_class=285)
    grad_cam = explain(backbone.model, x, "gradcam", target_layer="bn2", target_class=285)
    z = cam.raw.size
    assert grad_cam.raw == pytest.approx(cam.raw / z, rel=1e-3, abs=1e-5)


def test_guided_backprop_on_relu6_network_is_not_plain_gradients(lite0_on_chelsea):
    backbone, _, x = lite0_on_chelsea
    guided = explain(backbone.model, x, "guided_backprop", target_class=285)
    plain = explain(backbone.model, x, "saliency", target_class=285)
    assert np.isfinite(guided.gradient).all() and guided.heatmap.max() == pytest.approx(1.0)
    assert not np.allclose(guided.gradient, plain.gradient)


@pytest.mark.slow
def test_integrated_gradients_meets_completeness_at_its_defaults(lite0_on_chelsea):
    """Σ attr = y(x) − y(x'), x' the dataset mean (0): at the registry's defaults (64 gradient evaluations)
    within 5 % on a real photo, where 64 equal steps miss by 20 % (docs/benchmarks.md)."""
    backbone, _, x = lite0_on_chelsea
    result = explain(backbone.model, x, "integrated_gradients")
    difference = result.extras["score_difference"]
    assert result.extras["steps"] <= 64
    assert abs(float(result.gradient.astype(np.float64).sum()) - difference) <= 0.05 * abs(difference)
