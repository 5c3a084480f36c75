"""Bjøntegaard deltas between two rate–distortion curves (VCEG-M33; the piecewise-cubic variant).

A curve is a few (rate, quality) points of one codec: rate in any positive unit (bits per pixel,
bytes), quality in a higher-is-better unit (PSNR dB, MS-SSIM dB; pass ``-LPIPS`` for LPIPS).

* :func:`bd_rate`: the average rate difference of ``test`` against ``anchor`` at equal quality,
  in percent (negative: ``test`` needs fewer bits). Log-rate is interpolated as a function of
  quality and averaged over the quality range both curves cover.
* :func:`bd_quality` (BD-PSNR for PSNR): the average quality difference at equal rate, in the
  quality's unit (positive: ``test`` is better), over the log-rate range both curves cover.
* :func:`efficient_points`: a curve reduced to the operating points worth picking (each better
  than every cheaper one), which both deltas accept; pass curves through it whose points may
  repeat or fall back (a codec that stores the same file at several settings).

As in the common implementation (the ``piecewise=1`` mode of the widely used ``bjontegaard``
script), curves are interpolated with monotone piecewise cubic Hermite polynomials (PCHIP,
:class:`scipy.interpolate.PchipInterpolator`); here the interpolants are integrated exactly instead
of by the trapezoidal rule on 100 samples (on Kodak curves the two agree to 0.003 percentage points).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import UserError


def _curve(rate: Sequence[float], quality: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    r, q = np.asarray(rate, dtype=np.float64).ravel(), np.asarray(quality, dtype=np.float64).ravel()
    if len(r) != len(q) or len(r) < 2:
        raise UserError(f"the {name} curve needs at least two (rate, quality) points of equal count, got {len(r)} rates and {len(q)} qualities")
    if not (np.isfinite(r).all() and np.isfinite(q).all()) or (r <= 0).any():
        raise UserError(f"the {name} curve holds non-finite values or rates ≤ 0: rates {r.tolist()}, qualities {q.tolist()}")
    return np.log(r), q


def efficient_points(rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """A curve's efficient operating points: the points sorted by rate, keeping a point only when its
    quality is strictly above every cheaper point's (at equal rates, the best one). Exact duplicates,
    and points that cost at least as much as another for no better quality, drop out; a NaN quality
    never qualifies. Input: ``rate`` and ``quality`` of equal length, in any order. Output: (rates,
    qualities) as float64 arrays, both strictly increasing, possibly fewer than two points."""
    r, q = np.asarray(rate, dtype=np.float64).ravel(), np.asarray(quality, dtype=np.float64).ravel()
    if len(r) != len(q):
        raise UserError(f"a curve needs as many rates as qualities, got {len(r)} rates and {len(q)} qualities")
    keep, best = [], -np.inf
    for i in np.lexsort((-q, r)):  # by rate, the best quality first among equal rates
        if q[i] > best:
            keep.append(i)
            best = q[i]
    return r[keep], q[keep]


def _mean_gap(x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray, what: str) -> float:
    """Mean of (y_b - y_a) over the overlap of the x ranges, both interpolated by PCHIP in x."""
    from scipy.interpolate import PchipInterpolator

    lo, hi = max(x_a.min(), x_b.min()), min(x_a.max(), x_b.max())
    if not hi > lo:
        raise UserError(f"the two curves do not overlap in {what} ([{x_a.min():.4g}, {x_a.max():.4g}] vs [{x_b.min():.4g}, {x_b.max():.4g}]); add points")
    integrals = []
    for x, y in ((x_a, y_a), (x_b, y_b)):
        order = np.argsort(x)
        xs, ys = x[order], y[order]
        if (np.diff(xs) <= 0).any():
            raise UserError(f"a curve repeats a {what} value ({xs.tolist()}); each point must have its own {what}")
        integrals.append(PchipInterpolator(xs, ys).integrate(lo, hi))
    return float((integrals[1] - integrals[0]) / (hi - lo))


def bd_rate(anchor_rate: Sequence[float], anchor_quality: Sequence[float], test_rate: Sequence[float], test_quality: Sequence[float]) -> float:
    """Bjøntegaard delta rate of ``test`` against ``anchor``, in percent: the mean of
    ``rate_test / rate_anchor - 1`` (in the log domain) at equal quality; −20 means 20 % fewer bits."""
    la, qa = _curve(anchor_rate, anchor_quality, "anchor")
    lt, qt = _curve(test_rate, test_quality, "test")
    return float((np.exp(_mean_gap(qa, la, qt, lt, "quality")) - 1.0) * 100.0)


def bd_quality(anchor_rate: Sequence[float], anchor_quality: Sequence[float], test_rate: Sequence[float], test_quality: Sequence[float]) -> float:
    """Bjøntegaard delta quality of ``test`` against ``anchor`` (BD-PSNR in dB for PSNR): the mean
    quality difference at equal rate; positive means ``test`` is better."""
    la, qa = _curve(anchor_rate, anchor_quality, "anchor")
    lt, qt = _curve(test_rate, test_quality, "test")
    return _mean_gap(la, qa, lt, qt, "log-rate")


#: BD-PSNR is :func:`bd_quality` with PSNR as the quality
bd_psnr = bd_quality
