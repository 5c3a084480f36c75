"""Factorized prior codec (Ballé et al. 2017): y coded under one learned density per channel."""
from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck

from shared.registry import register

from .base import CodecConfig, GainedCodec, bottleneck_likelihood, place
from .compressai_adapter import medians
from .entropy_coding import decode_bottleneck, encode_bottleneck


@register("factorized", CodecConfig)
class FactorizedPrior(GainedCodec):
    """Factorized prior (Ballé et al. 2017) with GDN transforms, gain units for variable rate."""

    sections = 1

    def __init__(self, config: CodecConfig):
        super().__init__(config)
        self.entropy_bottleneck = EntropyBottleneck(config.M, entropy_coder="ans")  # the file format is rANS, whatever compressai's global default

    def placed_entropy(self, y, relax, hold_centre=False):
        centres = medians(self.entropy_bottleneck)
        y_hat = place(y, centres, relax, hold_centre)
        return y_hat, {"y": bottleneck_likelihood(self.entropy_bottleneck, y_hat)}, centres

    def entropy(self, y):
        y_noisy, y_lik = self.entropy_bottleneck(y)
        return self.decoder_input(y, y_noisy, medians(self.entropy_bottleneck)), {"y": y_lik}

    def compress_latent(self, y: torch.Tensor, run=None) -> list[bytes]:
        return [encode_bottleneck(self.entropy_bottleneck, y.float())[0]]

    def decompress_latent(self, strings: list[bytes], size: tuple[int, int]) -> torch.Tensor:
        return decode_bottleneck(self.entropy_bottleneck, strings[0], size)
