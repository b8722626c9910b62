"""Occlusion and SmoothGrad against plain loops written here."""
import numpy as np
import pytest
import torch

from cam_core import explain
from cam_core.methods.wrappers import sample_noise

from .nets import GapNet, seeded

X = torch.randn(1, 3, 12, 10, generator=torch.Generator().manual_seed(9), dtype=torch.float64)


@pytest.mark.parametrize("patch,stride,fill", [(4, 2, 0.0), (5, 3, (0.5, -1.0, 2.0)), (12, 12, 1.5)])
def test_occlusion_equals_a_plain_loop(patch, stride, fill):
    net = seeded(GapNet(), seed=1)
    cls = 2
    with torch.no_grad():
        base = net(X).softmax(1)[0, cls]

    def starts(length):
        s = list(range(0, max(length - patch, 0) + 1, stride))
        if s[-1] + patch < length:
            s.append(length - patch)
        return s

    H, W = X.shape[-2:]
    total, count = np.zeros((H, W)), np.zeros((H, W))
    probs, tops = [], []
    fill_t = torch.tensor(fill, dtype=torch.float64).reshape(-1, 1, 1)
    for r in starts(H):
        for c in starts(W):
            occluded = X.clone()
            occluded[0, :, r:r + patch, c:c + patch] = fill_t
            with torch.no_grad():
                p = net(occluded).softmax(1)[0]
            probs.append(float(p[cls]))
            tops.append(int(p.argmax()))
            total[r:r + patch, c:c + patch] += float(base - p[cls])
            count[r:r + patch, c:c + patch] += 1
    expected = total / count
    seen = []
    result = explain(net, X, "occlusion", target_class=cls, patch=patch, stride=stride, fill=fill, chunk=3,
                     progress=lambda done, n: seen.append((done, n)))
    assert result.raw == pytest.approx(expected, abs=1e-12)
    assert result.extras["prob_grid"].ravel() == pytest.approx(probs, abs=1e-12)
    assert result.extras["top_class_grid"].ravel().tolist() == tops
    assert seen[-1] == (len(probs), len(probs)) and len(seen) == -(-len(probs) // 3)


@pytest.mark.parametrize("squared", [False, True])
def test_smoothgrad_equals_a_plain_loop_with_the_same_noise(squared):
    net = seeded(GapNet(), seed=2)
    n, noise, seed, cls = 7, 0.2, 11, 1
    sigma = noise * float(X.max() - X.min())
    total = torch.zeros_like(X[0])
    for i in range(n):
        generator = torch.Generator().manual_seed(seed + i)
        xi = (X + torch.randn(X.shape, generator=generator) * sigma).requires_grad_(True)
        (g,) = torch.autograd.grad(net(xi)[0, cls], xi)
        total += g[0] ** 2 if squared else g[0]
    expected = total / n
    result = explain(net, X, "smoothgrad", target_class=cls, samples=n, noise=noise, seed=seed,
                     squared=squared, chunk=3)
    assert result.gradient == pytest.approx(expected.numpy(), abs=1e-10)
    assert result.raw == pytest.approx(expected.abs().amax(0).numpy(), abs=1e-10)


def test_smoothgrad_noise_does_not_depend_on_chunking():
    a = torch.cat([sample_noise((1, 3, 4, 4), 1.0, 5, i) for i in range(6)])
    b = torch.cat([sample_noise((1, 3, 4, 4), 1.0, 5, i) for i in range(3)]
                  + [sample_noise((1, 3, 4, 4), 1.0, 5, i) for i in range(3, 6)])
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])
