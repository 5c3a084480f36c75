"""Image quality of reconstructions; images are float tensors in [0, 1]."""
from __future__ import annotations

import torch


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: (B, ...) × 2 → (B,)."""
    return ((x.float() - y.float()) ** 2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image, (B,). Identical images give +inf."""
    return 10.0 * torch.log10(peak**2 / mse(x, y))
