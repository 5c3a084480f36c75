"""What every translator of ensō answers, whatever trains it (CycleGAN, CUT, FastCUT).

A translator holds a generator per direction it was trained for, ``"ab"`` (domain A → B) and
``"ba"`` (B → A); :meth:`Translator.generator` returns the one to use for inference (the moving
average of the weights where the model keeps one). Generators work in [-1, 1]; the
``translate_*`` methods take and return images (B, 3, H, W) in [0, 1], H and W divisible by
:attr:`Translator.stride`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from shared.model import TrainableModel

from .generators import GeneratorKind, Upsample


@dataclass
class NetworksConfig:
    """The generator and PatchGAN fields every translator's config starts with (one set of flags)."""

    generator: GeneratorKind = field(default="resnet", metadata={"help": "resnet (anchor), unet, or mobile (depthwise-separable bottleneck)"})
    n_blocks: int = field(default=9, metadata={"help": "residual blocks of the resnet/mobile generator (9 for 256 px, 6 for 128 px)"})
    num_downs: int = field(default=8, metadata={"help": "downsamplings of the unet generator (8: 256 px → 1×1)"})
    ngf: int = field(default=64, metadata={"help": "generator width (first layer's channels)"})
    ndf: int = field(default=64, metadata={"help": "discriminator width"})
    n_layers_d: int = field(default=3, metadata={"help": "PatchGAN layers (3: 70×70 patches)"})
    upsample: Upsample = field(default="transposed", metadata={"help": "decoder upsampling: transposed conv or resize_conv (no checkerboard)"})


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1]."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


class Translator(TrainableModel):
    """Base of the translation models: generators by direction, and [0, 1] inference."""

    #: bf16 in NCHW: instance norm returns NCHW, so channels_last pays a layout copy per norm layer;
    #: measured (scripts/bench_translate.py) NCHW bf16 is the faster fast path for these networks
    channels_last = False
    #: the names of the generators, by direction, that an export keeps
    generator_names = {"ab": "g_ab", "ba": "g_ba"}

    @property
    def directions(self) -> tuple[str, ...]:
        """The directions this model translates (``"ab"``, ``"ba"`` or both)."""
        return tuple(d for d, n in self.generator_names.items() if hasattr(self, n))

    @property
    def stride(self) -> int:
        """Image sides must divide by this (the generators' total downsampling)."""
        return self.generator(self.directions[0]).stride

    def export_parts(self) -> tuple[str, ...]:
        """The submodules a shipped translator needs (inference generators only)."""
        return tuple(self.generator_names[d] for d in self.directions)

    def generator(self, direction: str) -> nn.Module:
        """The inference generator for ``direction`` (``"ab"`` or ``"ba"``)."""
        if direction not in ("ab", "ba"):
            raise ValueError(f"direction must be 'ab' or 'ba', not {direction!r}")
        if direction not in self.directions:
            raise ValueError(f"this {self.registry_name} model was trained for {' and '.join(self.directions)} only, not {direction}")
        return getattr(self, self.generator_names[direction])

    def trained_generator(self, direction: str) -> nn.Module:
        """The generator the optimiser updates for ``direction`` (:meth:`generator` may return its moving average)."""
        self.generator(direction)  # validates the direction
        return getattr(self, self.generator_names[direction])

    @torch.no_grad()
    def warm_start(self, source: "Translator") -> tuple[str, ...]:
        """Copy ``source``'s inference generators into this model's (and their moving averages), per direction both hold.

        Discriminators, heads and pools keep their initialisation. Returns the directions copied;
        raises ``ValueError`` when the generators' architectures differ or no direction is shared.
        """
        shared = tuple(d for d in self.directions if d in source.directions)
        if not shared:
            raise ValueError(f"the initial model translates {' and '.join(source.directions)}, this one {' and '.join(self.directions)}")
        for d in shared:
            state = source.generator(d).state_dict()
            for net in {id(m): m for m in (self.trained_generator(d), self.generator(d))}.values():
                try:
                    net.load_state_dict({k: v.to(net.state_dict()[k].dtype) if k in net.state_dict() else v for k, v in state.items()})
                except RuntimeError as e:
                    raise ValueError(f"the initial model's {d} generator has another architecture ({str(e).splitlines()[0]})") from None
        return shared

    @torch.no_grad()
    def translate_ab(self, x: torch.Tensor) -> torch.Tensor:
        """Images of A (B, 3, H, W) in [0, 1], H and W divisible by :attr:`stride` → images of B, same shape, in [0, 1]."""
        return to_unit(self.generator("ab")(to_signed(x)))

    @torch.no_grad()
    def translate_ba(self, x: torch.Tensor) -> torch.Tensor:
        """Images of B (B, 3, H, W) in [0, 1] → images of A, same shape, in [0, 1]."""
        return to_unit(self.generator("ba")(to_signed(x)))
