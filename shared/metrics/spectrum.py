"""How much fine detail a reconstruction keeps: its radially averaged power spectrum against the original's.

An MSE-trained decoder predicts the average of what could be there, so its output lacks power at
high spatial frequencies (blur); a decoder that adds noise or invented texture has too much. The
measure here compares the two spectra where that shows, 0.25–0.5 cycles/pixel (the upper half of
the band up to Nyquist):

* :func:`radial_power_spectrum`: images (B, C, H, W) → the power per radial frequency bin, each
  image's mean over its channels, after a 2-D Hann window (so the crop's borders do not leak
  broadband power into every bin).
* :func:`high_frequency_db`: ``10 · log10(S_x̂(f) / S_x(f))`` averaged over the bins f in the band,
  where S is the radially averaged spectrum of the set (or of each image with ``per_image``).
  0 dB: as much fine detail as the original; below 0: blurrier (−3 dB is half the power);
  above 0: more high-frequency power than the original (noise, over-sharpening).
"""
from __future__ import annotations

import torch

#: the band (cycles/pixel) :func:`high_frequency_db` compares by default
HIGH_BAND = (0.25, 0.5)


def _check(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4 or min(x.shape[-2:]) < 8:
        raise ValueError(f"{name} must be a batch (B, C, H, W) of images of at least 8×8 pixels, not {tuple(x.shape)}")


def radial_power_spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power spectrum of images ``x`` (B, C, H, W), any range (float).

    Returns ``(freqs, power)``: ``freqs`` (K,) the bin centres in cycles/pixel, k / min(H, W) for
    k = 0 … min(H, W) // 2 (the last bin is Nyquist); ``power`` (B, K) float64, each image's mean
    |FFT|² over its channels and over the frequencies whose radius √(fx² + fy²) rounds to the bin,
    after each channel's mean is removed and a 2-D Hann window applied.
    """
    _check(x, "x")
    B, C, H, W = x.shape
    x = x.double()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    window = torch.outer(torch.hann_window(H, periodic=False, dtype=torch.float64), torch.hann_window(W, periodic=False, dtype=torch.float64))
    power = torch.fft.fft2(x * window.to(x.device)).abs().pow(2).mean(1)  # (B, H, W)
    fy, fx = torch.fft.fftfreq(H, dtype=torch.float64), torch.fft.fftfreq(W, dtype=torch.float64)
    n = min(H, W)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    index = torch.round(radius * n).long().flatten().to(x.device)  # bin of each frequency
    keep = index <= n // 2  # the corners beyond Nyquist along the diagonal are left out
    index, flat = index[keep], power.flatten(1)[:, keep]
    sums = torch.zeros(B, n // 2 + 1, dtype=torch.float64, device=x.device).index_add_(1, index, flat)
    counts = torch.bincount(index, minlength=n // 2 + 1).to(sums)
    return torch.arange(n // 2 + 1, dtype=torch.float64) / n, sums / counts


def high_frequency_db(
    x_hat: torch.Tensor, x: torch.Tensor, band: tuple[float, float] = HIGH_BAND, per_image: bool = False, eps: float = 1e-20
) -> torch.Tensor:
    """High-frequency power of reconstructions ``x_hat`` against originals ``x``, in dB.

    ``x_hat``, ``x``: (B, 3, H, W) pairs (any channel count works) in [0, 1], H, W ≥ 8. The mean,
    over the radial bins whose centre lies in ``band`` (cycles/pixel, inclusive), of
    ``10 · log10(S_x̂ / S_x)``, where S is :func:`radial_power_spectrum` averaged over the batch
    (a scalar tensor), or per image with ``per_image`` ((B,)). 0 for identical images, negative
    for blurred ones, positive with noise added. ``eps`` keeps flat (constant) images finite.
    """
    _check(x_hat, "x_hat")
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat and x must have one shape, not {tuple(x_hat.shape)} and {tuple(x.shape)}")
    lo, hi = band
    if not 0 <= lo < hi <= 0.5 * 2**0.5:
        raise ValueError(f"band must be (low, high) cycles/pixel with 0 ≤ low < high ≤ 0.707, not {band}")
    freqs, p_hat = radial_power_spectrum(x_hat)
    _, p = radial_power_spectrum(x)
    sel = (freqs >= lo - 1e-9) & (freqs <= hi + 1e-9)
    if not bool(sel.any()):
        raise ValueError(f"no frequency bin of a {x.shape[-2]}×{x.shape[-1]} image lies in the band {band}")
    if not per_image:
        p_hat, p = p_hat.mean(0, keepdim=True), p.mean(0, keepdim=True)
    db = 10 * torch.log10((p_hat[:, sel] + eps) / (p[:, sel] + eps))
    out = db.mean(1).float()
    return out if per_image else out[0]
