"""Hyperprior codecs (Ballé 2018 scale hyperprior, Minnen 2018 mean-scale) with gain units for variable rate.

Built on CompressAI's entropy models (``EntropyBottleneck`` for the hyper-latent z,
``GaussianConditional`` for the latent y) and its GDN layers. One model covers a continuous range
of rates: ``levels`` λ values are trained at once, each with a learned per-channel gain on y
(Cui et al. 2021, "gain units"); between levels, gains are interpolated geometrically, so a
quality ``q`` in [0, 1] selects any rate in the trained range.

Images are (B, 3, H, W) floats in [0, 1], H and W divisible by 64 (the caller pads).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models.base import CompressionModel
from torch import nn

from shared.model import TrainableModel
from shared.registry import register

#: CompressAI's λ for its qualities 1..6 (MSE); our levels span them
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)


@dataclass
class HyperpriorConfig:
    N: int = field(default=128, metadata={"help": "channels of the transforms"})
    M: int = field(default=192, metadata={"help": "channels of the latent y"})
    lambdas: tuple[float, ...] = field(default=DEFAULT_LAMBDAS, metadata={"help": "rate-distortion trade-offs trained at once"})
    distortion: Literal["mse", "ms-ssim"] = "mse"
    aux_lr: float = 1e-3


def conv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


def analysis(N: int, M: int) -> nn.Sequential:
    return nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def synthesis(N: int, M: int) -> nn.Sequential:
    return nn.Sequential(
        deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True), deconv(N, 3)
    )


class _GainedHyperprior(TrainableModel, CompressionModel):
    """Shared body of the scale and mean-scale hyperpriors; subclasses set ``predicts_mean``."""

    predicts_mean: bool = True

    def __init__(self, config: HyperpriorConfig):
        super().__init__()
        self.config = config
        N, M, L = config.N, config.M, len(config.lambdas)
        self.g_a, self.g_s = analysis(N, M), synthesis(N, M)
        out = 2 * M if self.predicts_mean else M
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N))
        self.h_s = nn.Sequential(
            deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True), conv(M * 3 // 2, out, 3, 1)
        )
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        # log-gains, one row per trained λ; start near 1 with a mild spread so levels differ from step 0
        spread = torch.linspace(-0.5, 0.5, L).unsqueeze(1) if L > 1 else torch.zeros(1, 1)
        self.log_gain = nn.Parameter(spread.repeat(1, M).clone())
        self.log_inv_gain = nn.Parameter((-spread).repeat(1, M).clone())
        self.register_buffer("lambdas", torch.tensor(config.lambdas, dtype=torch.float32))

    # -- variable rate ---------------------------------------------------------------------------
    def gains(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quality q (B,) in [0, 1] → (gain, inverse gain), each (B, M, 1, 1); q = k/(L-1) is level k exactly."""
        L = self.log_gain.shape[0]
        pos = q.float().clamp(0, 1) * (L - 1)
        lo = pos.floor().long().clamp(max=L - 1)
        hi = (lo + 1).clamp(max=L - 1)
        t = (pos - lo.float()).unsqueeze(1)
        g = (1 - t) * self.log_gain[lo] + t * self.log_gain[hi]
        ig = (1 - t) * self.log_inv_gain[lo] + t * self.log_inv_gain[hi]
        return g.exp()[:, :, None, None], ig.exp()[:, :, None, None]

    def level_quality(self, level: torch.Tensor) -> torch.Tensor:
        L = self.log_gain.shape[0]
        return level.float() / max(1, L - 1)

    # -- the CompressAI protocol -----------------------------------------------------------------
    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        params = self.h_s(z_hat).float()
        if self.predicts_mean:
            scales, means = params.chunk(2, 1)
            return scales, means
        return params, None

    def forward(self, x: torch.Tensor, q: torch.Tensor | float = 1.0) -> dict:
        """Training-mode pass: ``{"x_hat", "likelihoods": {"y", "z"}}`` (CompressAI's contract)."""
        if not torch.is_tensor(q):
            q = torch.full((x.shape[0],), float(q), device=x.device)
        gain, inv_gain = self.gains(q)
        y = self.g_a(x).float() * gain
        with torch.autocast(x.device.type, enabled=False):
            z = self.h_a(y)
            z_hat, z_lik = self.entropy_bottleneck(z.float())
            scales, means = self.entropy_parameters(z_hat)
            y_hat, y_lik = self.gaussian_conditional(y, scales, means=means)
        x_hat = self.g_s(y_hat * inv_gain)
        return {"x_hat": x_hat.float(), "likelihoods": {"y": y_lik, "z": z_lik}}

    # -- training ---------------------------------------------------------------------------------
    def optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        main = [p for n, p in self.named_parameters() if not n.endswith(".quantiles")]
        aux = [p for n, p in self.named_parameters() if n.endswith(".quantiles")]
        return {
            "main": torch.optim.Adam(main, lr=lr, weight_decay=weight_decay),
            "aux": torch.optim.Adam(aux, lr=self.config.aux_lr),
        }

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        if optimizer == "aux":
            return {"loss": self.aux_loss()}
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        B, _, H, W = x.shape
        level = torch.randint(0, len(self.config.lambdas), (B,), device=x.device)
        out = self(x, self.level_quality(level))
        bits = sum(torch.log(lik).flatten(1).sum(1) for lik in out["likelihoods"].values()) / -math.log(2)
        bpp = bits / (H * W)
        mse = (out["x_hat"] - x.float()).pow(2).flatten(1).mean(1)
        if self.config.distortion == "mse":
            dist = 255.0**2 * mse
        else:
            from pytorch_msssim import ms_ssim

            dist = 1.0 - ms_ssim(out["x_hat"].clamp(0, 1), x.float(), data_range=1.0, size_average=False)
        loss = (self.lambdas[level] * dist + bpp).mean()
        psnr = (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean()
        return {"loss": loss, "bpp": bpp.mean().detach(), "psnr": psnr.detach()}


@register("mean_scale", HyperpriorConfig)
class MeanScaleHyperprior(_GainedHyperprior):
    """Mean-scale hyperprior (Minnen et al. 2018, without context model), gain units for variable rate."""

    predicts_mean = True


@register("hyperprior", HyperpriorConfig)
class ScaleHyperprior(_GainedHyperprior):
    """Scale hyperprior (Ballé et al. 2018), gain units for variable rate."""

    predicts_mean = False
