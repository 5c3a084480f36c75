"""Adversarial training parts: the PatchGAN discriminator, GAN losses, the fake-image history pool.

As in pix2pix / CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix):

* :class:`PatchDiscriminator`: the 70×70 PatchGAN (``NLayerDiscriminator``): images (B, C, H, W)
  in [-1, 1] → a map of real/fake logits (B, 1, H', W'), one per overlapping 70×70 patch
  (256 px → 30×30, 64 px → 6×6).
* :func:`gan_loss`: LSGAN (mean squared error to 1 for real, 0 for fake) or the vanilla GAN loss
  (binary cross-entropy on logits).
* :class:`ImagePool`: a history of 50 generated images; the discriminator sees a mix of new
  fakes and older ones (Shrivastava et al. 2017). Its randomness comes from torch's global RNG and
  its contents are buffers of the module, so checkpoints hold it and resumed runs are exact.
* :func:`init_weights`: N(0, 0.02) initialisation of conv and linear weights.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

GanMode = Literal["lsgan", "vanilla"]


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Conv and linear weights ~ N(0, std), biases 0; affine norm scales ~ N(1, std). Returns ``module``."""

    def init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)

    return module.apply(init)


class PatchDiscriminator(nn.Module):
    """PatchGAN: (B, channels, H, W) in [-1, 1] → logits (B, 1, H/2^n_layers - 2, W/2^n_layers - 2).

    ``n_layers`` = 3 gives the 70×70 receptive field: 4×4 convs (stride 2 ×n_layers, then stride
    1 twice), widths ``ndf · min(2^i, 8)``, instance norm (none on the first layer), LeakyReLU 0.2.
    """

    def __init__(self, channels: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def gan_loss(pred: torch.Tensor, real: bool, mode: GanMode = "lsgan") -> torch.Tensor:
    """Loss of discriminator outputs ``pred`` (any shape) against the label real (1) or fake (0).

    ``lsgan``: mean of (pred - label)²; ``vanilla``: binary cross-entropy of the logits ``pred``.
    Computed in fp32 (under autocast too).
    """
    pred = pred.float()
    target = torch.ones_like(pred) if real else torch.zeros_like(pred)
    if mode == "lsgan":
        return F.mse_loss(pred, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred, target)
    raise ValueError(f"unknown GAN loss {mode!r}; use lsgan or vanilla")


class ImagePool(nn.Module):
    """History of up to ``size`` generated images (the CycleGAN image buffer).

    :meth:`query` takes a batch (B, C, H, W) and returns a batch of the same shape: while the pool
    is filling, each image is stored and returned as is; once full, each image is, with
    probability 1/2, swapped for a random stored one (which is returned, the new one taking its
    place), else returned as is. Draws come from torch's global RNG. The stored images and their
    count are buffers (``images`` (size, C, H, W), allocated at the first query; ``count``), so they
    are part of ``state_dict`` and a checkpoint; loading a state resizes ``images`` to fit.
    """

    def __init__(self, size: int = 50):
        super().__init__()
        self.size = int(size)
        self.register_buffer("images", torch.zeros(0))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "images")
        if saved is not None and saved.shape != self.images.shape:  # allocated lazily: take the saved shape
            self.images = torch.zeros_like(saved, device=self.images.device, dtype=self.images.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) → the batch the discriminator should see (detached, same shape)."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.images.shape[1:] != images.shape[1:]:
            if int(self.count) > 0:
                raise ValueError(f"image pool holds images of shape {tuple(self.images.shape[1:])}, got {tuple(images.shape[1:])}")
            self.images = torch.zeros(self.size, *images.shape[1:], device=images.device, dtype=torch.float32)
        out = []
        for image in images:
            n = int(self.count)
            if n < self.size:
                self.images[n] = image
                self.count += 1
                out.append(image)
            elif float(torch.rand(())) > 0.5:
                i = int(torch.randint(0, self.size, ()))
                out.append(self.images[i].to(image.dtype).clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)
