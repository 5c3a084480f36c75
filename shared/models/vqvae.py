"""The VQ-VAE (van den Oord et al. 2017): conv encoder → latent map → vector quantiser → decoder.

The quantiser replaces every latent vector of the map by its nearest codebook entry. The codebook
is not trained by gradients but by exponential moving averages of the vectors assigned to each
code (Razavi et al. 2019), and codes that stop being used are restarted on encoder outputs of the
current batch (as in vector-quantize-pytorch's ``threshold_ema_dead_code``). The encoder learns
through the straight-through estimator and a commitment loss ``β · ‖z − sg(e)‖²``.

Loss: mean squared error of the reconstruction in [0, 1] plus the commitment loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..errors import ConfigError
from ..metrics.codebook import perplexity, usage
from ..model import TrainableModel
from ..registry import register
from .nets import ConvTrunk, check_shape


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantiser with an EMA codebook and dead-code restart.

    ``forward(z)`` with ``z`` (B, D, *spatial) (channels first, like a conv feature map; ``(B, D)``
    for plain vectors) returns ``(quantized, indices, aux_loss)``, the contract of
    vector-quantize-pytorch: ``quantized`` has ``z``'s shape and passes gradients straight through
    to ``z``; ``indices`` (B, *spatial) int64 in [0, K); ``aux_loss`` the commitment loss
    ``beta · mean((z − sg(quantized))²)``, a scalar.

    In training mode each call also moves the codebook: per-code counts and sums of the assigned
    vectors are summed over ranks (:func:`shared.distributed.all_reduce_sum`), averaged into the
    EMA with ``decay``, the counts Laplace-smoothed, and every code whose EMA count is below
    ``dead_threshold`` is set to a random vector of the batch (drawn with torch's global RNG, on
    rank 0, and shared, so all ranks keep one codebook). The codebook starts with zero counts, so
    the first training call initialises it from data. All of it is done in fp32 with autocast off.
    """

    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25, decay: float = 0.99, dead_threshold: float = 1.0, eps: float = 1e-5):
        super().__init__()
        if codebook_size < 1 or dim < 1:
            raise ConfigError(f"the codebook needs at least one code of at least one dimension, not {codebook_size}×{dim}")
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"the codebook EMA decay must lie in [0, 1), not {decay}")
        self.codebook_size, self.dim = codebook_size, dim
        self.beta, self.decay, self.dead_threshold, self.eps = beta, decay, dead_threshold, eps
        self.register_buffer("codebook", torch.randn(codebook_size, dim))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed_sum", torch.zeros(codebook_size, dim))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, *spatial) → code vectors (B, D, *spatial), fp32."""
        return F.embedding(indices, self.codebook).movedim(-1, 1)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, D) fp32 → index (N,) of the nearest code in squared Euclidean distance."""
        e = self.codebook
        dist = flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ e.t() + e.pow(2).sum(1)
        return dist.argmin(1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if z.ndim < 2 or z.shape[1] != self.dim:
            raise ValueError(f"the quantiser expects (B, {self.dim}, ...) inputs, got {tuple(z.shape)}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            zf = z.float()
            flat = zf.movedim(1, -1).reshape(-1, self.dim)
            idx = self.nearest(flat.detach())
            q = F.embedding(idx, self.codebook).view(*zf.movedim(1, -1).shape).movedim(-1, 1)
            if self.training:  # after the lookup: this batch is quantised with the codebook it was assigned by
                self._update(flat.detach(), idx)
            aux = self.beta * F.mse_loss(zf, q.detach())
            quantized = zf + (q - zf).detach()
        indices = idx.view(z.shape[0], *z.shape[2:])
        return quantized, indices, aux

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        """EMA step of counts and sums for the assignments ``idx`` of ``flat`` (N, D), then restarts."""
        onehot = F.one_hot(idx, self.codebook_size).float()
        counts = distributed.all_reduce_sum(onehot.sum(0))
        sums = distributed.all_reduce_sum(onehot.t() @ flat)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.codebook.copy_(self.embed_sum / smoothed.clamp_min(self.eps).unsqueeze(1))
        self._restart_dead(flat)

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor) -> None:
        dead = self.cluster_size < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:  # identical on every rank: the counts are summed over ranks
            return
        n = flat.shape[0]
        pick = torch.randperm(n)[:n_dead] if n >= n_dead else torch.randint(0, n, (n_dead,))
        fresh = flat[pick.to(flat.device)].clone()
        if distributed.world_size() > 1:  # everyone takes rank 0's draw
            if not distributed.is_main():
                fresh.zero_()
            distributed.all_reduce_sum(fresh)
        self.codebook[dead] = fresh
        self.cluster_size[dead] = self.dead_threshold
        self.embed_sum[dead] = fresh * self.dead_threshold


@dataclass
class VQVAEConfig:
    input_shape: tuple[int, ...] = field(default=(1, 32, 32), metadata={"help": "(C, H, W); H and W divide by 2**len(widths)"})
    widths: tuple[int, ...] = field(default=(32, 64), metadata={"help": "conv channels per downsampling"})
    res_blocks: int = field(default=1, metadata={"help": "residual blocks at the bottleneck, each side"})
    code_dim: int = field(default=16, metadata={"help": "channels of the latent map = length of a code vector"})
    codebook_size: int = field(default=64, metadata={"help": "number of codes K"})
    beta: float = field(default=0.25, metadata={"help": "commitment loss weight"})
    decay: float = field(default=0.99, metadata={"help": "EMA decay of the codebook statistics"})
    dead_threshold: float = field(default=1.0, metadata={"help": "restart codes whose EMA count per batch falls below this"})


@register("vqvae", VQVAEConfig)
class VQVAE(TrainableModel):
    """VQ-VAE: conv encoder, EMA vector quantiser on the latent map, conv decoder."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        if len(config.input_shape) != 3:
            raise ConfigError(f"the VQ-VAE takes images (C, H, W), not input_shape {tuple(config.input_shape)}")
        check_shape(config.input_shape, config.widths)
        self.config = config
        self.trunk = ConvTrunk(config.input_shape[0], config.widths, config.code_dim, config.res_blocks)
        self.quantizer = VectorQuantizer(config.codebook_size, config.code_dim, config.beta, config.decay, config.dead_threshold)

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(h, w) of the index map."""
        f = 2 ** len(self.config.widths)
        return self.config.input_shape[1] // f, self.config.input_shape[2] // f

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] → code indices (B, h, w) int64 in [0, K)."""
        return self.quantizer(self.trunk.encoder(x))[1]

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, h, w) → images (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.trunk.decoder(self.quantizer.lookup(indices)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"x_hat": reconstruction in [0, 1], "indices": (B, h, w), "aux_loss": commitment}``."""
        q, indices, aux = self.quantizer(self.trunk.encoder(x))
        return {"x_hat": torch.sigmoid(self.trunk.decoder(q)), "indices": indices, "aux_loss": aux}

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        out = self(x)
        recon = F.mse_loss(out["x_hat"].float(), x.float())
        k = self.config.codebook_size
        return {
            "loss": recon + out["aux_loss"],
            "recon_mse": recon.detach(),
            "commitment": out["aux_loss"].detach(),
            "perplexity": perplexity(out["indices"], k),
            "codes_used": usage(out["indices"], k),
        }
