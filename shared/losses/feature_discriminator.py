"""A discriminator on frozen pretrained features: small trainable heads over LPIPS's AlexNet.

A PatchGAN learned from scratch on a few hundred photos needs many thousands of steps before it
tells a good decoder's output from a photo, which a CPU budget does not have. Vision-aided GAN
(Kumari et al. 2022) and Projected GAN (Sauer et al. 2021) put the discriminator on a frozen
pretrained network instead, so it starts from features that already separate textures.
:class:`FeatureDiscriminator` does this with the AlexNet backbone LPIPS already loads offline
(:func:`shared.metrics.perceptual.alexnet_features`): one head per ReLU map (3×3 conv to ``width``,
LeakyReLU 0.2, 1×1 conv to one logit per position). The backbone is not a submodule: only the
heads are trained, saved and counted.

Since LPIPS shares this backbone, results trained with it should be judged also outside AlexNet's
feature space (KID on Inception features, PSNR, the high-frequency spectrum).
"""
from __future__ import annotations

import torch
from torch import nn

from ..metrics.perceptual import ALEXNET_CHANNELS, alexnet_features
from .adversarial import init_weights


class FeatureDiscriminator(nn.Module):
    """Images (B, 3, H, W) in [0, 1] (H, W ≥ 64) → logits (B, N): every head's map, flattened and
    concatenated (relu1 … relu5, strides 4 to 16). ``lpips_weights``: the AlexNet file (None: the
    resolver's search order), resolved at the first call."""

    def __init__(self, width: int = 64, lpips_weights=None):
        super().__init__()
        self.lpips_weights = lpips_weights
        self.heads = init_weights(nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(0.2, True), nn.Conv2d(width, 1, 1)) for c in ALEXNET_CHANNELS
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = alexnet_features(x, self.lpips_weights)
        return torch.cat([head(f).flatten(1) for head, f in zip(self.heads, feats)], 1)
