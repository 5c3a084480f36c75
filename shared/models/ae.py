"""The plain autoencoder: x → z (a vector) → x̂, trained on reconstruction alone."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from ..model import TrainableModel
from ..registry import register
from .nets import Decoder, Encoder


@dataclass
class AEConfig:
    input_shape: tuple[int, ...] = field(default=(1, 8, 8), metadata={"help": "(C, H, W) for images, (D,) for vectors"})
    latent_dim: int = 16
    widths: tuple[int, ...] = field(default=(32, 64), metadata={"help": "conv channels per downsampling, or MLP hidden sizes"})
    recon: Literal["bce", "mse"] = field(default="bce", metadata={"help": "reconstruction loss on [0, 1] data"})


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-example reconstruction loss, summed over features and averaged over the batch.

    ``logits``: the decoder's raw output; ``x``: targets in [0, 1]. ``bce`` is binary cross-entropy
    on the logits, ``mse`` the squared error of ``sigmoid(logits)``.
    """
    logits, x = logits.float(), x.float()
    if kind == "bce":
        per = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        per = (torch.sigmoid(logits) - x) ** 2
    return per.flatten(1).sum(1).mean()


@register("ae", AEConfig)
class AutoEncoder(TrainableModel):
    """Plain autoencoder: deterministic encoder to a latent vector, decoder back."""

    def __init__(self, config: AEConfig):
        super().__init__()
        self.config = config
        self.conv = len(config.input_shape) == 3
        self.encoder = Encoder(config.input_shape, config.widths, config.latent_dim)
        self.decoder = Decoder(config.input_shape, config.widths, config.latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) in [0, 1] → (B, latent_dim)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) → reconstruction (B, *input_shape) in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"x_hat": reconstruction in [0, 1], "z": latent}``."""
        z = self.encode(x)
        return {"x_hat": self.decode(z), "z": z}

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score per example: mean squared reconstruction error, (B,)."""
        x_hat = self(x)["x_hat"].float()
        return ((x_hat - x.float()) ** 2).flatten(1).mean(1)

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        loss = reconstruction_loss(self.decoder(self.encode(x)), x, self.config.recon)
        return {"loss": loss}
