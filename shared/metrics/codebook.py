"""How a discrete or sparse code is used: codebook perplexity and usage, latent activity.

* codebooks (VQ-VAE): ``indices`` is an int tensor of any shape with values in [0, K).
* sparse codes (sparse autoencoders): ``codes`` is (N, L), one row of L latents per example;
  a latent is active on an example where its value is nonzero.

Every function returns a tensor (a 0-dim scalar, or one value per code/latent), so a model can log
it from ``training_step``; call ``float()`` for a plain number.
"""
from __future__ import annotations

import torch


def code_counts(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """How often each code occurs in ``indices``: (K,) int64."""
    flat = indices.detach().reshape(-1).long()
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= codebook_size):
        raise ValueError(f"code indices must lie in [0, {codebook_size}), got [{int(flat.min())}, {int(flat.max())}]")
    return torch.bincount(flat, minlength=codebook_size)


def perplexity(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """``exp`` of the entropy (nats) of the code frequencies in ``indices``: 1 when one code is used,
    K when all K codes are used equally often. A 0-dim float tensor."""
    p = code_counts(indices, codebook_size).float()
    p = p / p.sum().clamp_min(1.0)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


def usage(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Fraction of the K codes that occur at least once in ``indices``, in [0, 1]. 0-dim float."""
    return (code_counts(indices, codebook_size) > 0).float().mean()


def activation_frequency(codes: torch.Tensor) -> torch.Tensor:
    """Codes (N, L) → (L,): the fraction of the N examples on which each latent is nonzero."""
    if codes.ndim != 2:
        raise ValueError(f"sparse codes must be (N, L), got {tuple(codes.shape)}")
    return (codes.detach() != 0).float().mean(0)


def mean_l0(codes: torch.Tensor) -> torch.Tensor:
    """Codes (N, L) → the mean number of nonzero latents per example. 0-dim float."""
    return (codes.detach() != 0).float().sum(1).mean()


def dead_fraction(codes: torch.Tensor) -> torch.Tensor:
    """Codes (N, L) → the fraction of the L latents that are zero on every one of the N examples."""
    return (activation_frequency(codes) == 0).float().mean()
