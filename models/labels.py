"""ImageNet-1k category names in torchvision's class order (the order every registered backbone predicts in)."""
from __future__ import annotations

from torchvision.models import ResNet18_Weights

# Shipped inside torchvision itself: no download.
IMAGENET_CATEGORIES: tuple[str, ...] = tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def default_labels(num_classes: int) -> list[str]:
    """ImageNet names for a 1000-class head, else "class 0" … "class N-1"."""
    if num_classes == len(IMAGENET_CATEGORIES):
        return list(IMAGENET_CATEGORIES)
    return [f"class {i}" for i in range(num_classes)]
