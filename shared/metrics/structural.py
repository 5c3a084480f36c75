"""Structural similarity of images in [0, 1]: MS-SSIM (Wang et al. 2003) through ``pytorch_msssim``.

Standard settings: 5 scales with the published weights, an 11×11 Gaussian window (σ = 1.5),
K = (0.01, 0.03), data range 1. Five scales need both sides of the image above 160 pixels.
"""
from __future__ import annotations

import torch

from ..errors import UserError

#: the smallest side MS-SSIM accepts with 5 scales and an 11-pixel window: (11 - 1) · 2⁴
MIN_SIDE = 160


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per image: (B, C, H, W) × 2 in [0, 1] → (B,) in [0, 1], 1 for identical images."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    if x.shape != y.shape or x.ndim != 4:
        raise UserError(f"ms_ssim needs two (B, C, H, W) batches of one shape, not {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) <= MIN_SIDE:
        raise UserError(f"MS-SSIM needs images larger than {MIN_SIDE} pixels on each side, got {x.shape[-1]}×{x.shape[-2]}")
    return _ms_ssim(x.float(), y.float(), data_range=1.0, size_average=False)


def ms_ssim_db(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM in decibels, ``-10·log10(1 - MS-SSIM)``, per image: (B,); identical images give +inf."""
    return -10.0 * torch.log10(1.0 - ms_ssim(x, y))
