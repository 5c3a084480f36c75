"""Sparse autoencoders: an (often overcomplete) latent of which few units are active per example.

Two ways to make the code sparse:

* ``topk`` (Makhzani & Frey 2013; Gao et al. 2024): keep the ``k`` largest pre-activations of each
  example, pass them through ReLU, zero the rest. At most ``k`` latents are active, exactly ``k``
  when ``k`` pre-activations are positive.
* ``l1``: ReLU latents and the penalty ``l1_weight · mean over examples of Σᵢ |zᵢ| · ‖dᵢ‖``, where
  ``dᵢ`` is the decoder's first-layer weight column of latent ``i``. Weighting by ``‖dᵢ‖`` makes the
  penalty blind to rescaling (shrinking ``z`` while growing the decoder would otherwise dodge it).

With ``widths = ()`` encoder and decoder are single linear maps (the classic dictionary-learning
setup: the decoder's columns are the dictionary atoms), the encoder initialised as the decoder's
transpose; otherwise they are the MLP or conv networks of :mod:`.nets`. With ``center`` the encoder
sees ``x − m``, ``m`` the mean of the first training batch (averaged over ranks), kept as a buffer:
on uncentred data such as digits a few latents otherwise win every example and the rest die.
(Both as in Gao et al. 2024, who centre by a learned bias and tie the initialisation.)

Inputs are vectors ``(B, D)`` or images ``(B, C, H, W)``, in [0, 1]; the decoder ends in a
sigmoid and is trained on squared error (or BCE) summed over features.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from .. import distributed
from ..errors import ConfigError
from ..metrics.codebook import dead_fraction, mean_l0
from ..model import TrainableModel
from ..registry import register
from .ae import reconstruction_loss
from .nets import Decoder, Encoder, check_shape


@dataclass
class SparseAEConfig:
    input_shape: tuple[int, ...] = field(default=(1, 8, 8), metadata={"help": "(C, H, W) for images, (D,) for vectors"})
    latent_dim: int = field(default=128, metadata={"help": "number of latents; may exceed the input size (overcomplete)"})
    widths: tuple[int, ...] = field(default=(), metadata={"help": "hidden sizes (conv channels for images); empty: linear encoder and decoder"})
    sparsity: Literal["topk", "l1"] = field(default="topk", metadata={"help": "keep the k largest latents, or penalise their L1 norm"})
    k: int = field(default=8, metadata={"help": "active latents per example (topk)"})
    l1_weight: float = field(default=0.05, metadata={"help": "weight of the L1 penalty (l1)"})
    recon: Literal["mse", "bce"] = field(default="mse", metadata={"help": "reconstruction loss on [0, 1] data"})
    center: bool = field(default=True, metadata={"help": "encode x minus the first training batch's mean"})

    def __post_init__(self):
        check_shape(self.input_shape, self.widths)
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be at least 1, not {self.latent_dim}")
        if self.sparsity == "topk" and not 1 <= self.k <= self.latent_dim:
            raise ConfigError(f"k = {self.k} active latents must lie between 1 and latent_dim = {self.latent_dim}")
        if self.l1_weight < 0:
            raise ConfigError(f"l1_weight must be nonnegative, not {self.l1_weight}")


def topk_relu(pre: torch.Tensor, k: int) -> torch.Tensor:
    """(B, L) pre-activations → (B, L) with the ``k`` largest of each row kept (through ReLU), the rest 0."""
    values, idx = pre.topk(k, dim=1)
    return torch.zeros_like(pre).scatter(1, idx, torch.relu(values))


class LinearDecoder(nn.Module):
    """``z`` (B, latent_dim) → logits (B, *output_shape) by one linear map."""

    def __init__(self, output_shape: tuple[int, ...], latent_dim: int):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.head = nn.Linear(latent_dim, math.prod(output_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z).view(z.shape[0], *self.output_shape)


@register("sparse_ae", SparseAEConfig)
class SparseAE(TrainableModel):
    """Sparse autoencoder: TopK or L1-penalised ReLU latents, linear or deep encoder/decoder."""

    def __init__(self, config: SparseAEConfig):
        super().__init__()
        self.config = config
        self.conv = len(config.input_shape) == 3 and len(config.widths) > 0
        self.encoder = Encoder(config.input_shape, config.widths, config.latent_dim)
        if config.widths:
            self.decoder: nn.Module = Decoder(config.input_shape, config.widths, config.latent_dim)
        else:
            self.decoder = LinearDecoder(config.input_shape, config.latent_dim)
            with torch.no_grad():  # tied initialisation: encoder = decoderᵀ
                self.encoder.head.weight.copy_(self.decoder.head.weight.t())
                self.encoder.head.bias.zero_()
        self.register_buffer("input_mean", torch.zeros(config.input_shape))
        self.register_buffer("centred", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def _set_input_mean(self, x: torch.Tensor) -> None:
        """Centre the encoder's input on the mean of ``x`` (B, *input_shape), averaged over ranks."""
        mean = distributed.all_reduce_sum(x.float().mean(0)) / distributed.world_size()
        self.input_mean.copy_(mean)
        self.centred.fill_(True)

    def decoder_column_norms(self) -> torch.Tensor:
        """(latent_dim,): the norm of each latent's weight column in the decoder's first linear layer."""
        head = self.decoder.head
        first = head[0] if isinstance(head, nn.Sequential) else head
        return first.weight.norm(dim=0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) in [0, 1] → sparse codes (B, latent_dim), nonnegative."""
        pre = self.encoder(x - self.input_mean.to(x.dtype)).float()
        if self.config.sparsity == "topk":
            return topk_relu(pre, self.config.k)
        return torch.relu(pre)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, latent_dim) → reconstruction (B, *input_shape) in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"x_hat": reconstruction in [0, 1], "z": sparse codes (B, latent_dim)}``."""
        z = self.encode(x)
        return {"x_hat": self.decode(z), "z": z}

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if self.config.center and not bool(self.centred):
            self._set_input_mean(x)
        z = self.encode(x)
        recon = reconstruction_loss(self.decoder(z), x, self.config.recon)
        out = {"recon": recon.detach(), "l0": mean_l0(z), "dead_fraction": dead_fraction(z)}
        if self.config.sparsity == "l1":
            l1 = (z.abs() * self.decoder_column_norms().float()).sum(1).mean()
            out["l1"] = l1.detach()
            return {"loss": recon + self.config.l1_weight * l1, **out}
        return {"loss": recon, **out}
