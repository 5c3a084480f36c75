"""CycleGAN (Zhu et al. 2017): unpaired translation between image domains A and B.

Two generators, ``g_ab`` (A → B) and ``g_ba`` (B → A), and two PatchGAN discriminators, ``d_b``
(real B vs ``g_ab``'s fakes) and ``d_a`` (real A vs ``g_ba``'s fakes), trained with the LSGAN loss,
a cycle-consistency loss (A → B → A and B → A → B, L1, weight ``lambda_cycle``) and an identity
loss (``g_ab(b) ≈ b``, ``g_ba(a) ≈ a``, weight ``lambda_identity · lambda_cycle``), as in the
anchor (junyanz/pytorch-CycleGAN-and-pix2pix). Loss names follow the anchor, whose ``G_A`` is our
``g_ab``, ``G_B`` our ``g_ba``, ``D_A`` our ``d_b`` and ``D_B`` our ``d_a``:

* optimiser ``"generator"`` (both generators): ``loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B
  + loss_idt_A + loss_idt_B``;
* optimiser ``"discriminator"`` (both discriminators): ``loss_D_A + loss_D_B``, each the mean of
  the loss on real images and on fakes drawn through a 50-image history pool.

A batch is ``(a, b)``: two image tensors (B, 3, H, W) in [0, 1] (H, W divisible by the generator's
stride). Internally images are in [-1, 1]; :meth:`CycleGAN.translate_ab` and
:meth:`CycleGAN.translate_ba` take and return [0, 1]. Adam with β = (0.5, 0.999) at the trainer's
learning rate; the anchor's "constant, then linear to 0" schedule is the trainer's
``--lr-schedule linear --decay-start 0.5``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from shared.losses.adversarial import GanMode, ImagePool, PatchDiscriminator, gan_loss, init_weights
from shared.registry import register

from .generators import build_generator
from .translator import NetworksConfig, Translator, to_signed


@dataclass
class CycleGANConfig(NetworksConfig):
    gan_mode: GanMode = field(default="lsgan", metadata={"help": "adversarial loss: least squares or vanilla (BCE)"})
    lambda_cycle: float = field(default=10.0, metadata={"help": "weight of the cycle-consistency L1 loss"})
    lambda_identity: float = field(default=0.5, metadata={"help": "identity loss weight, relative to lambda_cycle (0: off)"})
    pool_size: int = field(default=50, metadata={"help": "history of fakes shown to the discriminators (0: none)"})
    beta1: float = field(default=0.5, metadata={"help": "Adam β1 of both optimisers"})


@register("cyclegan", CycleGANConfig)
class CycleGAN(Translator):
    """CycleGAN: unpaired A ↔ B translation; batch (a, b) in [0, 1]."""

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.config = c = config

        def make_generator():
            return init_weights(build_generator(c.generator, c.ngf, c.n_blocks, c.num_downs, c.upsample))

        self.g_ab, self.g_ba = make_generator(), make_generator()
        self.d_a = init_weights(PatchDiscriminator(3, c.ndf, c.n_layers_d))
        self.d_b = init_weights(PatchDiscriminator(3, c.ndf, c.n_layers_d))
        self.pool_a, self.pool_b = ImagePool(c.pool_size), ImagePool(c.pool_size)  # fakes of A, of B
        self._fakes: tuple[torch.Tensor, torch.Tensor] | None = None

    def optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, 0.999)
        g = itertools.chain(self.g_ab.parameters(), self.g_ba.parameters())
        d = itertools.chain(self.d_a.parameters(), self.d_b.parameters())
        return {
            "generator": torch.optim.Adam(g, lr=lr, betas=betas, weight_decay=weight_decay),
            "discriminator": torch.optim.Adam(d, lr=lr, betas=betas, weight_decay=weight_decay),
        }

    def _discriminators_trainable(self, flag: bool) -> None:
        for p in itertools.chain(self.d_a.parameters(), self.d_b.parameters()):
            p.requires_grad_(flag)

    def training_step(self, batch: Any, optimizer: str) -> dict[str, torch.Tensor]:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError("a CycleGAN batch is a pair (a, b) of image tensors (B, 3, H, W) in [0, 1]")
        a, b = (to_signed(x) for x in batch)
        if optimizer == "generator":
            return self._generator_step(a, b)
        if optimizer == "discriminator":
            return self._discriminator_step(a, b)
        raise ValueError(f"unknown optimiser {optimizer!r}")

    def _generator_step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        self._discriminators_trainable(False)  # their gradients would be discarded: do not compute them
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        rec_a, rec_b = self.g_ba(fake_b), self.g_ab(fake_a)
        out = {
            "loss_G_A": gan_loss(self.d_b(fake_b), True, c.gan_mode),
            "loss_G_B": gan_loss(self.d_a(fake_a), True, c.gan_mode),
            "loss_cycle_A": F.l1_loss(rec_a.float(), a.float()) * c.lambda_cycle,
            "loss_cycle_B": F.l1_loss(rec_b.float(), b.float()) * c.lambda_cycle,
        }
        if c.lambda_identity > 0:
            w = c.lambda_identity * c.lambda_cycle
            out["loss_idt_A"] = F.l1_loss(self.g_ab(b).float(), b.float()) * w
            out["loss_idt_B"] = F.l1_loss(self.g_ba(a).float(), a.float()) * w
        self._fakes = (fake_a.detach(), fake_b.detach())
        return {"loss": sum(out.values()), **out}

    def _discriminator_step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        if self._fakes is None:
            raise RuntimeError("the discriminator step needs the fakes of a generator step on the same batch first")
        self._discriminators_trainable(True)
        fake_a, fake_b = self._fakes
        self._fakes = None
        mode = self.config.gan_mode

        def d_loss(d, real, fake):
            return 0.5 * (gan_loss(d(real), True, mode) + gan_loss(d(fake.to(real.dtype)), False, mode))

        out = {"loss_D_A": d_loss(self.d_b, b, self.pool_b.query(fake_b)), "loss_D_B": d_loss(self.d_a, a, self.pool_a.query(fake_a))}
        return {"loss": out["loss_D_A"] + out["loss_D_B"], **out}
