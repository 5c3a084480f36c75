"""A fully convolutional autoencoder for photos of any size: a latent *map*, ResNet blocks at the bottleneck."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..model import TrainableModel
from ..registry import register
from .nets import ConvTrunk


@dataclass
class ConvAEConfig:
    channels: int = 3
    widths: tuple[int, ...] = field(default=(64, 128), metadata={"help": "channels per stride-2 stage"})
    latent_channels: int = 16
    res_blocks: int = field(default=4, metadata={"help": "residual blocks at the bottleneck, each side"})


@register("resnet_ae", ConvAEConfig)
class ResNetAE(TrainableModel):
    """Fully convolutional AE: (B, C, H, W) → (B, latent_channels, H/2^k, W/2^k) → (B, C, H, W), MSE."""

    def __init__(self, config: ConvAEConfig):
        super().__init__()
        self.config = config
        self.net = ConvTrunk(config.channels, config.widths, config.latent_channels, config.res_blocks)

    @property
    def stride(self) -> int:
        return 2 ** len(self.config.widths)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [0, 1], H and W divisible by :attr:`stride` → latent map."""
        return self.net.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent map → image (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.net.decoder(z))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encode(x)
        return {"x_hat": self.decode(z), "z": z}

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        loss = F.mse_loss(self(x)["x_hat"].float(), x.float())
        return {"loss": loss}
