"""A discriminator on frozen pretrained features: small trainable heads over LPIPS's AlexNet.

A PatchGAN learned from scratch on a few hundred photos needs many thousands of steps before it
tells a good decoder's output from a photo, which a CPU budget does not have. Vision-aided GAN
(Kumari et al. 2022) and Projected GAN (Sauer et al. 2021) put the discriminator on a frozen
pretrained network instead, so it starts from features that already separate textures.
:class:`FeatureDiscriminator` does this with the AlexNet backbone LPIPS already loads offline
(:func:`shared.metrics.perceptual.alexnet_features`): one head per ReLU map (3×3 conv to ``width``,
LeakyReLU 0.2, 1×1 conv to one logit per position). The backbone is not a submodule: only the
heads are trained, saved and counted.

AlexNet's first layer has stride 4, so none of its maps sees detail finer than about 1/8 cycle per
pixel, the band where an MSE-trained decoder falls shortest (the high-frequency measure of
:mod:`shared.metrics.spectrum` looks at 0.25–0.5 cycles/pixel). ``fine_head`` adds one more head on
the image's finest band, x minus its 3×3 box blur, at full resolution (3×3 conv, then a 4×4 conv of
stride 4, so its logits are as many as relu1's).

Since LPIPS shares this backbone, results trained with it should be judged also outside AlexNet's
feature space (KID on Inception features, PSNR, the high-frequency spectrum).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics.perceptual import ALEXNET_CHANNELS, alexnet_features
from .adversarial import init_weights

#: the fine band's scale: x minus its 3×3 blur has a standard deviation of a few hundredths on photos
FINE_GAIN = 10.0


def fine_band(x: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) minus its 3×3 box blur (reflected at the borders), same shape."""
    return x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)


class FeatureDiscriminator(nn.Module):
    """Images (B, 3, H, W) in [0, 1] (H, W ≥ 64) → logits (B, N): every head's map, flattened and
    concatenated (relu1 … relu5, strides 4 to 16, then the fine head's, stride 4, if
    ``fine_head``). ``lpips_weights``: the AlexNet file (None: the resolver's search order),
    resolved at the first call."""

    def __init__(self, width: int = 64, lpips_weights=None, fine_head: bool = False):
        super().__init__()
        self.lpips_weights = lpips_weights
        self.heads = init_weights(nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(0.2, True), nn.Conv2d(width, 1, 1)) for c in ALEXNET_CHANNELS
        ))
        self.fine = init_weights(nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, width, 4, stride=4), nn.LeakyReLU(0.2, True), nn.Conv2d(width, 1, 1),
        )) if fine_head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = alexnet_features(x, self.lpips_weights)
        logits = [head(f).flatten(1) for head, f in zip(self.heads, feats)]
        if self.fine is not None:
            logits.append(self.fine(FINE_GAIN * fine_band(x)).flatten(1))
        return torch.cat(logits, 1)
