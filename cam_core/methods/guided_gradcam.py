"""Guided Grad-CAM (Selvaraju et al. 2017): guided backprop ⊙ Grad-CAM upsampled to the input size."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import MapResult, Target
from .gradcam import run_gradcam
from .pixel import run_guided_backprop


def run_guided_gradcam(target: Target) -> MapResult:
    cam = run_gradcam(target)
    guided = run_guided_backprop(target)
    size = target.x.shape[-2:]
    heat = F.interpolate(cam.positive[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    peak = float(heat.max())
    heat = heat / peak if peak > 0 else torch.zeros_like(heat)
    gradient = guided.gradient * heat
    saliency = gradient.abs().amax(dim=0)
    return MapResult(raw=saliency, positive=saliency, logits=cam.logits, gradient=gradient,
                     notes=cam.notes + guided.notes)
