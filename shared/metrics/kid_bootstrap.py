"""A paired bootstrap interval for the difference of two KIDs measured against one reference set.

Two decoders of the same files (or any two methods) produce reconstructions of the same N
originals, so their feature sets are paired row by row with the originals': row i of ``feats_a``,
``feats_b`` and ``ref`` come from patch i. :func:`paired_kid_difference` resamples the patch
indices with replacement, the same indices for all three sets, and recomputes
``KID(ref, a) − KID(ref, b)`` on each resample; the interval is the percentile interval of those
differences. Because the indices are shared, what the patches have in common (their content)
cancels, and the interval reflects only how the two methods differ: for ``a == b`` every
resampled difference is exactly 0.

KID here is the unbiased MMD² over the whole set with the cubic polynomial kernel
k(x, y) = (x·y / D + 1)³ of :func:`shared.metrics.distribution.kid` (which averages it over random
subsets; on one subset holding every row both give the same number). The kernel matrices are
computed once and indexed per resample, so 1,000 resamples of 192 patches take well under a second.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class KidDifference:
    """``difference``: KID(ref, a) − KID(ref, b) on all rows; ``low``, ``high``: its bootstrap
    interval at ``level``; ``kid_a``, ``kid_b``: the two whole-set KIDs; ``resamples``, ``rows``."""

    kid_a: float
    kid_b: float
    difference: float
    low: float
    high: float
    level: float
    resamples: int
    rows: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of 0 (a difference the resampling supports)."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def _kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1) ** 3


def _mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> np.ndarray:
    """Unbiased MMD² from (R, m, m) kernel blocks (R resamples of m rows each) → (R,)."""
    m = k_xx.shape[-1]
    within = (k_xx.sum((-2, -1)) - np.trace(k_xx, axis1=-2, axis2=-1) + k_yy.sum((-2, -1)) - np.trace(k_yy, axis1=-2, axis2=-1)) / (m * (m - 1))
    return within - 2 * k_xy.sum((-2, -1)) / (m * m)


def paired_kid_difference(
    ref: np.ndarray, feats_a: np.ndarray, feats_b: np.ndarray, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> KidDifference:
    """KID(ref, a) − KID(ref, b) and its paired bootstrap interval.

    ``ref``, ``feats_a``, ``feats_b``: (N, D) features, row i of each from the same patch (the
    original, method a's and method b's reconstruction); N ≥ 2. ``resamples`` draws of N indices
    with replacement (``np.random.RandomState(seed)``), the same draw for the three sets; the
    interval is the ((1 − level) / 2, (1 + level) / 2) percentiles of the resampled differences.
    Negative differences: a's reconstructions are closer to the originals' distribution than b's.
    Raises ValueError for mismatched shapes, N < 2, resamples < 1 or a level outside (0, 1).
    """
    r, a, b = (np.asarray(f, dtype=np.float64) for f in (ref, feats_a, feats_b))
    if r.ndim != 2 or r.shape != a.shape or r.shape != b.shape:
        raise ValueError(f"paired_kid_difference needs three (N, D) feature arrays of one shape, not {r.shape}, {a.shape} and {b.shape}")
    n = len(r)
    if n < 2 or resamples < 1 or not 0 < level < 1:
        raise ValueError(f"paired_kid_difference needs N ≥ 2 rows, resamples ≥ 1 and level in (0, 1), not {n}, {resamples} and {level}")
    k_rr, k_aa, k_bb, k_ra, k_rb = _kernel(r, r), _kernel(a, a), _kernel(b, b), _kernel(r, a), _kernel(r, b)
    whole = [float(_mmd2(k_rr[None], k[None], kx[None])[0]) for k, kx in ((k_aa, k_ra), (k_bb, k_rb))]
    idx = np.random.RandomState(seed).randint(0, n, size=(resamples, n))
    rows, cols = idx[:, :, None], idx[:, None, :]
    diffs = np.empty(resamples)
    for start in range(0, resamples, 64):  # in chunks: 64 × N × N per kernel block
        sl = slice(start, start + 64)
        i, j = rows[sl], cols[sl]
        k_rr_s = k_rr[i, j]
        diffs[sl] = _mmd2(k_rr_s, k_aa[i, j], k_ra[i, j]) - _mmd2(k_rr_s, k_bb[i, j], k_rb[i, j])
    low, high = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    return KidDifference(whole[0], whole[1], whole[0] - whole[1], float(low), float(high), level, resamples, n)
