"""Hyperprior codecs: scale (Ballé et al. 2018) and mean-scale (Minnen et al. 2018, no context model).

A hyper-latent z = h_a(y) is coded with CompressAI's ``EntropyBottleneck``; the hyper-synthesis
h_s(ẑ) gives each element of y a Gaussian scale (and mean), under which CompressAI's
``GaussianConditional`` codes y with rANS.

Determinism: the decoder must derive exactly the encoder's CDF indexes from ẑ, or decoding
fails. So when coding, h_s runs in exact integer arithmetic
(:mod:`compress.models.integer_synthesis`: the same result under any thread count, in any process
and on any CPU), and the scale → CDF index lookup (the nearest table scale, see
:func:`scale_indexes`) is one exact ``searchsorted``.
"""
from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import nn

from shared.registry import register

from .base import CodecConfig, GainedCodec, bottleneck_likelihood, conv, deconv, place, round_about
from .compressai_adapter import gaussian_likelihood_raw, medians
from .entropy_coding import decode_bottleneck, decode_gaussian, encode_bottleneck, encode_gaussian
from .integer_synthesis import IntegerSynthesis


def scale_indexes(table: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """CDF index per scale: the table entry nearest to the scale in log scale, by one exact
    ``searchsorted`` against the geometric midpoints of neighbouring entries (computed in float64:
    a product of two float32 values is exact there and ``sqrt`` is correctly rounded, so every
    machine gets the same boundaries). Scales below the table give 0, above it len(table) - 1.

    CompressAI's ``GaussianConditional.build_indexes`` rounds each scale *up* to the next entry
    (64 entries, 13 % apart): the coded Gaussians are then always wider than the predicted ones,
    which cost 2.1–3.4 % of y's bits on Kodak with the shipped weights; rounding to the nearest
    entry costs 0.05 % (rounded down as often as up, the first-order losses cancel).
    """
    t = table.double()
    mids = (t[:-1] * t[1:]).sqrt()
    return torch.searchsorted(mids, scales.double().contiguous(), right=False).int()


def gaussian_likelihood(gc: GaussianConditional, y_hat: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None) -> torch.Tensor:
    """Likelihoods of values ``y_hat`` under ``gc``'s Gaussians (``scales``, ``means``), lower-bounded
    as in training, without ``gc``'s own quantisation (the caller places ``y_hat``)."""
    return gc.likelihood_lower_bound(gaussian_likelihood_raw(gc, y_hat, scales, means))


class _Hyperprior(GainedCodec):
    predicts_mean: bool = True
    sections = 2

    def __init__(self, config: CodecConfig):
        super().__init__(config)
        N, M = config.N, config.M
        out = 2 * M if self.predicts_mean else M
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N))
        self.h_s = nn.Sequential(
            deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True), conv(M * 3 // 2, out, 3, 1)
        )
        self.entropy_bottleneck = EntropyBottleneck(N, entropy_coder="ans")  # the file format is rANS, whatever compressai's global default
        self.gaussian_conditional = GaussianConditional(None, entropy_coder="ans")

    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training path: ẑ → (scales, means or None) from h_s in the caller's precision."""
        params = self.h_s(z_hat)
        return params.chunk(2, 1) if self.predicts_mean else (params, None)

    def placed_entropy(self, y, relax, hold_centre=False):
        z_hat = round_about(self.h_a(y), medians(self.entropy_bottleneck))
        scales, means = self.entropy_parameters(z_hat)
        centre = means if means is not None else 0.0
        y_hat = place(y, centre, relax, hold_centre)
        likelihoods = {"y": gaussian_likelihood(self.gaussian_conditional, y_hat, scales, means),
                       "z": bottleneck_likelihood(self.entropy_bottleneck, z_hat)}
        return y_hat, likelihoods, centre

    def entropy(self, y):
        z = self.h_a(y)
        z_hat, z_lik = self.entropy_bottleneck(z)
        scales, means = self.entropy_parameters(z_hat)
        y_noisy, y_lik = self.gaussian_conditional(y, scales, means=means)
        y_hat = self.decoder_input(y, y_noisy, means if means is not None else 0.0)
        return y_hat, {"y": y_lik, "z": z_lik}

    # -- deterministic coding -----------------------------------------------------------------------
    def integer_net(self, net: nn.Sequential, precise_last: bool = False) -> IntegerSynthesis:
        """The exact integer copy of ``net`` (h_s or another coding-time network of this model,
        :class:`~compress.models.integer_synthesis.IntegerSynthesis`), rebuilt when a weight
        changes: every in-place change through the parameter, an optimiser's step or
        ``load_state_dict``, bumps its version counter (comparing the values instead took 2.4 ms a
        call); ``precise_last`` as :class:`~compress.models.integer_synthesis.IntegerSynthesis` takes it."""
        key = [(p.data_ptr(), p._version) for p in net.parameters()] + [precise_last]
        cache = self.__dict__.setdefault("_integer_nets", {})
        cached = cache.get(id(net))
        if cached is None or cached[0] != key:
            cache[id(net)] = cached = (key, IntegerSynthesis(net, precise_last))
        return cached[1]

    def hyper_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(scales, means or None), float64, from ẑ through the integer h_s: exactly reproducible."""
        with torch.autocast(z_hat.device.type, enabled=False):
            params = self.integer_net(self.h_s)(z_hat)
        return params.chunk(2, 1) if self.predicts_mean else (params, None)

    def coding_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(CDF indexes, float64 means) for y from ẑ, exactly reproducible: :meth:`hyper_parameters`,
        then the exact index lookup."""
        scales, means = self.hyper_parameters(z_hat)
        return scale_indexes(self.gaussian_conditional.scale_table, scales), means

    def compress_latent(self, y: torch.Tensor, run=None) -> list[bytes]:
        z = run(self.h_a, y) if run is not None else self.h_a(y)
        z_string, z_hat = encode_bottleneck(self.entropy_bottleneck, z.float())
        indexes, means = self.coding_parameters(z_hat)
        return [z_string, encode_gaussian(self.gaussian_conditional, y, indexes, means)]

    def decompress_latent(self, strings: list[bytes], size: tuple[int, int]) -> torch.Tensor:
        z_hat = decode_bottleneck(self.entropy_bottleneck, strings[0], (size[0] // 4, size[1] // 4))
        indexes, means = self.coding_parameters(z_hat)
        return decode_gaussian(self.gaussian_conditional, strings[1], indexes, means).float()


@register("mean_scale", CodecConfig)
class MeanScaleHyperprior(_Hyperprior):
    """Mean-scale hyperprior (Minnen et al. 2018, without context model), gain units for variable rate."""

    predicts_mean = True


@register("hyperprior", CodecConfig)
class ScaleHyperprior(_Hyperprior):
    """Scale hyperprior (Ballé et al. 2018), gain units for variable rate."""

    predicts_mean = False
