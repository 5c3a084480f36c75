"""CompressAI's own scale hyperprior layout (``bmshj2018-hyperprior``, Ballé et al. 2018), for
imported checkpoints (:mod:`compress.import_compressai`).

It differs from ensō's ``hyperprior`` in three places, so CompressAI's weights cannot load there:
h_a reads |y|, both hyper-networks use ReLU, and h_s keeps N channels until its last layer
(N → N → M, ReLU after each layer, the last included). The keys are CompressAI's (``h_a.0.weight``
...). h_s's ReLUs are ``LeakyReLU(0)`` (the same values), which the exact integer hyper-synthesis
(:mod:`compress.models.integer_synthesis`) runs as it runs ensō's own h_s.
"""
from __future__ import annotations

import torch
from torch import nn

from shared.registry import register

from .base import CodecConfig, conv, deconv
from .hyperprior import _Hyperprior


class AbsInput(nn.Sequential):
    """``nn.Sequential`` applied to |x| (CompressAI's ``h_a(torch.abs(y))``); same keys as the plain one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.abs())


@register("hyperprior_relu", CodecConfig)
class ReluScaleHyperprior(_Hyperprior):
    """Scale hyperprior in CompressAI's exact layout (ReLU hyper-networks, h_a on |y|), gain units for variable rate."""

    predicts_mean = False

    def __init__(self, config: CodecConfig):
        super().__init__(config)
        N, M = config.N, config.M
        relu = lambda: nn.LeakyReLU(0.0, inplace=True)  # noqa: E731  (ReLU's values; the integer h_s knows LeakyReLU)
        self.h_a = AbsInput(conv(M, N, 3, 1), nn.ReLU(inplace=True), conv(N, N), nn.ReLU(inplace=True), conv(N, N))
        self.h_s = nn.Sequential(deconv(N, N), relu(), deconv(N, N), relu(), conv(N, M, 3, 1), relu())
