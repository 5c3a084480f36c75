"""The mean-scale hyperprior with a channel context (after Minnen & Singh 2020, "Channel-wise
autoregressive entropy models", without their latent residual prediction, so g_s is unchanged).

y's M channels are coded in ``slices`` groups of M/slices, one after the other. The first group is
coded under the hyperprior's Gaussians alone; each later group under Gaussians that a small network
corrects from the hyperprior's own prediction for that group and the groups already coded:

    mean  = mean_hs + Δμ,     scale = scale_hs · (1 + Δs)²,
    (Δμ, Δs) = context_i(scale_hs_i, mean_hs_i, ŷ_0 − mean_hs_0, …, ŷ_{i−1} − mean_hs_{i−1}).

The correction's last layer starts at zero, so an untrained context codes exactly as the
hyperprior; trained alone (``train_only="context"``, the transforms and hyperprior of a trained
``mean_scale`` codec kept) it learns what the hyperprior leaves in the coded groups, and only its
own weights ship (the rest is the ``mean_scale`` export's).

Determinism: the decoder must reproduce every group's CDF indexes exactly, so when coding the
context networks run in exact integer arithmetic like h_s
(:class:`~compress.models.integer_synthesis.IntegerSynthesis`, the last layer's weights at 13 bits), and the correction is applied in
float64 with additions and multiplications only (correctly rounded, the same on every machine).
All groups share one rANS string, decoded a group at a time
(:class:`~compress.models.entropy_coding.RansStream`): no bytes beyond the hyperprior's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from shared.errors import ConfigError
from shared.registry import register

from .base import CodecConfig, bottleneck_likelihood, conv, place, round_about
from .compressai_adapter import medians
from .entropy_coding import RansStream, decode_bottleneck, encode_bottleneck, rans_encode
from .hyperprior import MeanScaleHyperprior, gaussian_likelihood, scale_indexes


@dataclass
class ContextConfig(CodecConfig):
    slices: int = field(default=4, metadata={"help": "groups of y's channels coded one after the other (M must divide evenly)"})
    context_width: int = field(default=128, metadata={"help": "channels of each group's context network"})

    def __post_init__(self):
        if self.slices < 1 or self.M % self.slices:
            raise ConfigError(f"slices={self.slices} must be at least 1 and divide M={self.M}")


def context_network(cin: int, width: int, cout: int) -> nn.Sequential:
    """(B, cin, h, w) → (B, cout, h, w): three 3×3 convolutions, the last initialised to zero."""
    last = conv(width, cout, 3, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(conv(cin, width, 3, 1), nn.LeakyReLU(inplace=True), conv(width, width, 3, 1), nn.LeakyReLU(inplace=True), last)


@register("mean_scale_cc", ContextConfig)
class ChannelContextHyperprior(MeanScaleHyperprior):
    """Mean-scale hyperprior with a channel context (Minnen & Singh 2020, no residual prediction), gain units for variable rate."""

    #: shipped codecs whose weights this model starts from (``compress train --init``), adding its context
    extends = "mean_scale"

    def __init__(self, config: ContextConfig):
        super().__init__(config)
        ContextConfig.__post_init__(config)  # again: a subclass's config need not chain to it
        S = config.M // config.slices
        self.context = nn.ModuleList(context_network(2 * S + S * i, config.context_width, 2 * S) for i in range(1, config.slices))

    def groups(self) -> list[slice]:
        S = self.config.M // self.config.slices
        return [slice(i * S, (i + 1) * S) for i in range(self.config.slices)]

    def corrected(self, i: int, scales: torch.Tensor, means: torch.Tensor, coded: list[torch.Tensor], net=None):
        """Group i's (scales, means) from the hyperprior's (``scales``, ``means`` for the whole of y)
        and the earlier groups' ``coded`` residuals ŷ_j − mean_hs_j; ``net`` runs the context network
        (default: the float network, for training)."""
        g = self.groups()[i]
        sc, mu = scales[:, g], means[:, g]
        if i == 0:
            return sc, mu
        net = net or self.context[i - 1]
        d_mean, d_scale = net(torch.cat([sc, mu, *coded], 1)).chunk(2, 1)
        factor = 1 + d_scale
        return sc * (factor * factor), mu + d_mean

    # -- training ---------------------------------------------------------------------------------
    def _sliced(self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor, likelihood_input) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Group by group, each under its corrected Gaussians (the context sees the earlier groups
        rounded about their corrected means, as the decoder has them): (the values
        ``likelihood_input(y_i, mean_i)``, their likelihoods, the corrected means)."""
        coded, placed, liks, centres = [], [], [], []
        for i, g in enumerate(self.groups()):
            sc, mu = self.corrected(i, scales, means, coded)
            coded.append(round_about(y[:, g], mu) - means[:, g])  # straight-through: y's gradient flows through later groups' contexts too
            placed.append(likelihood_input(y[:, g], mu))
            liks.append(gaussian_likelihood(self.gaussian_conditional, placed[-1], sc, mu))
            centres.append(mu)
        return torch.cat(placed, 1), torch.cat(liks, 1), torch.cat(centres, 1)

    def _hyper(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ẑ rounded as coded, straight-through; z's likelihoods (the bottleneck's noise proxy when
        training); scales; means)."""
        z = self.h_a(y)
        _, z_lik = self.entropy_bottleneck(z)
        z_hat = round_about(z, medians(self.entropy_bottleneck))
        scales, means = self.entropy_parameters(z_hat)
        return z_hat, z_lik, scales, means

    def entropy(self, y):
        _, z_lik, scales, means = self._hyper(y)
        noisy = (lambda v, mu: v + torch.empty_like(v).uniform_(-0.5, 0.5)) if self.training else round_about
        y_noisy, y_lik, centre = self._sliced(y, scales, means, noisy)
        return self.decoder_input(y, y_noisy, centre), {"y": y_lik, "z": z_lik}

    def placed_entropy(self, y, relax, hold_centre=False):
        z_hat, _, scales, means = self._hyper(y)
        y_placed, y_lik, centre = self._sliced(y, scales, means, lambda v, mu: place(v, mu, relax, hold_centre))
        return y_placed, {"y": y_lik, "z": bottleneck_likelihood(self.entropy_bottleneck, z_hat)}, centre

    def is_context(self, name: str) -> bool:
        return name.split(".")[0] == "context"

    # -- deterministic coding -----------------------------------------------------------------------
    def _coded_groups(self, scales: torch.Tensor, means: torch.Tensor, code_group) -> torch.Tensor:
        """Walk the groups in order: each one's exact (CDF indexes, float64 means) from the integer
        context networks, then ``code_group(i, indexes, means)`` → its symbols (int tensor);
        returns ŷ (1, M, h, w) float64."""
        coded, y_hat = [], []
        for i, g in enumerate(self.groups()):
            net = self.integer_net(self.context[i - 1], precise_last=True) if i else None  # (a 7-bit last layer cost 0.25 % of y's bits)
            sc, mu = self.corrected(i, scales, means, coded, net)
            symbols = code_group(i, scale_indexes(self.gaussian_conditional.scale_table, sc), mu)
            values = symbols.double() + mu
            coded.append(values - means[:, g])
            y_hat.append(values)
        return torch.cat(y_hat, 1)

    def compress_latent(self, y: torch.Tensor, run=None) -> list[bytes]:
        z = run(self.h_a, y) if run is not None else self.h_a(y)
        z_string, z_hat = encode_bottleneck(self.entropy_bottleneck, z.float())
        scales, means = self.hyper_parameters(z_hat)
        y = y.double()
        parts: list[tuple[torch.Tensor, torch.Tensor]] = []

        def code_group(i, indexes, mu):
            symbols = torch.round(y[:, self.groups()[i]] - mu)
            parts.append((symbols, indexes))
            return symbols

        self._coded_groups(scales, means, code_group)
        symbols = torch.cat([s.reshape(-1) for s, _ in parts])
        indexes = torch.cat([ix.reshape(-1) for _, ix in parts])
        return [z_string, rans_encode(self.gaussian_conditional, symbols, indexes)]

    def decompress_latent(self, strings: list[bytes], size: tuple[int, int]) -> torch.Tensor:
        z_hat = decode_bottleneck(self.entropy_bottleneck, strings[0], (size[0] // 4, size[1] // 4))
        scales, means = self.hyper_parameters(z_hat)
        stream = RansStream(self.gaussian_conditional, strings[1], scales.numel())
        return self._coded_groups(scales, means, lambda i, indexes, mu: stream.decode(indexes)).float()
