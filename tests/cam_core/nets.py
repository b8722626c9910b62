"""Small hand-built networks whose explanations can be derived by hand in the tests."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GapNet(nn.Module):
    """conv → ReLU(inplace) → conv → ReLU → global average pool → one linear layer (CAM applies)."""

    def __init__(self, classes: int = 5, width: int = 6) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, 8, 3, padding=1, stride=2)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


class MlpHeadNet(nn.Module):
    """A conv trunk with a two-layer head: CAM does not apply, Grad-CAM does."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv(x)))


class TwoLayer(nn.Module):
    """y = W2 · act(W1 · vec(x) + b1) + b2, with a selectable activation form."""

    def __init__(self, act: str = "module", hidden: int = 7, classes: int = 3, pixels: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3 * pixels * pixels, hidden)
        self.fc2 = nn.Linear(hidden, classes)
        self.act = act
        self.relu = nn.ReLU(inplace=True)
        self.relu6 = nn.ReLU6()

    def hidden_act(self, z: torch.Tensor) -> torch.Tensor:
        if self.act == "module":
            return self.relu(z)
        if self.act == "functional":
            return F.relu(z)
        if self.act == "method_inplace":
            z.relu_()
            return z
        if self.act == "relu6":
            return self.relu6(z)
        raise ValueError(self.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.hidden_act(self.fc1(x.flatten(1))))


class ReusedRelu(nn.Module):
    """y = W3 · r(W2 · r(W1 · vec(x))) with ONE ReLU module used twice (like ResNet's BasicBlock.relu)."""

    def __init__(self, pixels: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3 * pixels * pixels, 6)
        self.fc2 = nn.Linear(6, 5)
        self.fc3 = nn.Linear(5, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x.flatten(1))))))


def seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise ``model`` deterministically, in float64, in eval mode."""
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p, std=0.5)
    return model.double().eval()


def capture(model: nn.Module, x: torch.Tensor, layer: nn.Module, cls: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A and ∂y^c/∂A by a plain full-graph forward (independent of cam_core's capture path)."""
    box = {}

    def hook(_m, _i, out):
        out.retain_grad()
        box["A"] = out

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            y = model(x.clone().requires_grad_(True))
            grads = torch.autograd.grad(y[0, cls], box["A"])[0]
    finally:
        handle.remove()
    return box["A"].detach(), grads
