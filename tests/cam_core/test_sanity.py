"""The model-parameter randomization check (Adebayo et al., NeurIPS 2018) — cam_core.sanity.

References are independent of the code under test: SciPy's spearmanr and scikit-image's SSIM for the measures,
a hand-computed Sobel response, analytic initialisation statistics, the architectures' known module names, and
the known outcomes of the paper on a small CNN trained here in seconds (Grad-CAM decorrelates when the weights
are randomized; guided backprop keeps drawing the input's edges).
"""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

import cam_core
from cam_core import CamError, SanityResult, explain, sanity_check
from cam_core.sanity import StageResult, average_ranks, edge_map, find_stages, randomize, spearman, ssim
from cam_core.sanity.check import CHANGED_BELOW as CHANGED
from cam_core.sanity.check import _verdict
from cam_core.sanity.stages import Stage

COLOURS = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])


class BlobNet(nn.Module):
    """Three conv+ReLU layers, global average pool, one linear layer: 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.relu2(self.conv2(self.pool1(self.relu1(self.conv1(x))))))
        return self.fc(self.pool(self.relu3(self.conv3(x))).flatten(1))


def blobs(n: int, generator: torch.Generator, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Black images with a big disc whose colour (red, green, blue) is the class, and two small discs of the
    other two colours: the class needs both colour and size, so a trained map points at one disc only."""
    cls = torch.randint(0, 3, (n,), generator=generator)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")

    def disc(radius: int) -> torch.Tensor:
        cy = torch.randint(radius + 1, size - radius - 1, (n,), generator=generator).float()
        cx = torch.randint(radius + 1, size - radius - 1, (n,), generator=generator).float()
        return (((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) <= radius ** 2).float()[:, None]

    x = torch.zeros(n, 3, size, size)
    for shift in (1, 2):
        mask = disc(3)
        x = x * (1 - mask) + mask * COLOURS[(cls + shift) % 3][:, :, None, None]
    mask = disc(5)
    x = x * (1 - mask) + mask * COLOURS[cls][:, :, None, None]
    return x, cls


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and far faster than several on a shared, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained() -> BlobNet:
    """BlobNet trained for 150 Adam steps (deterministic, a few seconds on one core)."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = BlobNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        x, y = blobs(32, generator)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    x, y = blobs(128, generator)
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    assert accuracy > 0.9, f"the test network did not learn ({accuracy:.2f})"
    return model


@pytest.fixture()
def untrained() -> BlobNet:
    torch.manual_seed(3)
    return BlobNet().eval()


def image(k: int) -> torch.Tensor:
    return blobs(1, torch.Generator().manual_seed(100 + k))[0]


# --- the measures -------------------------------------------------------------------------------------------

def test_spearman_matches_scipy_with_ties_and_signs() -> None:
    rng = np.random.default_rng(0)
    a = np.maximum(rng.normal(size=(20, 30)), 0)  # ReLU'd: a plateau of zeros, the usual case
    b = np.maximum(a + rng.normal(size=a.shape), 0)
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    signed = rng.normal(size=(15, 15)).round(1)  # many ties, both signs: ρ is of |map|
    other = rng.normal(size=(15, 15))
    expected = spearmanr(np.abs(signed).ravel(), np.abs(other).ravel())[0]
    assert spearman(signed, other) == pytest.approx(expected, abs=1e-12)
    assert spearman(a, 3 * a + 1) == pytest.approx(1.0)
    assert math.isnan(spearman(np.zeros((4, 4)), a[:4, :4]))


def test_average_ranks_share_ties() -> None:
    assert average_ranks(np.array([3.0, 1.0, 3.0, 0.0, 1.0])).tolist() == [4.5, 2.5, 4.5, 1.0, 2.5]


def test_ssim_matches_scikit_image() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((40, 52))
    b = np.clip(a + 0.3 * rng.normal(size=a.shape), 0, 1)
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)
    c = rng.random((9, 7))
    d = rng.random((9, 7))
    assert ssim(c, d) == pytest.approx(structural_similarity(c, d, data_range=1.0), abs=1e-9)


def test_edge_map_is_the_sobel_magnitude() -> None:
    x = torch.zeros(1, 3, 6, 8)
    x[..., 4:] = 2.0  # a vertical step of height 2 between columns 3 and 4
    edges = edge_map(x)
    # Sobel's horizontal kernel weighs the three rows 1, 2, 1: a step of 2 gives 4 · 2 at both columns beside it
    assert np.allclose(edges[:, 3], 8.0) and np.allclose(edges[:, 4], 8.0)
    assert np.allclose(np.delete(edges, [3, 4], axis=1), 0.0)


# --- stages ---------------------------------------------------------------------------------------------------

def test_stages_of_resnet_and_efficientnet_lite() -> None:
    torchvision = pytest.importorskip("torchvision")
    timm = pytest.importorskip("timm")
    x = torch.rand(1, 3, 64, 64)
    resnet, _ = find_stages(torchvision.models.resnet18(num_classes=10), x)
    assert [s.name for s in resnet] == ["fc", "layer4", "layer3", "layer2", "layer1", "conv1+bn1"]
    lite, classes = find_stages(timm.create_model("tf_efficientnet_lite0", num_classes=7), x)
    assert classes == 7
    assert [s.name for s in lite] == ["classifier", "conv_head+bn2", *[f"blocks.{i}" for i in range(6, -1, -1)],
                                      "conv_stem+bn1"]


class Shuffled(nn.Module):
    """Registered in another order than run; one module never runs; the model's own tensor; a norm first."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.unused = nn.Linear(3, 3)
        self.body = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(3)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.norm(x) * self.scale).mean(dim=(2, 3)))


def test_stages_follow_the_forward_pass() -> None:
    stages, classes = find_stages(nn.Sequential(nn.Identity(), Shuffled()), torch.rand(1, 3, 8, 8))
    assert classes == 2
    # the wrapper is looked into; the unused module is skipped; the leading norm joins the first stage it
    # precedes; the model's own tensor is the bottom stage
    assert [s.name for s in stages] == ["1.head", "1.norm+1.body", "1.scale"]


def test_randomize_draws_seeded_he_weights_and_resets_batchnorm() -> None:
    model = nn.Sequential(nn.Conv2d(64, 128, 3), nn.BatchNorm2d(128), nn.Linear(5, 5))
    with torch.no_grad():
        model[1].running_mean.fill_(3.0)
        model[1].running_var.fill_(7.0)
        model[1].weight.fill_(2.0)
    untouched = model[2].weight.clone()
    stage = Stage("0+1", ("0", "1"))
    randomize(model, stage, seed=5)
    weight = model[0].weight.detach()
    fan_in = 64 * 9
    assert float(weight.std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)  # 73 728 draws
    assert float(weight.mean()) == pytest.approx(0.0, abs=0.002)
    assert float(model[0].bias.detach().abs().max()) <= 1 / math.sqrt(fan_in)
    bn = model[1]
    assert torch.equal(bn.running_mean, torch.zeros(128)) and torch.equal(bn.running_var, torch.ones(128))
    assert torch.equal(bn.weight, torch.ones(128)) and torch.equal(bn.bias, torch.zeros(128))
    assert torch.equal(model[2].weight, untouched)
    first = model[0].weight.detach().clone()
    randomize(model, stage, seed=5)
    assert torch.equal(model[0].weight, first)
    randomize(model, stage, seed=6)
    assert not torch.equal(model[0].weight, first)


# --- the check: the caller's model is borrowed, never changed ------------------------------------------------

def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": {n: m.training for n, m in model.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
    }


def _assert_unchanged(model: nn.Module, before: dict) -> None:
    state = model.state_dict()
    assert state.keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(state[key], value), key
        assert state[key].dtype == value.dtype
    assert {n: m.training for n, m in model.named_modules()} == before["training"]
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before["requires_grad"]
    assert all(p.grad is None for p in model.parameters())
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks and not getattr(module, "_backward_pre_hooks", None)


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_caller_model_is_bit_identical_afterwards(untrained: BlobNet, mode: str) -> None:
    model = nn.Sequential(untrained, nn.Identity())
    untrained.train()  # a caller in train mode, partly
    untrained.conv2.eval()
    before = _snapshot(model)
    result = sanity_check(model, image(0), "gradcam", target_layer="0.relu3", mode=mode)
    assert isinstance(result, SanityResult)
    _assert_unchanged(model, before)


def test_caller_model_is_bit_identical_after_an_exception(untrained: BlobNet) -> None:
    before = _snapshot(untrained)

    def stop(done: int, total: int) -> None:
        if done == 3:  # the top stage has just been randomized
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        sanity_check(untrained, image(0), "guided_backprop", progress=stop)
    _assert_unchanged(untrained, before)


def test_progress_counts_every_map(untrained: BlobNet) -> None:
    calls = []
    result = sanity_check(untrained, image(1), "saliency", progress=lambda d, t: calls.append((d, t)))
    total = len(result.stages) + 2  # the original map, the random class, one per stage
    assert calls == [(i, total) for i in range(1, total + 1)]
    assert [s.stage for s in result.stages] == ["fc", "conv3", "conv2", "conv1"]


def test_seed_reproduces_everything(untrained: BlobNet) -> None:
    x = image(2)
    a = sanity_check(untrained, x, "gradcam", seed=7)
    b = sanity_check(untrained, x, "gradcam", seed=7)
    c = sanity_check(untrained, x, "gradcam", seed=8)
    assert np.array_equal(np.array(a.rhos), np.array(b.rhos), equal_nan=True)
    assert all(np.array_equal(s.heatmap, t.heatmap) for s, t in zip(a.stages, b.stages))
    assert a.random_class == b.random_class and a.verdict == b.verdict
    assert not all(np.array_equal(s.heatmap, t.heatmap) for s, t in zip(a.stages, c.stages))


def test_stages_match_a_hand_randomized_copy(untrained: BlobNet) -> None:
    """Cascading = stages 0…i randomized together; independent = stage i alone; the class stays the clean
    top class; ρ and SSIM are those of the two maps."""
    x = image(3)
    top = int(untrained(x).argmax())
    cascading = sanity_check(untrained, x, "gradcam", target_layer="relu3", seed=4)
    independent = sanity_check(untrained, x, "gradcam", target_layer="relu3", seed=4, mode="independent")
    stages, _ = find_stages(untrained, x)
    original = explain(untrained, x, "gradcam", "relu3", top).heatmap
    assert cascading.class_idx == independent.class_idx == top
    assert np.array_equal(cascading.original, original)
    cumulative = copy.deepcopy(untrained)
    for index, stage in enumerate(stages):
        seed = 4 * 1_000_003 + index
        randomize(cumulative, stage, seed)
        alone = copy.deepcopy(untrained)
        randomize(alone, stage, seed)
        expected_cascading = explain(cumulative, x, "gradcam", "relu3", top).heatmap
        expected_alone = explain(alone, x, "gradcam", "relu3", top).heatmap
        np.testing.assert_allclose(cascading.stages[index].heatmap, expected_cascading, atol=1e-6)
        np.testing.assert_allclose(independent.stages[index].heatmap, expected_alone, atol=1e-6)
        ref = spearmanr(original.ravel(), expected_cascading.ravel())[0]
        if np.isfinite(ref):
            assert cascading.stages[index].rho == pytest.approx(ref, abs=1e-6)
        assert cascading.stages[index].ssim == pytest.approx(
            structural_similarity(original.astype(np.float64), expected_cascading.astype(np.float64),
                                  data_range=1.0), abs=1e-5)


def test_random_class_is_another_class_and_compared(untrained: BlobNet) -> None:
    x = image(4)
    result = sanity_check(untrained, x, "guided_backprop", seed=2)
    assert result.random_class is not None and result.random_class != result.class_idx
    assert 0 <= result.random_class < 3
    other = explain(untrained, x, "guided_backprop", None, result.random_class).heatmap
    assert result.random_class_rho == pytest.approx(spearmanr(result.original.ravel(), other.ravel())[0], abs=1e-6)
    assert "class check" in result.class_verdict


def test_result_as_dict_is_json(untrained: BlobNet) -> None:
    result = sanity_check(untrained, image(5)[0], "gradcam", 1)  # a 3×H×W image, class given
    assert result.class_idx == 1
    data = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert [s["stage"] for s in data["stages"]] == ["fc", "conv3", "conv2", "conv1"]
    assert data["verdict"].startswith(("passed", "failed"))
    assert data["outcome"] in ("passed", "warning", "failed") and data["reason"]
    assert any("BatchNorm" in n for n in result.notes) is False  # BlobNet has no BatchNorm to mention
    assert result.original.shape == (32, 32) and all(s.heatmap.shape == (32, 32) for s in result.stages)


def test_user_errors(untrained: BlobNet) -> None:
    x = image(0)
    with pytest.raises(CamError, match="mode"):
        sanity_check(untrained, x, "gradcam", mode="sideways")
    with pytest.raises(CamError, match="one preprocessed image"):
        sanity_check(untrained, torch.cat([x, x]), "gradcam")
    with pytest.raises(CamError, match="no module or parameter"):
        sanity_check(untrained, x, "gradcam", stages=["fc", "nope"])
    with pytest.raises(CamError, match="seed"):
        sanity_check(untrained, x, "gradcam", seed=-1)
    with pytest.raises(CamError, match="unknown method"):
        sanity_check(untrained, x, "nonsense")


def test_exported() -> None:
    assert cam_core.sanity_check is sanity_check and "SanityResult" in cam_core.__all__


# --- known outcomes (Adebayo et al. 2018, fig. 2 and 4) on a trained network -----------------------------------

def _runs(model: nn.Module, method: str, **params) -> list[SanityResult]:
    return [sanity_check(model, image(k), method, seed=seed, **params) for k in range(6) for seed in (0, 1)]


@pytest.mark.slow
def test_gradcam_decorrelates_as_layers_are_randomized(trained: BlobNet) -> None:
    runs = _runs(trained, "gradcam", target_layer="relu3")
    after_head = np.nanmean([r.stages[0].rho for r in runs])
    after_all = np.nanmean([abs(np.nan_to_num(r.stages[-1].rho)) for r in runs])
    assert after_head < 0.4, after_head
    assert after_all < 0.4, after_all
    assert sum(r.outcome != "failed" for r in runs) >= 10  # the model check (at once or late)
    # a run whose model check passed at once is a warning only where its class check found it class-blind
    assert all(r.passed != r.class_insensitive for r in runs if r.verdict.startswith("passed:"))
    # class-specific: a random class's map does not look like the target class's
    assert np.nanmean([r.random_class_rho for r in runs]) < 0.2


@pytest.mark.slow
def test_guided_backprop_keeps_showing_the_edges(trained: BlobNet) -> None:
    guided = _runs(trained, "guided_backprop")
    saliency = _runs(trained, "saliency")
    # randomizing the head barely changes guided backprop (Adebayo et al. fig. 2) ...
    assert np.mean([r.stages[0].rho for r in guided]) > 0.6
    # ... and with every layer random it is still an edge detector, unlike plain gradients
    guided_edges = [r.stages[-1].edge_rho for r in guided]
    assert min(guided_edges) > 0.3, guided_edges
    assert np.mean(guided_edges) > np.mean([r.stages[-1].edge_rho for r in saliency]) + 0.2
    # and it is barely class-specific
    assert np.mean([r.random_class_rho for r in guided]) > 0.5


def _stage(name: str, rho: float, blank: bool = False) -> StageResult:
    return StageResult(name, (name,), rho, 0.0, 0.0, np.zeros((2, 2), np.float32), blank)


def test_verdict_sentences() -> None:
    passed, text = _verdict([_stage("head", 0.12), _stage("body", 0.05)], "cascading")
    assert passed and text == "passed: the map changed as soon as the top layers were randomized (ρ=0.12 after 'head')"
    passed, text = _verdict([_stage("head", 0.97), _stage("body", 0.91)], "cascading")
    assert not passed and text.startswith("failed: the map stayed similar (ρ=0.91) with all layers randomized")
    passed, text = _verdict([_stage("head", 0.97), _stage("body", float("nan"), blank=True)], "cascading")
    assert passed and text.startswith("passed late") and "went blank after 'body'" in text
    passed, text = _verdict([_stage("head", 0.8), _stage("body", 0.3)], "independent")
    assert passed and "'body'" in text and "1 of 2" in text
    passed, text = _verdict([_stage("head", 0.8), _stage("body", 0.6)], "independent")
    assert not passed and "lowest ρ=0.60, 'body'" in text


@pytest.mark.slow
def test_embedded_model_gradcam_passes_guided_backprop_is_late() -> None:
    models = pytest.importorskip("models")
    from PIL import Image
    from skimage import data

    backbone = models.load("efficientnet_lite0")
    x = backbone.preprocess(Image.fromarray(data.chelsea()))
    before = _snapshot(backbone.model)
    gradcam = sanity_check(backbone.model, x, "gradcam")
    assert [s.stage for s in gradcam.stages][:3] == ["classifier", "conv_head+bn2", "blocks.6"]
    assert gradcam.outcome == "passed" and gradcam.verdict.startswith("passed: the map changed as soon as")
    assert any("BatchNorm" in note for note in gradcam.notes)
    guided = sanity_check(backbone.model, x, "guided_backprop")
    assert guided.stages[0].rho > 0.9 and guided.random_class_rho > 0.9
    assert guided.verdict.startswith("passed late") and guided.outcome == "warning"
    _assert_unchanged(backbone.model, before)


# --- the three outcomes, on hand-built nets whose maps are known ------------------------------------------------

SIDE = 8
QUARTERS = [(slice(0, 4), slice(0, 4)), (slice(0, 4), slice(4, 8)), (slice(4, 8), slice(0, 4))]


class ReadoutNet(nn.Module):
    """y_k = Σ W_k ⊙ x: saliency's map for class k is |W_k| (max over channels), whatever the image."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * SIDE * SIDE, weights.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(weights.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class EnergyNet(nn.Module):
    """y_k = w_k · mean(q²), q = Σ_c x_c: the gradient is w_k·2q/HW on every channel, so the map is |q| up to
    a scale for every class and every (nonzero) random w: nothing about the weights shows in it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 3, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [2.0], [3.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((x.sum(1) ** 2).mean(dim=(1, 2))[:, None])


def _quarter_weights(same: bool) -> torch.Tensor:
    weights = torch.zeros(3, 3, SIDE, SIDE)
    for k in range(3):
        rows, cols = QUARTERS[0 if same else k]
        weights[k, :, rows, cols] = float(k + 1)
    return weights


def _photo() -> torch.Tensor:
    return torch.randn(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))


LABELS = ["tabby", "lemon", "espresso"]


def test_class_specific_weights_pass():
    # class k reads quarter k only: its map is that quarter, a random class's map another one (ρ < 0), and
    # random weights are noise over the whole image (ρ ≈ 0 with the quarter)
    result = sanity_check(ReadoutNet(_quarter_weights(same=False)), _photo(), "saliency", 0, categories=LABELS)
    assert result.outcome == "passed" and result.passed and not result.class_insensitive
    assert result.random_class_rho < 0 and result.stages[0].rho < CHANGED
    assert result.class_name == "'tabby' (0)" and result.random_class_name in ("'lemon' (1)", "'espresso' (2)")
    assert result.random_class_name in result.reason and "depends on what the model learned" in result.reason


def test_a_class_blind_map_is_a_warning_never_a_pass():
    # every class reads the same quarter: the maps of all classes are the same quarter (ρ = 1), yet random
    # weights change them — the model check passes, the class check cannot
    result = sanity_check(ReadoutNet(_quarter_weights(same=True)), _photo(), "saliency", 0, categories=LABELS)
    assert result.stages[0].changed and result.random_class_rho == pytest.approx(1.0)
    assert result.outcome == "warning" and not result.passed and result.class_insensitive
    assert "'tabby' (0)" in result.reason and "barely depends on the class" in result.reason
    assert ". " not in result.reason and not result.reason.endswith(".")  # one sentence, the caller ends it


def test_a_map_that_ignores_the_weights_fails():
    result = sanity_check(EnergyNet(), _photo(), "saliency", 2, categories=LABELS)
    assert all(s.rho == pytest.approx(1.0) for s in result.stages)  # |q| whatever w is
    assert result.outcome == "failed" and not result.passed
    assert "rather than what the model learned" in result.reason


def test_unlabelled_classes_are_named_by_number():
    result = sanity_check(ReadoutNet(_quarter_weights(same=False)), _photo(), "saliency", 1)
    assert result.class_name == "class 1" and result.random_class_name in ("class 0", "class 2")
    assert f"the map for {result.random_class_name} (drawn at random) differs" in result.class_verdict


def test_outcome_sentences() -> None:
    from cam_core.sanity.check import _model_outcome, _outcome

    late = [_stage("head", 0.97), _stage("body", 0.1)]
    assert _model_outcome(late, "cascading") == "late" and _model_outcome(late, "independent") == "passed"
    assert _model_outcome([_stage("head", 0.9)], "cascading") == "failed"
    outcome, reason = _outcome("late", late, "cascading", "'cat' (1)", "'dog' (2)", 0.8)
    assert outcome == "warning" and "'body'" in reason and "barely on the class" in reason
    assert _outcome("passed", late, "cascading", "'cat' (1)", "", float("nan"))[0] == "passed"  # one class
