"""Transformer backbones: registry entries and default layers, the offline message, ViTs on whole images of any
aspect (position embeddings interpolated), and own weights for these architectures."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

import models
from cam_core import CamError, explain
from models import registry
from models.vit_any_size import AnySizeViT
from tests.models.test_torchvision_zoo import no_network, torch_home  # noqa: F401 (fixtures)

TINY = dict(patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)


def test_transformers_are_registered_with_their_default_layers():
    expected = {"vit_b_16": "encoder.layers.encoder_layer_11.ln_1", "vit_b_32": "encoder.layers.encoder_layer_11.ln_1",
                "swin_t": "norm", "convnext_tiny": "features"}
    for name, layer in expected.items():
        spec = models.SPECS[name]
        assert spec.default_layer == layer and spec.source == "torchvision" and spec.input_size == 224
        assert spec.weights.endswith(".pth") and "BSD-3-Clause" in spec.license
    assert models.SPECS["vit_b_16"].classifier == "heads.head" and models.SPECS["swin_t"].classifier == "head"
    assert models.SPECS["vit_b_16"].cam_head is None and models.SPECS["swin_t"].cam_head == ("permute", "head")


def test_offline_vit_download_names_file_folder_and_url(torch_home, no_network):  # noqa: F811
    calls = []
    with pytest.raises(CamError) as err:
        models.load("vit_b_16", device="cpu", progress=lambda done, total: calls.append(done))
    message = str(err.value)
    assert "vit_b_16-c867db91.pth" in message and "https://download.pytorch.org/models/vit_b_16-c867db91.pth" in message
    assert os.path.join(str(torch_home), "hub", "checkpoints") in message and "\n" not in message
    assert calls == []
    with pytest.raises(CamError, match="swin_t-704ceda3.pth"):
        models.load("swin_t", device="cpu")


def test_any_size_vit_equals_torchvision_at_the_trained_size_and_interpolates_otherwise():
    torch.manual_seed(0)
    ours = AnySizeViT(image_size=64, num_classes=5, **TINY).eval()
    torch.nn.init.normal_(ours.heads.head.weight)
    reference = VisionTransformer(image_size=64, num_classes=5, **TINY).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)  # same keys, same shapes
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
        # 96×48: a 6×3 grid; the patch embeddings' 4×4 grid resized bicubically, the class token's kept.
        pos = ours.encoder.pos_embedding
        grid = pos[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
        resized = F.interpolate(grid, size=(6, 3), mode="bicubic", align_corners=False)
        expected = torch.cat([pos[:, :1], resized.flatten(2).transpose(1, 2)], 1)
        assert torch.equal(ours.encoder.position_embedding((6, 3)), expected)
        assert ours(torch.randn(2, 3, 96, 48)).shape == (2, 5)


def test_a_320_by_224_image_gets_a_20_by_14_grid():
    torch.manual_seed(1)
    vit = AnySizeViT(image_size=224, num_classes=3, **TINY).eval()
    torch.nn.init.normal_(vit.heads.head.weight)
    x = torch.randn(1, 3, 320, 224)
    for method in ("gradcam", "attention_rollout", "transformer_attribution"):
        result = explain(vit, x, method, "encoder.layers.encoder_layer_1.ln_1" if method == "gradcam" else None)
        assert result.raw.shape == (20, 14) and result.heatmap.shape == (320, 224)
        assert np.isfinite(result.heatmap).all()
    plain = VisionTransformer(image_size=224, num_classes=3, **TINY).eval()
    with pytest.raises(CamError, match="takes 224×224 inputs only"):
        explain(plain, x, "gradcam", "encoder.layers.encoder_layer_1.ln_1")


@pytest.mark.parametrize("arch,builder,head", [
    ("vit_b_16", lambda n: AnySizeViT(image_size=64, num_classes=n, **TINY), "heads.head"),
    ("swin_t", lambda n: SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                                         window_size=[4, 4], num_classes=n), "head"),
])
def test_own_weights_for_transformer_architectures(tmp_path, monkeypatch, arch, builder, head):
    """The own-weights path (safetensors, strict load, classes from the head) on small instances of the same
    classes, registered under a test name."""
    spec = dataclasses.replace(models.SPECS[arch], name=f"tiny_{arch}", builder=builder, input_size=64)
    monkeypatch.setitem(registry.SPECS, spec.name, spec)
    torch.manual_seed(2)
    state = builder(7).state_dict()
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    backbone = models.load_own_weights(spec.name, path, device="cpu")
    assert backbone.num_classes == 7 and backbone.model.get_submodule(head).out_features == 7
    loaded = backbone.model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    pth = tmp_path / "mine.pth"
    torch.save({"state_dict": state}, pth)
    assert models.load_own_weights(spec.name, pth, device="cpu").num_classes == 7


def test_own_weights_cap_fits_a_vit_b():
    from models.own_weights import MAX_WEIGHT_BYTES

    params = sum(p.numel() for p in models.SPECS["vit_b_16"].build(1000).parameters())
    assert params * 4 < MAX_WEIGHT_BYTES
