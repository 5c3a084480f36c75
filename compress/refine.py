"""Encoder-side latent refinement: spend encoding time for a smaller or closer file.

The analysis transform g_a is amortised: one forward pass guesses a good latent for any image.
Gradient steps on one image's own latent, through the frozen decoder and entropy model, find a
latent that costs less at the quality's trade-off λ (Campos et al. 2019, "Content adaptive
optimization for neural image compression"). Only the encoder works harder: a refined file has the
same format and decodes like any other.

The cost is the model's estimate of what the file pays: λ times the distortion the model trained on
(255²·MSE, or 1 − MS-SSIM) over the image's own pixels, plus its bits per pixel, with z rounded
about the bottleneck's median and y about its predicted mean as :meth:`compress_latent` rounds them
(the file uses the nearest table scale and the integer hyper-synthesis, within a fraction of a
percent). While optimising, y's rounding is relaxed by stochastic Gumbel annealing (Yang et al.
2020, "Improving inference for neural image compression"): each element goes to the grid point
below or above with a soft, noisy weight that sharpens as the temperature falls, so the steps see
which way each rounding should go, where a straight-through rounding's gradient stalls.
"""
from __future__ import annotations

import math

import torch
from compressai.ops import quantize_ste

from .models.base import annealed_round

#: largest padded image (pixels) refined in one piece; refinement holds the decoder's activations
MAX_PIXELS = 4_000_000
#: the annealing's temperatures: the most it starts at, and where the last step ends
TAU_MAX, TAU_END = 0.5, 0.23
#: Adam's step, in units of the rounding grid
LR = 0.02


def rd_cost(model, x: torch.Tensor, v: torch.Tensor, inv_gain: torch.Tensor, lam: float, synthesis,
            size: tuple[int, int], relax=None) -> torch.Tensor:
    """λ·distortion + bpp of coding the gained latent ``v`` (1, M, h, w) (g_a's output times the
    quality's gain) of the padded image ``x`` (1, 3, 16h, 16w) in [0, 1] whose first ``size``
    = (H, W) pixels are the image; ``synthesis`` runs g_s (so the caller picks its precision).
    ``relax`` maps y − mean to its relaxed rounding (the mean held fixed); None rounds it as the
    file does."""
    v_hat, likelihoods, _ = model.placed_entropy(v, relax or quantize_ste, hold_centre=relax is not None)
    bits = -sum(lik.log2().sum() for lik in likelihoods.values())
    H, W = size
    x_hat = synthesis(v_hat * inv_gain)[..., :H, :W]
    return lam * model.distortion(x_hat.clamp(0, 1), x[..., :H, :W]).sum() + bits / (H * W)


def refine_latent(model, x: torch.Tensor, y: torch.Tensor, quality: float, steps: int, synthesis,
                  size: tuple[int, int] | None = None, lr: float = LR, seed: int = 0) -> torch.Tensor:
    """The un-gained latent ``y`` = g_a(x) (1, M, h, w) of the padded image ``x`` (1, 3, 16h, 16w)
    in [0, 1], whose first ``size`` = (H, W) pixels are the image (default: all), after ``steps``
    Adam steps on :func:`rd_cost` at ``quality`` under annealed rounding of y (temperature
    min(TAU_MAX, exp(−c·t)), c set so the last step is at TAU_END). Returns the refined latent or
    the starting one, whichever the rounded cost prefers, so the estimated cost never rises; the
    same inputs and seed give the same latent."""
    size = size or tuple(x.shape[-2:])
    gain, inv_gain = (g.detach() for g in model.gains(torch.tensor([quality])))
    lam = model.quality_lambda(quality)
    decay = -math.log(TAU_END) / max(1, steps - 1)
    generator = torch.Generator().manual_seed(seed)
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    start = (y * gain).detach()
    v = start.clone().requires_grad_(True)  # Adam's steps in units of the rounding step
    opt = torch.optim.Adam([v], lr=lr)
    try:
        with torch.enable_grad():
            for step in range(steps):
                tau = min(TAU_MAX, math.exp(-decay * step))
                cost = rd_cost(model, x, v, inv_gain, lam, synthesis, size, lambda u: annealed_round(u, tau, generator))
                opt.zero_grad(set_to_none=True)
                cost.backward()
                opt.step()
        with torch.no_grad():
            costs = [rd_cost(model, x, w, inv_gain, lam, synthesis, size).item() for w in (start, v.detach())]
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
    return (v.detach() if costs[1] < costs[0] else start) / gain
