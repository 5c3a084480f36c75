"""A second, perceptual decoder for the default codec: same files, sharper pictures.

``mean_scale_cc_perceptual`` is ``mean_scale_cc`` with its encoder, hyperprior, channel context,
entropy models and gains frozen, so the ``.enso`` files it would write are bit-identical to
``mean_scale_cc``'s, and only the synthesis transform g_s trained again, on the loss of
:mod:`shared.losses.perceptual_adversarial` (pixel MSE + LPIPS + an adaptive-weight PatchGAN,
optionally conditioned on the latent, as HiFiC; MS-ILLM fine-tunes the decoder alone the same way).
With ``refiner_blocks`` k > 0, g_s gains k residual blocks after its first upsampling (N channels
at 1/8 of the image's size, where HiFiC's generator puts its residual blocks), named
``g_s.refine``; their last convolutions start at zero, so a g_s copied from ``mean_scale_cc`` or
from a perceptual decoder without them decodes exactly as before until training moves them.

Training (``compress train --model mean_scale_cc_perceptual --init mean_scale_cc``): each image of
a batch (B, 3, H, W) in [0, 1] gets a random quality in [0, 1]; ŷ is computed without gradients
exactly as coding rounds it (about the context's means), and g_s(ŷ / gain) is trained. Two
optimisers: ``"main"`` (g_s) and ``"discriminator"`` (the loss's PatchGAN). The export keeps
everything but the loss (``compress export RUN --base mean_scale_cc`` then stores g_s alone), and
:meth:`compress.codec.Codec.decode` uses its g_s for ``decoder="perceptual"``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from shared.losses.perceptual_adversarial import PerceptualAdversarialLoss, PerceptualLossConfig
from shared.models.nets import PlainResBlock
from shared.registry import register

from .channel_context import ChannelContextHyperprior, ContextConfig


@dataclass
class PerceptualDecoderConfig(ContextConfig, PerceptualLossConfig):
    refiner_blocks: int = field(default=0, metadata={"help": "residual blocks added to g_s after its first upsampling (0: g_s as mean_scale_cc's)"})

    def __post_init__(self):
        PerceptualLossConfig.__post_init__(self)
        if self.refiner_blocks < 0:
            raise ValueError(f"refiner_blocks must be >= 0, not {self.refiner_blocks}")


def with_refiner(g_s: nn.Sequential, blocks: int) -> nn.Sequential:
    """g_s with ``blocks`` identity-at-init :class:`~shared.models.nets.PlainResBlock` s as ``refine``
    after its first upsampling (layers 0, 1); the other layers keep their names."""
    if blocks == 0:
        return g_s
    layers = list(g_s.named_children())
    channels = layers[0][1].out_channels
    refine = nn.Sequential(*(PlainResBlock(channels, identity_at_init=True) for _ in range(blocks)))
    return nn.Sequential(OrderedDict([*layers[:2], ("refine", refine), *layers[2:]]))


@register("mean_scale_cc_perceptual", PerceptualDecoderConfig)
class PerceptualDecoderCodec(ChannelContextHyperprior):
    """mean_scale_cc with a synthesis transform trained on MSE + LPIPS + a PatchGAN (a second decoder of the same files)."""

    #: ``compress train --init mean_scale_cc`` fills everything but the loss's discriminator
    extends = "mean_scale_cc"
    #: the codec whose files this model's g_s decodes
    decodes_for = "mean_scale_cc"

    def __init__(self, config: PerceptualDecoderConfig):
        super().__init__(config)
        self.g_s = with_refiner(self.g_s, config.refiner_blocks)
        self.loss = PerceptualAdversarialLoss(config)
        self.loss.register_buffer("step", torch.zeros((), dtype=torch.long))

    def untrained_at_init(self, name: str) -> bool:
        """Never copied by ``--init``: the loss (its discriminator starts afresh)."""
        return name.split(".")[0] == "loss"

    def new_at_init(self, name: str) -> bool:
        """May be missing from an ``--init`` source: the loss and the refiner blocks (they start as the identity)."""
        return self.untrained_at_init(name) or name.startswith("g_s.refine.")

    def export_parts(self) -> list[str]:
        """Every submodule but the loss (its discriminator is for training only)."""
        return [n for n, _ in self.named_children() if n != "loss"] + ["log_gain", "log_inv_gain", "lambdas"]

    def optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith("g_s.") or name.startswith("loss."))
        return {
            "main": torch.optim.Adam(self.g_s.parameters(), lr=lr, weight_decay=weight_decay),
            "discriminator": self.loss.discriminator_optimizer(lr),
        }

    def _decoded(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ŷ as coded, at a random quality per image; ŷ / gain, what g_s sees)."""
        with torch.no_grad():
            q = torch.rand(x.shape[0], device=x.device)
            y_hat, _, inv_gain = self.latent(x, q)
        return y_hat, y_hat * inv_gain

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        step = int(self.loss.step)
        cond = (lambda y: y) if self.config.cond_channels > 0 else (lambda y: None)
        if optimizer == "main":
            y_hat, y_in = self._decoded(x)
            x_hat = self.g_s(y_in).float()
            self._last = (x_hat.detach(), y_hat)
            out = self.loss.generator_loss(x, x_hat, self.g_s[-1].weight, step, latent=cond(y_hat))
            with torch.no_grad():
                out["psnr"] = -10 * torch.log10(torch.mean((x_hat.clamp(0, 1) - x.float()) ** 2))
            return out
        if optimizer == "discriminator":
            x_hat, y_hat = self._last
            del self._last
            return self.loss.discriminator_loss(x, x_hat, step, latent=cond(y_hat))
        raise ValueError(f"unknown optimiser {optimizer!r}")

    def on_step_end(self, step: int) -> None:
        self.loss.step.fill_(step)
