"""The sequence autoencoder: a window of a time series → one latent vector → the window again.

Input windows are ``(B, T, F)`` float tensors: ``T`` time steps of ``F`` standardised features
(zero mean, unit variance per series; see :mod:`shared.data.series`). The encoder is a GRU (its
last hidden state) or a temporal convolutional network (residual blocks of dilated 1-D
convolutions, then a linear map of the flattened features) down to a ``(B, latent_dim)`` vector;
the decoder mirrors it (a GRU unrolled from the latent, or a linear map to a ``(hidden, T)`` map
followed by dilated conv blocks) and returns ``(B, T, F)``. The loss is the mean squared error, and
:meth:`SequenceAE.score` turns it into one anomaly score per window.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..model import TrainableModel
from ..registry import register


@dataclass
class SequenceAEConfig:
    window: int = field(default=64, metadata={"help": "time steps T per window"})
    features: int = field(default=1, metadata={"help": "features F per time step"})
    latent_dim: int = 8
    hidden: int = field(default=32, metadata={"help": "GRU hidden size, or TCN channels"})
    encoder: Literal["gru", "tcn"] = field(default="tcn", metadata={"help": "GRU, or temporal conv net of dilated 1-D convs"})
    tcn_levels: int = field(default=4, metadata={"help": "TCN residual blocks, dilations 1, 2, 4, ..."})
    kernel_size: int = field(default=3, metadata={"help": "TCN kernel size (odd)"})

    def __post_init__(self):
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd for 'same' padding, not {self.kernel_size}")
        if min(self.window, self.features, self.latent_dim, self.hidden) < 1:
            raise ConfigError("window, features, latent_dim and hidden must all be at least 1")


class TemporalBlock(nn.Module):
    """Residual block of two dilated 'same'-padded 1-D convs: (B, C, T) → (B, C, T)."""

    def __init__(self, channels: int, dilation: int, kernel_size: int):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.f = nn.Sequential(
            nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation),
            nn.SiLU(),
            nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.f(x))


def tcn(channels: int, levels: int, kernel_size: int) -> nn.Sequential:
    """``levels`` temporal blocks with dilations 1, 2, 4, ...: receptive field 1 + 2(k−1)(2^levels − 1)."""
    return nn.Sequential(*[TemporalBlock(channels, 2**i, kernel_size) for i in range(levels)])


@register("sequence_ae", SequenceAEConfig)
class SequenceAE(TrainableModel):
    """Sequence autoencoder: (B, T, F) windows → (B, latent) → (B, T, F), GRU or dilated-TCN, MSE."""

    conv = False  # the trainer's channels_last is for 4-D image convs

    def __init__(self, config: SequenceAEConfig):
        super().__init__()
        c = self.config = config
        if c.encoder == "gru":
            self.enc_rnn = nn.GRU(c.features, c.hidden, batch_first=True)
            self.enc_head = nn.Linear(c.hidden, c.latent_dim)
            self.dec_init = nn.Linear(c.latent_dim, c.hidden)
            self.dec_rnn = nn.GRU(c.latent_dim, c.hidden, batch_first=True)
            self.dec_out = nn.Linear(c.hidden, c.features)
        else:
            self.enc_in = nn.Conv1d(c.features, c.hidden, 1)
            self.enc_tcn = tcn(c.hidden, c.tcn_levels, c.kernel_size)
            self.enc_head = nn.Linear(c.hidden * c.window, c.latent_dim)
            self.dec_head = nn.Linear(c.latent_dim, c.hidden * c.window)
            self.dec_tcn = tcn(c.hidden, c.tcn_levels, c.kernel_size)
            self.dec_out = nn.Conv1d(c.hidden, c.features, 1)

    def _check(self, x: torch.Tensor) -> None:
        c = self.config
        if x.ndim != 3 or x.shape[1] != c.window or x.shape[2] != c.features:
            raise ValueError(f"the sequence AE takes windows of shape (B, {c.window}, {c.features}), not {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Windows (B, T, F) → latent (B, latent_dim)."""
        self._check(x)
        if self.config.encoder == "gru":
            _, h = self.enc_rnn(x)
            return self.enc_head(h[-1])
        h = self.enc_tcn(self.enc_in(x.transpose(1, 2)))
        return self.enc_head(h.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, latent_dim) → reconstructed windows (B, T, F)."""
        c = self.config
        if c.encoder == "gru":
            h0 = torch.tanh(self.dec_init(z)).unsqueeze(0).contiguous()
            out, _ = self.dec_rnn(z.unsqueeze(1).expand(-1, c.window, -1).contiguous(), h0)
            return self.dec_out(out)
        h = self.dec_head(z).view(z.shape[0], c.hidden, c.window)
        return self.dec_out(self.dec_tcn(h)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"x_hat": (B, T, F) reconstruction, "z": (B, latent_dim)}``."""
        z = self.encode(x)
        return {"x_hat": self.decode(z), "z": z}

    def pointwise_error(self, x: torch.Tensor) -> torch.Tensor:
        """Squared reconstruction error per time step, averaged over features: (B, T)."""
        x_hat = self(x)["x_hat"].float()
        return ((x_hat - x.float()) ** 2).mean(2)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score per window: mean squared reconstruction error, (B,)."""
        return self.pointwise_error(x).mean(1)

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        loss = F.mse_loss(self(x)["x_hat"].float(), x.float())
        return {"loss": loss}
