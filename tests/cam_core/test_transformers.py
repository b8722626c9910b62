"""Vision transformers: token/channels-last layers as maps, Grad-CAM on them, attention rollout and
gradient × attention rollout — each checked against a reference written out in the test (attention from
the block's own q, k; a hand-written ViT forward; pytorch_grad_cam with its reshape_transform)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.models.deit import VisionTransformerDistilled
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

from cam_core import CamError, auto_layer, explain, layers
from cam_core.adapters import ChannelsLast, TokenGrid, adapter_for
from cam_core.methods.attention import AttentionWeights, attention_matrices

from .nets import GapNet, seeded

LAST_LN = "encoder.layers.encoder_layer_1.ln_1"


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def vit():
    """A small randomly initialised torchvision ViT (its head is zero at init: given random weights)."""
    torch.manual_seed(0)
    model = VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                              num_classes=5)
    torch.nn.init.normal_(model.heads.head.weight)
    torch.nn.init.normal_(model.encoder.pos_embedding, std=0.5)
    return model.double().eval()


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(1)
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=[4, 4],
                           num_classes=5).double().eval()


@pytest.fixture(scope="module")
def deit():
    torch.manual_seed(2)
    model = VisionTransformerDistilled(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2, num_classes=5)
    return model.double().eval()


def _x(h=64, w=64, seed=3):
    return torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def hand_vit(model, x):
    """torchvision's ViT forward written out, with each block's attention an explicit tensor (q, k from in_proj)."""
    n = x.shape[0]
    t = model.conv_proj(x).flatten(2).transpose(1, 2)
    t = torch.cat([model.class_token.expand(n, -1, -1), t], 1) + model.encoder.pos_embedding
    attentions = []
    for block in model.encoder.layers:
        h = block.ln_1(t)
        mha = block.self_attention
        dim, heads = mha.embed_dim, mha.num_heads
        w, b = mha.in_proj_weight, mha.in_proj_bias
        q, k, v = (h @ w[i * dim:(i + 1) * dim].T + b[i * dim:(i + 1) * dim] for i in range(3))
        split = lambda z: z.reshape(n, -1, heads, dim // heads).permute(0, 2, 1, 3)  # noqa: E731
        a = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(dim // heads), dim=-1)
        attentions.append(a)
        o = (a @ split(v)).permute(0, 2, 1, 3).reshape(n, -1, dim)
        t = t + mha.out_proj(o)
        t = t + block.mlp(block.ln_2(t))
    return model.heads(model.encoder.ln(t)[:, 0]), attentions


def hand_rollout(attentions, fusion="mean", discard=0.0, prefix=1):
    tokens = attentions[0].shape[-1]
    eye = torch.eye(tokens, dtype=torch.float64)
    r = eye
    for a in attentions:
        heads = a[0].double()
        f = {"mean": heads.mean(0), "max": heads.max(0).values, "min": heads.min(0).values}[fusion].clone()
        k = int(discard * tokens * tokens)
        if k:
            values = f.flatten().tolist()
            for i in sorted(range(len(values)), key=lambda i: (values[i], i))[:k]:
                f[i // tokens, i % tokens] = 0.0
        ahat = (f + eye) / 2
        ahat = ahat / ahat.sum(dim=1, keepdim=True)
        r = ahat @ r
    return r[0, prefix:]


# ---------------------------------------------------------------- adapters


def test_token_adapter_detected_from_patch_stride_and_input_size(vit):
    x = _x()
    out = torch.randn(1, 17, 32, dtype=torch.float64)
    adapter = adapter_for(vit, "any", out, x)
    assert isinstance(adapter, TokenGrid) and adapter.grid == (4, 4) and adapter.prefix == 1
    assert adapter.layout == "tokens(cls+h*w)"
    fmap = adapter.to_map(out)
    assert fmap.shape == (1, 32, 4, 4)
    for i in range(4):
        for j in range(4):  # token 1 + i·w + j is the patch in row i, column j
            assert torch.equal(fmap[0, :, i, j], out[0, 1 + i * 4 + j])
    assert torch.equal(adapter.from_map(fmap, out), out)
    # A 320×224 upload: 20×14 patches of 16 px, not a hard-coded 14×14.
    tall = adapter_for(vit, "any", torch.randn(2, 1 + 20 * 14, 8), torch.zeros(2, 3, 320, 224))
    assert tall.grid == (20, 14) and tall.prefix == 1


def test_distillation_token_is_a_second_prefix(deit):
    x = _x()
    seen = {}
    handle = deit.blocks[1].register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    try:
        with torch.no_grad():
            deit(x)
    finally:
        handle.remove()
    adapter = adapter_for(deit, "blocks.1", seen["out"], x)
    assert adapter.prefix == 2 and adapter.grid == (4, 4) and adapter.layout == "tokens(cls+dist+h*w)"
    assert torch.equal(adapter.to_map(seen["out"])[0, :, 1, 2], seen["out"][0, 2 + 4 + 2])


def test_channels_last_detected_by_matching_the_stage_stride(swin):
    x = _x(64, 96)
    out = torch.randn(1, 16, 24, 16)  # stage 1 of Swin: stride 4, N×h×w×C
    adapter = adapter_for(swin, "features.1", out, x)
    assert isinstance(adapter, ChannelsLast) and adapter.grid == (16, 24) and adapter.layout == "nhwc"
    assert torch.equal(adapter.to_map(out), out.permute(0, 3, 1, 2))
    assert torch.equal(adapter.from_map(adapter.to_map(out), out), out)
    assert adapter_for(swin, "conv", torch.randn(1, 16, 16, 24), x) is None  # N×C×H×W: no adapter


def test_layouts_that_are_not_maps_are_refused_in_one_line(vit):
    x = _x()
    with pytest.raises(CamError, match=r"layer 'heads' outputs shape \(1, 5\), which has no spatial grid"):
        adapter_for(vit, "heads", torch.randn(1, 5), x)
    with pytest.raises(CamError, match="50 tokens, which do not form a grid for a 64×64 input "
                                       r"\(patch stride 16 gives 4×4 patches\)"):
        adapter_for(vit, "odd", torch.randn(1, 50, 32), x)
    with pytest.raises(CamError, match="takes 64×64 inputs only"):
        explain(vit, _x(64, 96), "gradcam", LAST_LN)


# ---------------------------------------------------------------- layers


def test_layers_list_transformer_blocks_with_grid_and_layout(vit, swin):
    found = {info.name: info for info in layers(vit, _x())}
    block = found["encoder.layers.encoder_layer_1"]
    assert block.shape == (32, 4, 4) and block.grid == (4, 4) and block.layout == "tokens(cls+h*w)"
    assert found["encoder.layers.encoder_layer_0.mlp.0"].shape == (64, 4, 4)
    assert found["conv_proj"].layout == "nchw" and "heads" not in found
    assert auto_layer(vit, _x()) == LAST_LN
    stages = {info.name: info for info in layers(swin, _x(64, 96))}
    assert stages["norm"].shape == (32, 8, 12) and stages["norm"].layout == "nhwc"
    assert stages["features.1"].shape == (16, 16, 24)


# ---------------------------------------------------------------- Grad-CAM on token layers


def test_gradcam_on_a_vit_block_equals_the_formula_on_hand_captured_tokens(vit):
    x, cls = _x(), 2
    box = {}

    def keep(_m, _i, out):
        box["A"] = out

    layer = vit.get_submodule(LAST_LN)
    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = vit(x.clone().requires_grad_(True))
            (grad,) = torch.autograd.grad(logits[0, cls], box["A"])
    finally:
        handle.remove()
    a = box["A"][0, 1:].detach().T.reshape(32, 4, 4)
    g = grad[0, 1:].T.reshape(32, 4, 4)
    expected = (g.mean(dim=(1, 2))[:, None, None] * a).sum(0)
    result = explain(vit, x, "gradcam", LAST_LN, cls)
    assert np.allclose(result.raw, expected.numpy(), atol=1e-10)
    assert _hooks(vit) == 0 and all(p.grad is None for p in vit.parameters())


def _minmax(a):
    a = np.asarray(a, dtype=np.float64)
    return (a - a.min()) / max(a.max() - a.min(), 1e-12)


@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "hirescam", "layercam"])
@pytest.mark.parametrize("which", ["vit", "swin"])
def test_gradcam_agrees_with_pytorch_grad_cam_reshape_transform(which, method, vit, swin):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    peer_kind = getattr(pytorch_grad_cam, {"gradcam": "GradCAM", "xgradcam": "XGradCAM", "hirescam": "HiResCAM",
                                           "layercam": "LayerCAM"}[method])

    if which == "vit":
        model, layer_name, x = vit.float(), LAST_LN, _x().float()

        def reshape(t):
            return t[:, 1:, :].reshape(t.size(0), 4, 4, t.size(2)).permute(0, 3, 1, 2)
    else:
        model, layer_name, x = swin.float(), "norm", _x(64, 96).float()

        def reshape(t):
            return t.permute(0, 3, 1, 2)
    try:
        ours = None
        for cls in range(5):  # a class whose map has positive and clipped parts
            ours = explain(model, x, method, layer_name, cls)
            if ours.raw.max() > 0 > ours.raw.min():
                break
        assert ours.raw.max() > 0 > ours.raw.min()
        peer = peer_kind(model=model, target_layers=[model.get_submodule(layer_name)], reshape_transform=reshape)
        theirs = peer(input_tensor=x, targets=[ClassifierOutputTarget(cls)])[0]
        peer.activations_and_grads.release()
        assert np.abs(_minmax(ours.heatmap) - _minmax(theirs)).max() <= 1e-4
    finally:
        model.double()
        for p in model.parameters():
            p.grad = None


def test_swin_gradcam_runs_on_a_non_square_input(swin):
    result = explain(swin, _x(64, 96), "gradcam", "features.3")
    assert result.raw.shape == (8, 12) and result.heatmap.shape == (64, 96)


def test_cam_on_swins_channels_last_norm_equals_the_head_weights_by_hand(swin):
    x, cls = _x(64, 96), 4
    with torch.no_grad():
        a = swin.norm(swin.features(x))[0].permute(2, 0, 1)  # C×h×w
        assert torch.allclose(swin.head(a.mean(dim=(1, 2)))[None], swin(x))  # the head is GAP → Linear
    expected = torch.einsum("k,kuv->uv", swin.head.weight[cls].detach(), a)
    result = explain(swin, x, "cam", "norm", cls)
    assert np.allclose(result.raw, expected.numpy(), atol=1e-10)


# ---------------------------------------------------------------- attention


def test_recomputed_attention_is_the_attention_the_block_runs(vit):
    x = _x()
    with torch.no_grad():
        hand_logits, attentions = hand_vit(vit, x)
        assert torch.allclose(hand_logits, vit(x), atol=1e-10)  # the hand forward is the model
        block = vit.encoder.layers[1]
        h = block.ln_1(torch.randn(1, 17, 32, dtype=torch.float64))
        _, torch_weights = block.self_attention(h, h, h, need_weights=True, average_attn_weights=False)
        assert torch.allclose(attention_matrices(block.self_attention, h), torch_weights, atol=1e-12)


def test_rollout_reads_the_weights_each_attention_module_computed_and_its_caller_sees_no_change(vit):
    from cam_core.recorder import record

    x = _x()
    modules = [block.self_attention for block in vit.encoder.layers]
    with torch.no_grad():
        hand_logits, attentions = hand_vit(vit, x)
        asked = AttentionWeights(modules)
        rec = record(vit, x, hooks=[asked])
    assert list(asked.found) == modules and _hooks(vit) == 0
    for got, want in zip(asked.found.values(), attentions):
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-12)
    assert torch.allclose(rec.logits, hand_logits, atol=1e-10)  # the blocks still got (output, None)


def test_a_caller_that_asked_for_averaged_weights_still_gets_them():
    from cam_core.recorder import record

    class Asks(torch.nn.Module):  # calls attention with the defaults: need_weights=True, averaged over heads
        def __init__(self):
            super().__init__()
            self.mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, t):
            out, weights = self.mha(t, t, t)
            return torch.cat([out.flatten(1), weights.flatten(1)], dim=1)

    torch.manual_seed(4)
    net = Asks().double().eval()
    t = torch.randn(1, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        plain = net(t)
        asked = AttentionWeights([net.mha])
        rec = record(net, t, hooks=[asked])
        _, per_head = net.mha(t, t, t, average_attn_weights=False)
    assert torch.allclose(rec.logits, plain, atol=1e-12)
    assert torch.allclose(asked.found[net.mha], per_head, atol=1e-12)


@pytest.mark.parametrize("fusion,discard", [("mean", 0.0), ("max", 0.0), ("min", 0.0), ("mean", 0.5),
                                            ("max", 0.9)])
def test_attention_rollout_equals_the_formula_by_hand(vit, fusion, discard):
    x = _x()
    with torch.no_grad():
        _, attentions = hand_vit(vit, x)
    expected = hand_rollout(attentions, fusion, discard).reshape(4, 4)
    result = explain(vit, x, "attention_rollout", head_fusion=fusion, discard_ratio=discard)
    assert result.raw.shape == (4, 4)
    assert np.allclose(result.raw, expected.numpy(), atol=1e-12)
    assert result.class_idx == int(vit(x).argmax()) and _hooks(vit) == 0


def test_attention_rollout_on_timm_deit_reads_timms_own_attention(deit):
    x = _x()
    kept = []
    handles = []
    for block in deit.blocks:
        block.attn.fused_attn = False  # timm then materialises softmax(qkᵀ) and passes it through attn_drop
        handles.append(block.attn.attn_drop.register_forward_hook(lambda m, i, o: kept.append(i[0].detach())))
    try:
        with torch.no_grad():
            deit(x)
    finally:
        for h in handles:
            h.remove()
        for block in deit.blocks:
            block.attn.fused_attn = True
    expected = hand_rollout(kept, "mean", 0.0, prefix=2).reshape(4, 4)
    result = explain(deit, x, "attention_rollout")
    assert np.allclose(result.raw, expected.numpy(), atol=1e-12)


def test_transformer_attribution_equals_gradient_times_attention_rollout_by_hand(vit):
    x, cls = _x(), 3
    with torch.enable_grad():
        logits, attentions = hand_vit(vit, x)
        grads = torch.autograd.grad(logits[0, cls], attentions)
    r = torch.eye(17, dtype=torch.float64)
    for a, g in zip(attentions, grads):
        weighted = (g[0] * a[0]).clamp(min=0).mean(dim=0)
        r = r + weighted @ r
    expected = r[0, 1:].reshape(4, 4).detach()
    result = explain(vit, x, "transformer_attribution", target_class=cls)
    assert result.class_idx == cls
    assert np.allclose(result.raw, expected.numpy(), atol=1e-10)
    assert _hooks(vit) == 0 and all(p.grad is None for p in vit.parameters())
    other = explain(vit, x, "transformer_attribution", target_class=0)
    assert not np.allclose(other.raw, result.raw)  # class-specific, unlike rollout


def test_transformer_attribution_on_deit(deit):
    result = explain(deit, _x(), "transformer_attribution", target_class=1)
    assert result.raw.shape == (4, 4) and np.isfinite(result.raw).all()
    with pytest.raises(CamError, match="this ViT takes 64×64 inputs only"):
        explain(deit, _x(64, 96), "attention_rollout")


def test_two_threads_share_one_vit(vit):
    import threading

    x = _x()
    alone = {m: explain(vit, x, m, target_class=2).raw for m in ("attention_rollout", "transformer_attribution")}
    results, errors = {}, []

    def work(method):
        try:
            for _ in range(3):
                results[method] = explain(vit, x, method, target_class=2).raw
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(m,)) for m in alone]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(np.allclose(results[m], alone[m]) for m in alone) and _hooks(vit) == 0


# ---------------------------------------------------------------- methods that do not apply


def test_methods_that_do_not_apply_raise_one_line(vit, swin):
    x = _x()
    cases = [
        (vit, x, "cam", "CAM needs the target layer to feed global-average-pool → the final linear layer"),
        (vit, x, "guided_backprop", r"guided backprop is defined at ReLUs, and this model's forward ran none "
                                    r"\(it uses gelu\)"),
        (vit, x, "deconvnet", "deconvnet is defined at ReLUs"),
        (swin, _x(64, 96), "attention_rollout", "attends within windows"),
        (swin, _x(64, 96), "transformer_attribution", "attends within windows"),
        (seeded(GapNet()), _x(16, 16), "attention_rollout", "no attention layers"),
    ]
    for model, inp, method, message in cases:
        with pytest.raises(CamError, match=message) as err:
            explain(model, inp, method)
        assert "\n" not in str(err.value)
        assert _hooks(model) == 0
    with pytest.raises(CamError, match="must be one of mean, max, min"):
        explain(vit, x, "attention_rollout", head_fusion="median")


def test_rollout_model_is_left_as_it_was_even_when_the_forward_fails(vit):
    class Boom(RuntimeError):
        pass

    def explode(*_):
        raise Boom("user model failed")

    handle = vit.heads.register_forward_hook(explode)
    try:
        for method in ("attention_rollout", "transformer_attribution", "gradcam"):
            with pytest.raises(Boom):
                explain(vit, _x(), method, LAST_LN if method == "gradcam" else None)
    finally:
        handle.remove()
    assert _hooks(vit) == 0 and not vit.training and torch.is_grad_enabled()
    assert all(p.grad is None for p in vit.parameters())


def test_gradcam_leaf_is_in_map_layout_and_flows_back_through_tokens(vit):
    from cam_core.recorder import record

    rec = record(vit, _x(), [LAST_LN], grad_from=LAST_LN)
    assert rec.activations[LAST_LN].shape == (1, 32, 4, 4) and rec.adapters[LAST_LN].layout == "tokens(cls+h*w)"
    (grad,) = torch.autograd.grad(rec.logits[0, 0], rec.activations[LAST_LN])
    assert grad.abs().sum() > 0
    assert F.mse_loss(rec.logits, vit(_x())).item() < 1e-20


# ---------------------------------------------------------------- feature maps and ConvNeXt's channels-last layers


def test_feature_maps_of_token_and_channels_last_layers_are_c_by_h_by_w(vit, swin):
    from cam_core import activations

    x = _x()
    box = {}
    handle = vit.get_submodule(LAST_LN).register_forward_hook(lambda m, i, o: box.setdefault("t", o))
    try:
        with torch.no_grad():
            vit(x)
    finally:
        handle.remove()
    maps = activations(vit, x, LAST_LN).maps
    assert maps.shape == (32, 4, 4) and np.allclose(maps[:, 2, 3], box["t"][0, 1 + 2 * 4 + 3].float().numpy())
    xs = _x(64, 96)
    with torch.no_grad():
        nhwc = swin.norm(swin.features(xs))
    assert np.allclose(activations(swin, xs, "norm").maps, nhwc[0].permute(2, 0, 1).float().numpy(), atol=1e-6)


def test_gradcam_inside_a_convnext_block_channels_last_equals_the_formula():
    import torchvision

    torch.manual_seed(4)
    net = torchvision.models.convnext_tiny(num_classes=4).double().eval()
    x, cls, name = _x(64, 64), 1, "features.5.0.block.3"  # a Linear on N×h×w×C inside a CNBlock
    box = {}
    handle = net.get_submodule(name).register_forward_hook(lambda m, i, o: box.setdefault("A", o))
    try:
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(net(x.clone().requires_grad_(True))[0, cls], box["A"])
    finally:
        handle.remove()
    a, g = box["A"][0].detach().permute(2, 0, 1), grad[0].permute(2, 0, 1)
    expected = (g.mean(dim=(1, 2))[:, None, None] * a).sum(0)
    result = explain(net, x, "gradcam", name, cls)
    assert result.raw.shape == (4, 4) and np.allclose(result.raw, expected.numpy(), atol=1e-10)
    assert _hooks(net) == 0 and all(p.grad is None for p in net.parameters())
