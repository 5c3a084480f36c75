"""Variational autoencoders: VAE, β-VAE (fixed β or capacity-annealed), conditional VAE.

Loss per example: reconstruction (summed over features) + the KL term, where the KL term is
``β · KL`` (Higgins et al. 2017) or, with ``capacity_max > 0``, ``γ · |KL − C(t)|`` with the
capacity ``C`` raised linearly from 0 to ``capacity_max`` nats over ``capacity_steps`` steps
(Burgess et al. 2018). The CVAE conditions encoder and decoder on a one-hot class label.
The perceptual VAE takes its reconstruction term from :mod:`shared.losses.perceptual_adversarial`
(pixel + LPIPS + an adaptive-weight PatchGAN), as VQGAN's and Stable Diffusion's autoencoders do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..ema import ema_copy, update_ema
from ..errors import ConfigError
from ..losses.perceptual_adversarial import PerceptualAdversarialLoss, PerceptualLossConfig
from ..model import TrainableModel
from ..registry import register
from .ae import AEConfig, reconstruction_loss
from .nets import Decoder, Encoder


@dataclass
class VAEConfig(AEConfig):
    latent_dim: int = 2
    beta: float = field(default=1.0, metadata={"help": "weight of the KL term"})
    capacity_max: float = field(default=0.0, metadata={"help": "annealed KL capacity in nats (0: off, use beta)"})
    capacity_steps: int = 10000
    gamma: float = field(default=100.0, metadata={"help": "weight of |KL - C| when capacity_max > 0"})


@dataclass
class BetaVAEConfig(VAEConfig):
    input_shape: tuple[int, ...] = (1, 64, 64)
    widths: tuple[int, ...] = (32, 32, 64, 64)
    latent_dim: int = 10
    beta: float = 4.0


@dataclass
class CVAEConfig(VAEConfig):
    num_classes: int = 10


def kl_per_example(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) summed over latents, (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


class _GaussianVAE(TrainableModel):
    cond_dim = 0

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.conv = len(config.input_shape) == 3
        self.encoder = Encoder(config.input_shape, config.widths, 2 * config.latent_dim, self.cond_dim)
        self.decoder = Decoder(config.input_shape, config.widths, config.latent_dim, self.cond_dim)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def _cond(self, y: torch.Tensor | None) -> torch.Tensor | None:
        return None

    @property
    def inference_nets(self) -> tuple[nn.Module, nn.Module]:
        """The encoder and decoder that :meth:`encode` and :meth:`decode` use (training uses the live ones)."""
        return self.encoder, self.decoder

    def _posterior(self, encoder: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = encoder(x, self._cond(y)).float().chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, *input_shape) in [0, 1] → posterior mean and log-variance, each (B, latent_dim)."""
        return self._posterior(self.inference_nets[0], x, y)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) → mean image/vector (B, *input_shape) in [0, 1]."""
        return torch.sigmoid(self.inference_nets[1](z, self._cond(y)))

    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` draws from the prior, decoded: (n, *input_shape) in [0, 1]."""
        z = torch.randn(n, self.config.latent_dim, device=self.steps_done.device)
        return self.decode(z, y)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Reconstruct through the posterior mean: ``{"x_hat", "mu", "logvar"}``."""
        mu, logvar = self.encode(x, y)
        return {"x_hat": self.decode(mu, y), "mu": mu, "logvar": logvar}

    def capacity(self) -> float:
        c = self.config
        return c.capacity_max * min(1.0, float(self.steps_done) / max(1, c.capacity_steps))

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        x, y = (batch[0], batch[1]) if isinstance(batch, (list, tuple)) else (batch, None)
        mu, logvar = self._posterior(self.encoder, x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = reconstruction_loss(self.decoder(z, self._cond(y)), x, self.config.recon)
        kl = kl_per_example(mu, logvar).mean()
        return {"loss": recon + self.kl_term(kl), "recon": recon.detach(), **self.kl_logs(kl)}

    def kl_term(self, kl: torch.Tensor) -> torch.Tensor:
        """What the batch's mean KL adds to the loss: ``β · KL``, or ``γ · |KL − C(t)|`` with a capacity."""
        if self.config.capacity_max > 0:
            return self.config.gamma * (kl - self.capacity()).abs()
        return self.config.beta * kl

    def kl_logs(self, kl: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.config.capacity_max > 0:
            return {"kl": kl.detach(), "capacity": torch.tensor(self.capacity())}
        return {"kl": kl.detach()}

    def on_step_end(self, step: int) -> None:
        self.steps_done.fill_(step)


@register("vae", VAEConfig)
class VAE(_GaussianVAE):
    """Variational autoencoder (Kingma & Welling 2014), Gaussian posterior, N(0, I) prior."""


@register("beta_vae", BetaVAEConfig)
class BetaVAE(_GaussianVAE):
    """β-VAE: the VAE with a stronger or capacity-annealed KL term, for disentanglement."""


@register("cvae", CVAEConfig)
class CVAE(_GaussianVAE):
    """Conditional VAE: encoder and decoder see a one-hot class label; batches are ``(x, y)``."""

    def __init__(self, config: CVAEConfig):
        self.cond_dim = config.num_classes
        super().__init__(config)

    def _cond(self, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("the CVAE needs class labels y")
        return torch.nn.functional.one_hot(y.long(), self.config.num_classes).float()


@dataclass
class PerceptualVAEConfig(VAEConfig, PerceptualLossConfig):
    """The VAE's fields (``recon`` unused: the loss fields say how reconstructions are scored) and the loss's."""

    input_shape: tuple[int, ...] = (3, 64, 64)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    latent_dim: int = 256
    ema: float = field(default=0.0, metadata={"help": "decay of the encoder's and decoder's moving average that encode and decode use (0: none)"})

    def __post_init__(self):
        PerceptualLossConfig.__post_init__(self)
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema is a decay in [0, 1), not {self.ema}")
        if len(self.input_shape) != 3 or self.input_shape[0] != 3:
            raise ConfigError(f"the perceptual VAE takes RGB images (3, H, W), not input_shape {tuple(self.input_shape)}")


@register("perceptual_vae", PerceptualVAEConfig)
class PerceptualVAE(_GaussianVAE):
    """VAE of RGB images scored by pixel + LPIPS + PatchGAN (:class:`PerceptualAdversarialLoss`) + the KL term.

    Loss of the ``"main"`` optimiser (encoder and decoder): the loss's reconstruction term of the
    decoded posterior sample (means over pixels and batch) + ``β · KL`` (nats per image, or the
    capacity form). With ``gan_weight`` > 0 a second optimiser ``"discriminator"`` trains the
    loss's PatchGAN from ``disc_start`` on. With ``lpips_weight = gan_weight = 0`` this is the
    plain VAE on ``pixel_weight`` · MSE. With ``ema`` > 0, :meth:`encode`, :meth:`decode` and
    :meth:`sample` use moving averages of the encoder and decoder (as GAN recipes do); training
    steps the live ones.
    """

    def __init__(self, config: PerceptualVAEConfig):
        super().__init__(config)
        self.loss = PerceptualAdversarialLoss(config)
        if config.ema > 0:
            self.ema = nn.ModuleDict({"encoder": ema_copy(self.encoder), "decoder": ema_copy(self.decoder)})

    @property
    def inference_nets(self) -> tuple[nn.Module, nn.Module]:
        if self.config.ema > 0:
            return self.ema["encoder"], self.ema["decoder"]
        return self.encoder, self.decoder

    def on_step_end(self, step: int) -> None:
        super().on_step_end(step)
        if self.config.ema > 0:
            update_ema(self.ema["encoder"], self.encoder, self.config.ema, step)
            update_ema(self.ema["decoder"], self.decoder, self.config.ema, step)

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's last convolution weight, where the adaptive GAN weight compares gradients."""
        return self.decoder.trunk[-1].weight

    def optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        opts = {"main": torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)}
        if self.config.gan_weight > 0:
            opts["discriminator"] = self.loss.discriminator_optimizer(lr)
        return opts

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        step = int(self.steps_done)
        if optimizer == "main":
            mu, logvar = self._posterior(self.encoder, x, None)
            x_hat = torch.sigmoid(self.decoder(mu + torch.randn_like(mu) * (0.5 * logvar).exp())).float()
            self._last = x_hat.detach()
            out = self.loss.generator_loss(x, x_hat, self.last_layer, step)
            kl = kl_per_example(mu, logvar).mean()
            return out | {"loss": out["loss"] + self.kl_term(kl), **self.kl_logs(kl)}
        if optimizer == "discriminator":
            x_hat = self._last
            del self._last
            return self.loss.discriminator_loss(x, x_hat, step)
        raise ValueError(f"unknown optimiser {optimizer!r}")
