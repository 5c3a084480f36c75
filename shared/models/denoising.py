"""The denoising autoencoder: corrupt a clean image, learn to map it back.

Training (:meth:`DenoisingAE.training_step`) takes a batch of clean images (B, C, H, W) in [0, 1],
corrupts it with torch's global RNG (so resumed runs are exact) and regresses the clean image with
an MSE loss, logging the batch PSNR. Corruptions (:func:`corrupt`):

* ``gaussian``: ``x + σ/255 · N(0, 1)``, σ on the 0..255 scale, *not* clipped to [0, 1] (the
  standard denoising benchmark protocol of DnCNN/BM3D papers);
* ``masking``: each pixel (all its channels) is set to 0 with probability ``mask_fraction``;
* ``salt_pepper``: each pixel is set to 0 or 1 (equally likely) with probability
  ``salt_pepper_fraction``.

The network is a fully convolutional encoder–decoder, a small U-Net: a 3×3 head, then per level
``blocks`` residual blocks and a stride-2 conv that halves the resolution (``widths`` gives the
channels per level), residual blocks at the bottleneck, and a decoder that doubles the resolution
with 2×2 transposed convs and *adds* the encoder's features of the same level (skip connections,
as in DRUNet; adding costs less than concatenating). Choices, and why:

* **skip connections**: a plain bottleneck autoencoder must squeeze all fine detail through the
  coarsest level and blurs edges; the skips carry detail past the bottleneck so the coarse levels
  only need to model context. This is what makes the autoencoder a competitive denoiser.
* **residual output** (``residual=True``): the network predicts the noise and the output is
  ``noisy − f(noisy)`` (DnCNN's residual learning). The noise is a simpler, zero-mean target than
  the image, and the identity is free, which trains faster. With ``residual=False`` the decoder
  predicts the clean image directly.
* **no normalisation layers**: GroupNorm/BatchNorm statistics depend on the image content and size,
  which differ between 64×64 training crops and full test images; DRUNet and Mohan et al.'s
  bias-free CNNs drop them for denoisers and generalise across sizes and noise levels.

Inference: :meth:`DenoisingAE.denoise` takes images of any size, reflect-pads them to a multiple of
the network's stride ``2 ** (len(widths) - 1)``, and crops the output back, clamped to [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..metrics.image import psnr
from ..model import TrainableModel
from ..registry import register
from .nets import PlainResBlock

Corruption = Literal["gaussian", "masking", "salt_pepper"]


@dataclass
class DenoisingAEConfig:
    channels: int = field(default=1, metadata={"help": "image channels: 1 (grey) or 3 (RGB)"})
    widths: tuple[int, ...] = field(default=(32, 64, 128), metadata={"help": "channels per U-Net level; each level after the first halves the resolution"})
    blocks: int = field(default=1, metadata={"help": "residual blocks per level (and at the bottleneck)"})
    residual: bool = field(default=True, metadata={"help": "predict the noise and subtract it (DnCNN's residual learning)"})
    corruption: Corruption = field(default="gaussian", metadata={"help": "how clean training images are corrupted"})
    sigma: float = field(default=25.0, metadata={"help": "gaussian noise std on the 0..255 scale"})
    mask_fraction: float = field(default=0.25, metadata={"help": "masking: fraction of pixels set to 0"})
    salt_pepper_fraction: float = field(default=0.1, metadata={"help": "salt_pepper: fraction of pixels set to 0 or 1"})

    def __post_init__(self):
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), not {self.channels}")
        if not self.widths or min(self.widths) < 1:
            raise ConfigError(f"widths must be one or more positive channel counts, not {tuple(self.widths)}")
        if self.blocks < 0:
            raise ConfigError(f"blocks must be 0 or more, not {self.blocks}")
        if self.sigma < 0:
            raise ConfigError(f"sigma must be 0 or more (0..255 scale), not {self.sigma}")
        for name in ("mask_fraction", "salt_pepper_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], not {getattr(self, name)}")


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + sigma/255 · N(0, 1)``, unclipped; ``x`` (B, C, H, W) in [0, 1], ``sigma`` on 0..255."""
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32, device=x.device)
    return x + noise.to(x.dtype) * (sigma / 255.0)


def _pixel_uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One U(0, 1) draw per pixel location, shared by its channels: (B, 1, H, W)."""
    b, _, h, w = x.shape
    return torch.rand((b, 1, h, w), generator=generator, device=x.device)


def masking_noise(x: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` with each pixel (all channels) set to 0 with probability ``fraction``."""
    return x.masked_fill(_pixel_uniform(x, generator) < fraction, 0.0)


def salt_pepper_noise(x: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` with each pixel set to 0 (pepper) or 1 (salt), each with probability ``fraction / 2``."""
    u = _pixel_uniform(x, generator)
    return x.masked_fill(u < fraction / 2, 0.0).masked_fill((u >= fraction / 2) & (u < fraction), 1.0)


def corrupt(x: torch.Tensor, config: DenoisingAEConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Corrupt clean images (B, C, H, W) in [0, 1] as ``config.corruption`` says (global RNG by default)."""
    match config.corruption:
        case "gaussian":
            return gaussian_noise(x, config.sigma, generator)
        case "masking":
            return masking_noise(x, config.mask_fraction, generator)
        case "salt_pepper":
            return salt_pepper_noise(x, config.salt_pepper_fraction, generator)
    raise ConfigError(f"unknown corruption {config.corruption!r}; use gaussian, masking or salt_pepper")


class UNet(nn.Module):
    """(B, C, H, W) with H, W divisible by ``2 ** (len(widths) - 1)`` → (B, C, H, W), unbounded."""

    def __init__(self, channels: int, widths: tuple[int, ...], blocks: int):
        super().__init__()
        self.head = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        for w, nxt in zip(widths[:-1], widths[1:]):
            self.down.append(nn.ModuleDict({
                "blocks": nn.Sequential(*[PlainResBlock(w) for _ in range(blocks)]),
                "pool": nn.Conv2d(w, nxt, 2, stride=2),
            }))
        self.bottleneck = nn.Sequential(*[PlainResBlock(widths[-1]) for _ in range(blocks)])
        self.up = nn.ModuleList()
        for w, nxt in zip(reversed(widths[:-1]), reversed(widths[1:])):
            self.up.append(nn.ModuleDict({
                "unpool": nn.ConvTranspose2d(nxt, w, 2, stride=2),
                "blocks": nn.Sequential(*[PlainResBlock(w) for _ in range(blocks)]),
            }))
        self.tail = nn.Conv2d(widths[0], channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        skips = []
        for level in self.down:
            h = level["blocks"](h)
            skips.append(h)
            h = level["pool"](h)
        h = self.bottleneck(h)
        for level, skip in zip(self.up, reversed(skips)):
            h = level["blocks"](level["unpool"](h) + skip)
        return self.tail(h)


@register("denoising_ae", DenoisingAEConfig)
class DenoisingAE(TrainableModel):
    """Denoising autoencoder: a small residual U-Net trained to undo gaussian, masking or salt-and-pepper noise."""

    def __init__(self, config: DenoisingAEConfig):
        super().__init__()
        self.config = config
        self.net = UNet(config.channels, tuple(config.widths), config.blocks)

    @property
    def stride(self) -> int:
        """Height and width the network needs to divide by: ``2 ** (len(widths) - 1)``."""
        return 2 ** (len(self.config.widths) - 1)

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """This model's training corruption of clean images (B, C, H, W) in [0, 1]."""
        return corrupt(x, self.config, generator)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        """Corrupted (B, C, H, W), H and W divisible by :attr:`stride` → estimate of the clean image (unclamped)."""
        out = self.net(noisy)
        return noisy - out if self.config.residual else out

    @torch.no_grad()
    def denoise(self, noisy: torch.Tensor) -> torch.Tensor:
        """Corrupted images (B, C, H, W) of any size → denoised (B, C, H, W) in [0, 1].

        Pads reflect-wise (replicate for images smaller than the padding) to a multiple of
        :attr:`stride` and crops the output back to the input's size.
        """
        if noisy.dim() != 4 or noisy.shape[1] != self.config.channels:
            raise ValueError(f"denoise expects (B, {self.config.channels}, H, W) images, got shape {tuple(noisy.shape)}")
        h, w = noisy.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        mode = "reflect" if ph < h and pw < w else "replicate"
        padded = F.pad(noisy, (0, pw, 0, ph), mode=mode) if ph or pw else noisy
        p = next(self.parameters())
        out = self(padded.to(p.device, p.dtype))
        return out[..., :h, :w].clamp(0.0, 1.0).to(noisy.device)

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        x_hat = self(self.corrupt(x))
        loss = F.mse_loss(x_hat.float(), x.float())
        with torch.no_grad():
            batch_psnr = psnr(x_hat.detach().float().clamp(0, 1), x).mean()
        return {"loss": loss, "psnr": batch_psnr}
