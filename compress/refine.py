"""Encoder-side latent refinement: spend encoding time for a smaller or closer file.

The analysis transform g_a is amortised: one forward pass guesses a good latent for any image.
A few gradient steps on one image's own latent, through the frozen decoder and entropy model,
find a latent that costs less at the quality's trade-off λ (Campos et al. 2019, "Content adaptive
optimization for neural image compression"). Only the encoder works harder: a refined file has the
same format and decodes like any other.

The cost optimised is the model's estimate of what the file pays: λ times the distortion the
model trained on (255²·MSE, or 1 − MS-SSIM) over the image's own pixels, plus its bits per pixel,
with the latents rounded as :meth:`compress_latent` rounds them (y about its predicted mean, z
about the bottleneck's median) under the model's continuous scales (the file uses the nearest table
scale and the integer hyper-synthesis, within a fraction of a percent); rounding passes its
gradient straight through.
"""
from __future__ import annotations

import math

import torch

from .models.base import round_about

#: largest padded image (pixels) refined in one piece; refinement holds the decoder's activations
MAX_PIXELS = 4_000_000


def _bottleneck_bits(bottleneck, z: torch.Tensor) -> torch.Tensor:
    """Bits of z (1, C, h, w) rounded about the bottleneck's medians, as coded; straight-through."""
    z_hat = round_about(z, bottleneck._get_medians())
    values = z_hat.permute(1, 0, 2, 3).reshape(z.shape[1], 1, -1)
    likelihood, _, _ = bottleneck._likelihood(values)
    return -bottleneck.likelihood_lower_bound(likelihood).log2().sum(), z_hat


def rd_cost(model, x: torch.Tensor, v: torch.Tensor, inv_gain: torch.Tensor, lam: float, synthesis, size: tuple[int, int]) -> torch.Tensor:
    """λ·distortion + bpp of coding the gained latent ``v`` (1, M, h, w) (g_a's output times the
    quality's gain) of the padded image ``x`` (1, 3, 16h, 16w) in [0, 1] whose first ``size``
    = (H, W) pixels are the image; ``synthesis`` runs g_s (so the caller picks its precision)."""
    if hasattr(model, "gaussian_conditional"):
        z_bits, z_hat = _bottleneck_bits(model.entropy_bottleneck, model.h_a(v))
        scales, means = model.entropy_parameters(z_hat)
        v_hat = round_about(v, means if means is not None else 0.0)
        gc = model.gaussian_conditional
        likelihood = gc.likelihood_lower_bound(gc._likelihood(v_hat, scales, means))
        bits = z_bits - likelihood.log2().sum()
    else:
        bits, v_hat = _bottleneck_bits(model.entropy_bottleneck, v)
    H, W = size
    x_hat = synthesis(v_hat * inv_gain)[..., :H, :W]
    return lam * model.distortion(x_hat.clamp(0, 1), x[..., :H, :W]).sum() + bits / (H * W)


def refine_latent(model, x: torch.Tensor, y: torch.Tensor, quality: float, steps: int, synthesis,
                  size: tuple[int, int] | None = None, lr: float = 0.005) -> torch.Tensor:
    """The un-gained latent ``y`` = g_a(x) (1, M, h, w) of the padded image ``x`` (1, 3, 16h, 16w)
    in [0, 1], whose first ``size`` = (H, W) pixels are the image (default: all), after ``steps``
    Adam steps on :func:`rd_cost` at ``quality`` (on the gained latent): the lowest-cost latent
    seen, the starting one included, so the estimated cost never rises."""
    size = size or tuple(x.shape[-2:])
    gain, inv_gain = (g.detach() for g in model.gains(torch.tensor([quality])))
    lam = model.quality_lambda(quality)
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    v = (y * gain).detach().requires_grad_(True)  # Adam's steps in units of the rounding step
    opt = torch.optim.Adam([v], lr=lr)
    best, best_v = math.inf, v.detach().clone()
    try:
        with torch.enable_grad():
            for step in range(steps + 1):
                cost = rd_cost(model, x, v, inv_gain, lam, synthesis, size)
                if cost.item() < best:
                    best, best_v = cost.item(), v.detach().clone()
                if step == steps:
                    break
                opt.zero_grad(set_to_none=True)
                cost.backward()
                opt.step()
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
    return best_v / gain
