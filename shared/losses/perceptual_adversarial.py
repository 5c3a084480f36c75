"""The perceptual-adversarial reconstruction loss: pixel + LPIPS + a PatchGAN with an adaptive weight.

What VQGAN and Stable Diffusion's autoencoder train with (taming-transformers'
``LPIPSWithDiscriminator``), and what HiFiC and MS-ILLM add to a codec's decoder, in one module that
every autoencoder of ensō can own:

* **pixel term**: MSE or L1 between x and x̂ (images in [0, 1]), times ``pixel_weight``
  (HiFiC: about 150 · MSE on [0, 1] images);
* **LPIPS** (AlexNet v0.1, backbone from the offline resolver of :mod:`shared.metrics.perceptual`),
  times ``lpips_weight``;
* **adversarial term**: a PatchGAN (:class:`~shared.losses.adversarial.PatchDiscriminator`,
  spectral norm optional), or heads on frozen AlexNet features
  (:class:`~shared.losses.feature_discriminator.FeatureDiscriminator`, ``disc_features``, with
  ``disc_fine_head`` one more head on the finest band), scores
  x̂; its loss (hinge or LSGAN) is weighted by ``gan_weight`` times
  taming's adaptive weight λ = ‖∇_w L_rec‖ / (‖∇_w L_G‖ + 1e-4), clamped to [0, 1e4], at the
  decoder's last layer w, and switched on from step ``disc_start``. With ``cond_channels`` > 0 the
  discriminator also sees the latent, upsampled to the image (HiFiC's conditioning).
* **augmentation** (``augment``): real and fake images are flipped and translated at random before
  the discriminator sees them (DiffAugment's translation), which keeps a discriminator on a few
  hundred photos from memorising them.

The discriminator belongs to the loss: a model that uses it returns
``{"main": ..., "discriminator": torch.optim.Adam(loss.discriminator.parameters())}`` from its
``optimizers`` and calls :meth:`PerceptualAdversarialLoss.generator_loss` in its ``"main"`` step and
:meth:`~PerceptualAdversarialLoss.discriminator_loss` in its ``"discriminator"`` step; the shared
trainer steps both. Randomness comes from torch's global RNG (exact resume).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..metrics.perceptual import lpips_model
from .adversarial import PatchDiscriminator, init_weights
from .feature_discriminator import FeatureDiscriminator


@dataclass
class PerceptualLossConfig:
    pixel: Literal["mse", "l1"] = field(default="mse", metadata={"help": "pixel term of the reconstruction loss"})
    pixel_weight: float = field(default=150.0, metadata={"help": "weight of the pixel term (images in [0, 1])"})
    lpips_weight: float = field(default=1.0, metadata={"help": "weight of LPIPS (AlexNet) (0: off)"})
    gan_weight: float = field(default=0.1, metadata={"help": "weight of the adversarial term, times the adaptive weight (0: off)"})
    adaptive_weight: bool = field(default=True, metadata={"help": "scale the adversarial term by taming's gradient-norm ratio at the last layer"})
    disc_start: int = field(default=0, metadata={"help": "step from which the adversarial term counts and the discriminator trains"})
    gan_loss: Literal["hinge", "lsgan"] = field(default="hinge", metadata={"help": "adversarial loss"})
    disc_features: Literal["pixels", "alexnet"] = field(
        default="pixels", metadata={"help": "what the discriminator sees: pixels (a PatchGAN) or frozen AlexNet features (small heads; learns in fewer steps)"}
    )
    disc_fine_head: bool = field(
        default=False, metadata={"help": "with disc_features alexnet: one more head on the finest band, which AlexNet's stride-4 first layer does not see"}
    )
    disc_width: int = field(default=64, metadata={"help": "discriminator width (first layer's channels)"})
    disc_layers: int = field(default=3, metadata={"help": "PatchGAN layers (3: 70×70 patches)"})
    disc_spectral_norm: bool = field(default=True, metadata={"help": "spectral norm on the discriminator's convolutions"})
    disc_lr_ratio: float = field(default=1.0, metadata={"help": "the discriminator's learning rate relative to the model's"})
    cond_channels: int = field(default=0, metadata={"help": "latent channels the discriminator is conditioned on (0: unconditional)"})
    augment: bool = field(default=True, metadata={"help": "random flips and translations of what the discriminator sees"})

    def __post_init__(self):
        if min(self.pixel_weight, self.lpips_weight, self.gan_weight) < 0:
            raise ConfigError("the loss weights must be non-negative")
        if self.disc_start < 0 or self.disc_layers < 1 or self.disc_width < 1 or self.cond_channels < 0:
            raise ConfigError("disc_start and cond_channels must be non-negative, disc_layers and disc_width positive")
        if self.disc_features == "alexnet" and self.cond_channels:
            raise ConfigError("a discriminator on AlexNet features cannot be conditioned on the latent; use disc_features pixels or cond_channels 0")
        if self.disc_fine_head and self.disc_features != "alexnet":
            raise ConfigError("disc_fine_head adds a head to the AlexNet discriminator; use it with disc_features alexnet (a PatchGAN sees pixels already)")


def translate_augment(*images: torch.Tensor, ratio: float = 0.125) -> tuple[torch.Tensor, ...]:
    """The same random horizontal flip and integer translation (up to ``ratio`` of each side,
    zero fill) applied to tensors (B, C, H, W) that share B, H, W: DiffAugment's translation."""
    x = images[0]
    B, _, H, W = x.shape
    flip = torch.rand(B, device=x.device) < 0.5
    dy = torch.randint(-int(H * ratio), int(H * ratio) + 1, (B,), device=x.device)
    dx = torch.randint(-int(W * ratio), int(W * ratio) + 1, (B,), device=x.device)
    ys = (torch.arange(H, device=x.device)[None, :] - dy[:, None])  # (B, H): source row of each output row
    xs = (torch.arange(W, device=x.device)[None, :] - dx[:, None])
    xs = torch.where(flip[:, None], W - 1 - xs, xs)
    valid = ((ys >= 0) & (ys < H))[:, :, None] & ((xs >= 0) & (xs < W))[:, None, :]  # (B, H, W)
    idx = ys.clamp(0, H - 1)[:, :, None] * W + xs.clamp(0, W - 1)[:, None, :]
    out = []
    for t in images:
        flat = t.flatten(2)
        g = flat.gather(2, idx.flatten(1)[:, None].expand(-1, t.shape[1], -1)).view_as(t)
        out.append(g * valid[:, None].to(t.dtype))
    return tuple(out)


def _spectral(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            _spectral(child)
    return module


class PerceptualAdversarialLoss(nn.Module):
    """Pixel + LPIPS + adaptive-weight PatchGAN loss; owns the discriminator (``.discriminator``).

    Images are (B, 3, H, W) in [0, 1]; ``latent`` (B, cond_channels, h, w) when conditioned.
    ``lpips_weights``: the AlexNet file (None: the resolver's search order). The LPIPS network is
    not a submodule: it is frozen, shared and never saved with the model; it is resolved at the
    first :meth:`reconstruction` (a command that trains checks for it before starting), so a
    model that owns this loss decodes without it.
    """

    def __init__(self, config: PerceptualLossConfig, lpips_weights=None):
        super().__init__()
        self.config = c = config
        self.lpips_weights = lpips_weights
        if c.disc_features == "alexnet":
            disc = FeatureDiscriminator(c.disc_width, lpips_weights, c.disc_fine_head)
        else:
            disc = init_weights(PatchDiscriminator(3 + c.cond_channels, c.disc_width, c.disc_layers))
        self.discriminator = _spectral(disc) if c.disc_spectral_norm else disc

    def gan_active(self, step: int) -> bool:
        return self.config.gan_weight > 0 and step >= self.config.disc_start

    def _score(self, x: torch.Tensor, latent: torch.Tensor | None) -> torch.Tensor:
        """Discriminator logits of images x in [0, 1] (and the latent, nearest-upsampled to x)."""
        if self.config.disc_features == "alexnet":
            return self.discriminator(x)
        x = x * 2 - 1
        if latent is not None:
            x = torch.cat([x, F.interpolate(latent.to(x.dtype), size=x.shape[-2:], mode="nearest")], 1)
        return self.discriminator(x)

    def _views(self, x: torch.Tensor, latent: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the discriminator sees: the images (and the latent, upsampled to them), augmented alike."""
        if not self.config.augment:
            return x, latent
        if latent is None:
            return translate_augment(x)[0], None
        up = F.interpolate(latent.float(), size=x.shape[-2:], mode="nearest")
        return translate_augment(x, up)

    def reconstruction(self, x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"pixel", "lpips"}``: the unweighted terms (means over the batch)."""
        x, x_hat = x.float(), x_hat.float()
        pixel = F.mse_loss(x_hat, x) if self.config.pixel == "mse" else F.l1_loss(x_hat, x)
        out = {"pixel": pixel}
        if self.config.lpips_weight > 0:
            net = lpips_model(self.lpips_weights).to(x.device)
            out["lpips"] = net(x_hat * 2 - 1, x * 2 - 1).mean()
        return out

    def generator_loss(
        self, x: torch.Tensor, x_hat: torch.Tensor, last_layer: torch.Tensor, step: int, latent: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The autoencoder's loss: ``{"loss", "pixel", "lpips", "gan", "gan_weight"}`` (scalars).
        ``last_layer``: the decoder's last weight, where the adaptive weight compares gradients."""
        c = self.config
        terms = self.reconstruction(x, x_hat)
        rec = c.pixel_weight * terms["pixel"] + c.lpips_weight * terms.get("lpips", 0.0)
        out = {"loss": rec, **terms}
        if not self.gan_active(step):
            return out
        for p in self.discriminator.parameters():
            p.requires_grad_(False)
        logits = self._score(*self._views(x_hat.float(), latent))
        g = -logits.float().mean() if c.gan_loss == "hinge" else (logits.float() - 1).pow(2).mean()
        for p in self.discriminator.parameters():
            p.requires_grad_(True)
        weight = torch.tensor(c.gan_weight, device=x.device)
        if c.adaptive_weight and torch.is_grad_enabled() and last_layer.requires_grad:
            g_rec = torch.autograd.grad(rec, last_layer, retain_graph=True)[0]
            g_gan = torch.autograd.grad(g, last_layer, retain_graph=True)[0]
            weight = weight * (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0, 1e4).detach()
        out.update(loss=rec + weight * g, gan=g, gan_weight=weight)
        return out

    def discriminator_loss(self, x: torch.Tensor, x_hat: torch.Tensor, step: int, latent: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The discriminator's loss on real ``x`` and (detached) reconstructions ``x_hat``:
        ``{"loss", "d_real", "d_fake"}``; zero (no gradient) before ``disc_start``."""
        if not self.gan_active(step):
            zero = sum(p.sum() * 0 for p in self.discriminator.parameters())
            return {"loss": zero}
        latent = None if latent is None else latent.detach()
        lr_ = self._score(*self._views(x.float(), latent)).float()
        lf = self._score(*self._views(x_hat.detach().float(), latent)).float()
        if self.config.gan_loss == "hinge":
            d_real, d_fake = F.relu(1 - lr_).mean(), F.relu(1 + lf).mean()
        else:
            d_real, d_fake = (lr_ - 1).pow(2).mean(), lf.pow(2).mean()
        return {"loss": 0.5 * (d_real + d_fake), "d_real": d_real, "d_fake": d_fake}

    def discriminator_optimizer(self, lr: float, betas=(0.5, 0.9)) -> torch.optim.Optimizer:
        """Adam over the discriminator at ``lr · disc_lr_ratio`` (taming's β = (0.5, 0.9))."""
        return torch.optim.Adam(self.discriminator.parameters(), lr=lr * self.config.disc_lr_ratio, betas=betas)
