"""Layer CAMs: one recorded forward gives A (and G = ∂y^c/∂A); each variant is one pure ``cam(A, G) -> map``.

A and G are N×K×u×v; a ``CamFn`` returns the signed map N×u×v before the final ReLU. Channel-weight variants
(Grad-CAM, Grad-CAM++, XGrad-CAM) compute ``Σ_k w_k A_k``; element-wise ones (HiResCAM, LayerCAM) weight each
location; EigenCAM uses no gradient. ``attribute_batch`` runs any of them on a batch of inputs, which is what
``wrappers.smooth`` averages over noisy copies.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import CamError
from ..hygiene import eval_mode
from ..recorder import record, resolve_layer
from ..targets import ClassTarget
from .base import Function, MapResult, Target

CamFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def weighted_sum(activations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_k w_k A_k: N×u×v."""
    return torch.einsum("nk,nkuv->nuv", weights, activations)


def gradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): w_k = (1/Z) Σ_ij G_kij."""
    return weighted_sum(a, g.mean(dim=(2, 3)))


def gradcampp_weights(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential trick).

    a_kij = G² / (2G² + Σ_ab A_kab · G³) (0 where the denominator is 0); w_k = Σ_ij a_kij · ReLU(G_kij).
    """
    g2, g3 = g.pow(2), g.pow(3)
    denominator = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(denominator != 0, g2 / safe, torch.zeros_like(g2))
    return (alpha * g.clamp(min=0)).sum(dim=(2, 3))


def gradcampp(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return weighted_sum(a, gradcampp_weights(a, g))


def xgradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM (Fu et al. 2020): w_k = Σ_ij (A_kij / Σ_ab A_kab) G_kij (0 for a channel summing to 0)."""
    total = a.sum(dim=(2, 3), keepdim=True)
    share = torch.where(total != 0, a / torch.where(total != 0, total, torch.ones_like(total)), torch.zeros_like(a))
    return weighted_sum(a, (share * g).sum(dim=(2, 3)))


def hirescam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """HiResCAM (Draelos & Carin 2020): Σ_k G_k ⊙ A_k, element-wise — no averaging of the gradient."""
    return (g * a).sum(dim=1)


def layercam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """LayerCAM (Jiang et al. 2021): Σ_k ReLU(G_k) ⊙ A_k."""
    return (g.clamp(min=0) * a).sum(dim=1)


def eigencam(a: torch.Tensor, _g: torch.Tensor | None = None) -> torch.Tensor:
    """EigenCAM (Muhammad & Yeasin 2020): the centred activations (uv×K) projected on their first principal
    direction. Sign convention: the projection is made to correlate positively with the channel-mean map
    Σ_k A_k / K (the SVD's sign is arbitrary), so "high" means "strongly activated"."""
    out = []
    for item in a:
        flat = item.reshape(item.shape[0], -1).T.double()  # uv×K
        centred = flat - flat.mean(dim=0, keepdim=True)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        projection = centred @ vh[0]
        mean_map = flat.mean(dim=1)
        if float((projection * (mean_map - mean_map.mean())).sum()) < 0:
            projection = -projection
        out.append(projection.reshape(item.shape[1:]).to(a.dtype))
    return torch.stack(out)


def spatial_activation(target: Target, method: str) -> tuple[torch.Tensor, torch.Tensor, ClassTarget]:
    """One no-grad forward: the target layer's map (K×u×v, first image), the logits and the resolved class."""
    name = target.layer_name
    rec = record(target.model, target.x, [name])
    activations = rec.activations[name]
    if activations.dim() != 4:
        raise CamError(f"{method} needs a spatial layer; {name!r} outputs shape {tuple(activations.shape)}")
    return activations[0].detach(), rec.logits.detach(), target.cls.resolved(rec.logits)


def layer_map(model: torch.nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """``layer``'s output for the first image of ``x`` (C×u×v, map layout): a forward that stops at the layer.
    What the estimates of the per-channel methods count their channels on."""
    with eval_mode(model), torch.no_grad():
        rec = record(model, x[:1], [layer], stop_after_layers=True)
    return rec.calls[layer][0][0]


@dataclass(frozen=True)
class LayerCam:
    """A layer CAM: its formula and whether it needs the gradient."""

    fn: CamFn
    needs_grad: bool = True
    needs_layer: ClassVar[bool] = True

    def attribute_batch(self, target: Target, xs: torch.Tensor, cls: ClassTarget | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, ClassTarget]:
        """Signed maps (N×u×v), logits and the resolved class for a batch of inputs.

        ``cls``: a resolved class; ``None`` resolves ``target``'s class on this very forward (the first image's
        top class when none was asked for), so a single map costs one forward and one partial backward.
        """
        name = target.layer_name
        rec = record(target.model, xs, [name], grad_from=name if self.needs_grad else None)
        a = rec.activations[name]
        if a.dim() != 4:
            raise CamError(f"layer {name!r} outputs shape {tuple(a.shape)}; CAM methods need a spatial layer "
                           "(N×C×H×W) or a transformer block")
        cls = cls if cls is not None else target.cls.resolved(rec.logits[:1])
        g = None
        if self.needs_grad:
            (g,) = torch.autograd.grad(cls.score(rec.logits).sum(), a)
        return self.fn(a.detach(), g).detach(), rec.logits.detach(), cls

    def result(self, attribution: torch.Tensor, logits: torch.Tensor, cls: ClassTarget) -> MapResult:
        """A (mean) signed map u×v as a result: its positive part is what is shown."""
        raw = attribution.reshape(attribution.shape[-2:])
        return MapResult(raw=raw, positive=raw.clamp(min=0), logits=logits, class_idx=cls.index)

    def run(self, target: Target) -> MapResult:
        """The method on ``target``'s one image."""
        raw, logits, cls = self.attribute_batch(target, target.x)
        target.report(1, 1)
        return MapResult(raw=raw[0], positive=raw[0].clamp(min=0), logits=logits, class_idx=cls.index)


GRADCAM = LayerCam(gradcam)
GRADCAMPP = LayerCam(gradcampp)
XGRADCAM = LayerCam(xgradcam)
HIRESCAM = LayerCam(hirescam)
LAYERCAM = LayerCam(layercam)
EIGENCAM = LayerCam(eigencam, needs_grad=False)


def run_layercam(target: Target, fuse_layers: str, gamma: float) -> MapResult:
    """LayerCAM at the target layer, or fused with ``fuse_layers`` (comma-separated names; Jiang et al. §III-C):
    each layer's map is scaled to [0, 1] by its maximum, upsampled to the input, passed through tanh(γ·M) and
    the maps are fused by their element-wise maximum (torchcam's reading of the paper). One forward records
    every layer."""
    extra = [n.strip() for n in str(fuse_layers).split(",") if n.strip() and n.strip() != target.layer_name]
    if not extra:
        return LAYERCAM.run(target)
    names = [target.layer_name] + [resolve_layer(target.model, n)[0] for n in extra]
    rec = record(target.model, target.x, names, grad_from=names)
    cls = target.cls.resolved(rec.logits[:1])
    acts = [rec.activations[n] for n in names]
    if any(a.dim() != 4 for a in acts):
        raise CamError("LayerCAM fusion needs spatial layers (N×C×H×W) only")
    grads = torch.autograd.grad(cls.score(rec.logits).sum(), acts)
    size = target.x.shape[-2:]
    fused = torch.zeros(size, device=target.x.device)
    for a, g in zip(acts, grads):
        layer_map = layercam(a.detach(), g)[0].clamp(min=0)
        peak = float(layer_map.max())
        if peak <= 0:
            continue
        up = F.interpolate((layer_map / peak)[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
        fused = torch.maximum(fused, torch.tanh(gamma * up))
    target.report(1, 1)
    return MapResult(raw=fused, positive=fused, logits=rec.logits.detach(), class_idx=cls.index,
                     extras={"fused_layers": names})


LAYERCAM_FUSION = Function(run_layercam, needs_layer=True)  # LayerCAM with fuse_layers
