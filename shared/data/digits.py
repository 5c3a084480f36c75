"""Handwritten digits that ship with scikit-learn (offline): 1,797 images of 8×8, 10 classes."""
from __future__ import annotations

import torch


def load_digits(split: str = "all", seed: int = 0, test_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits as ``(x, y)``: x (N, 1, 8, 8) float in [0, 1], y (N,) int64 class labels.

    ``split``: ``all``, or ``train`` / ``test`` from one fixed shuffled split by ``seed``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    if split == "all":
        return x, y
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(x) * test_fraction)
    idx = perm[:n_test] if split == "test" else perm[n_test:]
    return x[idx], y[idx]
