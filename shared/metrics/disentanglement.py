"""Disentanglement of a learned code against known ground-truth factors.

:func:`mig`: the Mutual Information Gap (Chen et al. 2018), computed as in disentanglement_lib:
each latent (the posterior means) is discretised into ``bins`` equal-width bins over its own range,
the discrete mutual information ``I(z_j; v_k)`` between every latent ``j`` and factor ``k`` is taken
with :func:`sklearn.metrics.mutual_info_score` (nats), and for every factor the gap between its two
most informative latents is divided by the factor's entropy ``H(v_k)``. MIG is the mean of these
gaps over factors, in [0, 1]: 1 when each factor lives in one latent alone, 0 when no latent
knows more about a factor than the next one does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError


@dataclass
class MIGResult:
    """``mig``: the mean gap; ``gaps`` (K,): per-factor normalised gap; ``mutual_info`` (D, K) nats;
    ``entropy`` (K,) nats; ``top_latent`` (K,): index of each factor's most informative latent."""

    mig: float
    gaps: np.ndarray
    mutual_info: np.ndarray
    entropy: np.ndarray
    top_latent: np.ndarray


def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """(N, D) real codes → (N, D) int bin indices, ``bins`` equal-width bins per column over its range."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def _numpy(a) -> np.ndarray:
    return a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def mig(codes, factors, bins: int = 20) -> MIGResult:
    """MIG of ``codes`` (N, D) real latents against ``factors`` (N, K) discrete factor values.

    Needs D ≥ 2 latents and factors that each take at least two values.
    """
    from sklearn.metrics import mutual_info_score

    z, v = _numpy(codes), _numpy(factors)
    if z.ndim != 2 or v.ndim != 2 or len(z) != len(v):
        raise UserError(f"mig needs codes (N, D) and factors (N, K) of one length N, not {z.shape} and {v.shape}")
    if z.shape[1] < 2:
        raise UserError("mig needs at least two latents to measure a gap")
    if not np.isfinite(z).all():
        raise UserError("mig: the codes hold NaN or infinite values")
    zd = discretize(z, bins)
    d, k = z.shape[1], v.shape[1]
    mi = np.array([[mutual_info_score(v[:, b], zd[:, a]) for b in range(k)] for a in range(d)])
    entropy = np.array([mutual_info_score(v[:, b], v[:, b]) for b in range(k)])
    if (entropy <= 0).any():
        raise UserError(f"mig: factor(s) {np.flatnonzero(entropy <= 0).tolist()} take one value only; sample data where every factor varies")
    top2 = np.sort(mi, axis=0)[::-1][:2]
    gaps = (top2[0] - top2[1]) / entropy
    return MIGResult(float(gaps.mean()), gaps, mi, entropy, mi.argmax(axis=0))
