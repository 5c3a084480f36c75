"""Contrastive unpaired translation: CUT and FastCUT (Park et al. 2020, taesungp/contrastive-unpaired-translation).

One generator and one PatchGAN discriminator per direction, no cycle and no second generator to
undo the first: content is kept by **PatchNCE**, a contrastive loss between patches of the input
and the same patches of the output, read at several layers of the generator's encoder. At each
layer ``num_patches`` positions are drawn; a two-layer MLP head per layer (256 wide) projects the
features there to unit vectors; for each output patch (the query) the input patch at the same
position is the positive and the other drawn input patches of the same image are the negatives,
scored by a cross-entropy on dot products over temperature ``nce_t`` (0.07). The input features
are detached, as the anchor's ``PatchNCELoss`` does.

* ``cut``: λ_GAN 1, λ_NCE 1, and identity NCE (``g(b)`` against ``b``, so the generator learns not
  to change what is already in the target domain);
* ``fastcut``: no identity NCE; λ_NCE 1 by default (the anchor's λ 10 without identity collapses
  the generator towards the identity: FID 252 against 60.5 at λ 1 in the anchor's issue tracker).

The encoder layers (:func:`nce_layers`) follow the anchor's ``nce_layers 0,4,8,12,16`` of its
ResNet generator: the input pixels, the outputs of the two downsampling stages, and two residual
blocks of the bottleneck; for the U-Net, the input and the first four downsampling convolutions.

Losses (LSGAN, no image pool) by the anchor's names, per direction (suffix ``_BA`` for B → A):

* optimiser ``"generator"`` (generators and MLP heads): ``loss_G_GAN + loss_NCE (+ loss_NCE_Y)``;
* optimiser ``"discriminator"``: ``loss_D_real + loss_D_fake``, each halved.

A batch is ``(a, b)``: two image tensors (B, 3, H, W) in [0, 1]. With ``bidirectional`` both
directions train in one model (``g_ab``/``d_b`` and ``g_ba``/``d_a``), else only A → B. With
``ema`` > 0 the model keeps moving averages ``g_ab_ema``/``g_ba_ema`` of the generators
(StarGAN v2), which :meth:`Translator.generator` returns and exports ship.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shared.ema import ema_copy, update_ema
from shared.losses.adversarial import PatchDiscriminator, gan_loss, init_weights
from shared.registry import register

from .generators import ResnetGenerator, UnetGenerator, build_generator
from .translator import NetworksConfig, Translator, to_signed


@dataclass
class CUTConfig(NetworksConfig):
    lambda_gan: float = field(default=1.0, metadata={"help": "weight of the generator's LSGAN loss"})
    lambda_nce: float = field(default=1.0, metadata={"help": "weight of the PatchNCE loss"})
    nce_idt: bool = field(default=True, metadata={"help": "identity PatchNCE on target-domain images (CUT: on, FastCUT: off)"})
    nce_t: float = field(default=0.07, metadata={"help": "PatchNCE temperature"})
    num_patches: int = field(default=256, metadata={"help": "patches drawn per encoder layer"})
    nce_dim: int = field(default=256, metadata={"help": "width of the MLP projection heads"})
    bidirectional: bool = field(default=True, metadata={"help": "train B → A too (a second generator and discriminator)"})
    ema: float = field(default=0.999, metadata={"help": "decay of the generators' moving average used for inference (0: none)"})
    beta1: float = field(default=0.5, metadata={"help": "Adam β1 of both optimisers"})

    def __post_init__(self):
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), not {self.ema}")
        if self.num_patches < 2 or self.nce_t <= 0:
            raise ValueError("num_patches must be at least 2 and nce_t positive")


@dataclass
class FastCUTConfig(CUTConfig):
    nce_idt: bool = field(default=False, metadata={"help": "identity PatchNCE on target-domain images (CUT: on, FastCUT: off)"})


def nce_layers(net: nn.Module) -> list[nn.Module]:
    """The generator's modules whose outputs PatchNCE compares (the input pixels come first, not listed)."""
    if isinstance(net, ResnetGenerator):
        n = len(net.bottleneck)
        blocks = sorted({min(n - 1, round(n * 2 / 9)), min(n - 1, round(n * 6 / 9))})
        return [net.encoder[4], net.encoder[8], *(net.bottleneck[i] for i in blocks)]
    if isinstance(net, UnetGenerator):
        downs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
        return downs[:4]
    raise ValueError(f"PatchNCE does not know the layers of a {type(net).__name__}")


class _Stop(Exception):
    """Raised by a hook once the last needed encoder layer has run."""


class EncoderTap:
    """Reads a generator's NCE layers: ``tap(x, full)`` → (output or None, [x, features...])."""

    def __init__(self, net: nn.Module):
        self.net, self.layers = net, nce_layers(net)
        self._feats: list[torch.Tensor] = []
        self._stop_early = False
        self._handles = [m.register_forward_hook(self._hook(i == len(self.layers) - 1)) for i, m in enumerate(self.layers)]

    def remove(self) -> None:
        """Take the hooks off the generator."""
        for h in self._handles:
            h.remove()

    def _hook(self, last: bool):
        def hook(module, inputs, output):
            if self._active:
                self._feats.append(output)
                if last and self._stop_early:
                    raise _Stop

        return hook

    _active = False

    def __call__(self, x: torch.Tensor, full: bool = True) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        self._feats, self._active, self._stop_early = [x], True, not full
        try:
            out = self.net(x)
        except _Stop:
            out = None
        finally:
            self._active = False
        return out, self._feats


class PatchSampleMLP(nn.Module):
    """One MLP head per layer: features (B, C_l, H_l, W_l) at drawn positions → unit vectors (B, P, dim)."""

    def __init__(self, channels: list[int], dim: int = 256):
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim)) for c in channels)

    def forward(self, feats: list[torch.Tensor], ids: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for head, f, i in zip(self.heads, feats, ids):
            x = f.flatten(2).transpose(1, 2)[:, i]  # (B, P, C)
            out.append(F.normalize(head(x).float(), dim=-1))
        return out


def patch_nce(q: torch.Tensor, k: torch.Tensor, t: float) -> torch.Tensor:
    """Queries and keys (B, P, D), unit vectors; the positive of query i is key i of the same image."""
    logits = torch.bmm(q, k.detach().transpose(1, 2)) / t  # (B, P, P)
    target = torch.arange(q.shape[1], device=q.device).expand(q.shape[0], -1)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


class _Direction(nn.Module):
    """The networks of one direction: generator, discriminator of the target domain, MLP heads."""

    def __init__(self, c: CUTConfig):
        super().__init__()
        self.g = init_weights(build_generator(c.generator, c.ngf, c.n_blocks, c.num_downs, c.upsample))
        self.d = init_weights(PatchDiscriminator(3, c.ndf, c.n_layers_d))
        side, tap = max(64, self.g.stride), EncoderTap(self.g)
        with torch.no_grad():
            _, feats = tap(torch.zeros(1, 3, side, side), full=False)
        tap.remove()
        self.f = init_weights(PatchSampleMLP([t.shape[1] for t in feats], c.nce_dim))


@register("cut", CUTConfig)
class CUT(Translator):
    """CUT: one-sided contrastive unpaired translation (A → B, and B → A when bidirectional); batch (a, b) in [0, 1]."""

    def __init__(self, config: CUTConfig):
        super().__init__()
        self.config = c = config
        sides = ("ab", "ba") if c.bidirectional else ("ab",)
        self.nets = nn.ModuleDict({s: _Direction(c) for s in sides})
        if c.ema > 0:
            self.ema = nn.ModuleDict({s: ema_copy(self.nets[s].g) for s in sides})
        self._taps = {s: EncoderTap(self.nets[s].g) for s in sides}  # after the copies: the averages carry no hooks
        self._fakes: dict[str, torch.Tensor] = {}

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(self.nets)

    def generator(self, direction: str) -> nn.Module:
        if direction not in ("ab", "ba"):
            raise ValueError(f"direction must be 'ab' or 'ba', not {direction!r}")
        if direction not in self.nets:
            raise ValueError(f"this {self.registry_name} model was trained for A → B only (bidirectional off), not {direction}")
        return self.ema[direction] if self.config.ema > 0 else self.nets[direction].g

    def trained_generator(self, direction: str) -> nn.Module:
        self.generator(direction)
        return self.nets[direction].g

    def export_parts(self) -> tuple[str, ...]:
        return ("ema",) if self.config.ema > 0 else ("nets",)

    def optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, 0.999)
        g = itertools.chain(*(itertools.chain(n.g.parameters(), n.f.parameters()) for n in self.nets.values()))
        d = itertools.chain(*(n.d.parameters() for n in self.nets.values()))
        return {
            "generator": torch.optim.Adam(g, lr=lr, betas=betas, weight_decay=weight_decay),
            "discriminator": torch.optim.Adam(d, lr=lr, betas=betas, weight_decay=weight_decay),
        }

    def training_step(self, batch: Any, optimizer: str) -> dict[str, torch.Tensor]:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError("a CUT batch is a pair (a, b) of image tensors (B, 3, H, W) in [0, 1]")
        a, b = (to_signed(x) for x in batch)
        pairs = {"ab": (a, b), "ba": (b, a)}
        out: dict[str, torch.Tensor] = {}
        for s in self.nets:
            src, dst = pairs[s]
            suffix = "" if s == "ab" else "_BA"
            if optimizer == "generator":
                parts = self._generator_step(s, src, dst)
            elif optimizer == "discriminator":
                parts = self._discriminator_step(s, dst)
            else:
                raise ValueError(f"unknown optimiser {optimizer!r}")
            out.update({k + suffix: v for k, v in parts.items()})
        return {"loss": sum(out.values()), **out}

    def _nce(self, s: str, feats_k: list[torch.Tensor], feats_q: list[torch.Tensor]) -> torch.Tensor:
        c, f = self.config, self.nets[s].f
        ids = [torch.randperm(k.shape[2] * k.shape[3], device=k.device)[: c.num_patches] for k in feats_k]
        qs, ks = f(feats_q, ids), f(feats_k, ids)
        return sum(patch_nce(q, k, c.nce_t) for q, k in zip(qs, ks)) / len(qs)

    def _generator_step(self, s: str, src: torch.Tensor, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        c, net, tap = self.config, self.nets[s], self._taps[s]
        for p in net.d.parameters():
            p.requires_grad_(False)
        n = src.shape[0]
        real = torch.cat([src, dst]) if c.nce_idt else src
        fake, feats_k = tap(real)  # the input features are the keys
        _, feats_q = tap(fake, full=False)  # the output's features through the same encoder are the queries
        out = {"loss_G_GAN": gan_loss(net.d(fake[:n]), True, "lsgan") * c.lambda_gan}
        if c.lambda_nce > 0:
            if c.nce_idt:  # the batch holds [src → fake, dst → idt]: the mean over both is (NCE + NCE_Y) / 2
                out["loss_NCE"] = self._nce(s, feats_k, feats_q) * c.lambda_nce
            else:
                out["loss_NCE"] = self._nce(s, feats_k, feats_q) * c.lambda_nce
        self._fakes[s] = fake[:n].detach()
        for p in net.d.parameters():
            p.requires_grad_(True)
        return out

    def _discriminator_step(self, s: str, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        if s not in self._fakes:
            raise RuntimeError("the discriminator step needs the fakes of a generator step on the same batch first")
        fake, d = self._fakes.pop(s), self.nets[s].d
        return {
            "loss_D_real": 0.5 * gan_loss(d(dst), True, "lsgan"),
            "loss_D_fake": 0.5 * gan_loss(d(fake.to(dst.dtype)), False, "lsgan"),
        }

    def on_step_end(self, step: int) -> None:
        if self.config.ema > 0:
            for s, net in self.nets.items():
                update_ema(self.ema[s], net.g, self.config.ema, step)


@register("fastcut", FastCUTConfig)
class FastCUT(CUT):
    """FastCUT: CUT without identity NCE (a step costs about two thirds of CUT's)."""
