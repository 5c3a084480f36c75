"""Building blocks: the encoders and decoders the autoencoder family shares.

Images are ``(B, C, H, W)`` floats in [0, 1]; vectors are ``(B, D)``. :func:`encoder` and
:func:`decoder` pick a conv network for a 3-D ``input_shape`` ``(C, H, W)`` and an MLP for a 1-D
one ``(D,)``. The conv encoder halves the resolution once per entry of ``widths`` (so ``H`` and
``W`` must divide by ``2 ** len(widths)``), then maps the flattened features (plus an optional
condition vector) to ``out_dim``. The decoder mirrors it and returns logits of ``input_shape``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError


def mlp(dims: list[int], act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Linear layers ``dims[0] → … → dims[-1]`` with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def conv_block(cin: int, cout: int, stride: int = 1, transpose: bool = False) -> nn.Sequential:
    """3×3 (or 4×4 transposed, stride 2) conv, GroupNorm, SiLU."""
    if transpose:
        conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    else:
        conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    return nn.Sequential(conv, nn.GroupNorm(min(8, cout), cout), nn.SiLU())


def check_shape(input_shape: tuple[int, ...], widths: tuple[int, ...]) -> None:
    if len(input_shape) == 3:
        f = 2 ** len(widths)
        if input_shape[1] % f or input_shape[2] % f:
            raise ConfigError(f"image size {input_shape[1]}×{input_shape[2]} must divide by {f} for {len(widths)} downsamplings; "
                              "change the widths or the image size")
    elif len(input_shape) != 1:
        raise ConfigError(f"input_shape must be (C, H, W) or (D,), not {tuple(input_shape)}")


class Encoder(nn.Module):
    """``x`` (B, *input_shape) [, ``cond`` (B, cond_dim)] → (B, out_dim)."""

    def __init__(self, input_shape: tuple[int, ...], widths: tuple[int, ...], out_dim: int, cond_dim: int = 0):
        super().__init__()
        check_shape(input_shape, widths)
        if len(input_shape) == 3:
            c, h, w = input_shape
            layers, cin = [], c
            for width in widths:
                layers += [conv_block(cin, width, stride=2), conv_block(width, width)]
                cin = width
            self.trunk = nn.Sequential(*layers, nn.Flatten())
            feat = cin * (h >> len(widths)) * (w >> len(widths))
            self.head = nn.Linear(feat + cond_dim, out_dim)
        else:
            self.trunk = nn.Sequential(mlp([input_shape[0], *widths]), nn.SiLU()) if widths else nn.Identity()
            self.head = nn.Linear((widths[-1] if widths else input_shape[0]) + cond_dim, out_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.trunk(x)
        if cond is not None:
            h = torch.cat([h, cond.to(h.dtype)], dim=1)
        return self.head(h)


class Decoder(nn.Module):
    """``z`` (B, in_dim) [, ``cond``] → logits (B, *output_shape)."""

    def __init__(self, output_shape: tuple[int, ...], widths: tuple[int, ...], in_dim: int, cond_dim: int = 0):
        super().__init__()
        check_shape(output_shape, widths)
        self.output_shape = tuple(output_shape)
        if len(output_shape) == 3:
            c, h, w = output_shape
            rev = list(reversed(widths))
            self.start = (rev[0], h >> len(widths), w >> len(widths))
            self.head = nn.Sequential(nn.Linear(in_dim + cond_dim, math.prod(self.start)), nn.SiLU())
            layers = []
            for i, width in enumerate(rev):
                nxt = rev[i + 1] if i + 1 < len(rev) else rev[-1]
                layers += [conv_block(width, width), conv_block(width, nxt, transpose=True)]
            self.trunk = nn.Sequential(*layers, nn.Conv2d(rev[-1], c, 3, padding=1))
        else:
            rev = list(reversed(widths))
            self.start = None
            self.head = nn.Sequential(nn.Linear(in_dim + cond_dim, rev[0] if rev else output_shape[0]), nn.SiLU() if rev else nn.Identity())
            self.trunk = mlp([*rev, output_shape[0]]) if rev else nn.Identity()

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is not None:
            z = torch.cat([z, cond.to(z.dtype)], dim=1)
        h = self.head(z)
        if self.start is not None:
            h = h.view(h.shape[0], *self.start)
        return self.trunk(h)


class PlainResBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` with 3×3 convs and no normalisation: (B, C, H, W) → (B, C, H, W).
    ``identity_at_init``: the second conv starts at zero, so the block starts as the identity (a block
    added to a trained network leaves its output unchanged until training moves it)."""

    def __init__(self, ch: int, identity_at_init: bool = False):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, padding=1))
        if identity_at_init:
            nn.init.zeros_(self.f[-1].weight)
            nn.init.zeros_(self.f[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class ResBlock(nn.Module):
    """Residual block: two 3×3 convs with GroupNorm and SiLU, ``x + f(x)``."""

    def __init__(self, ch: int):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(8, ch)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(x + self.f(x))


class ConvTrunk(nn.Module):
    """Fully convolutional encoder/decoder pair for images of any size divisible by ``2**len(widths)``:
    (B, C, H, W) → latent map (B, latent_ch, H/2^k, W/2^k) → logits (B, C, H, W). ``res_blocks``
    residual blocks sit at the bottleneck on each side."""

    def __init__(self, channels: int, widths: tuple[int, ...], latent_ch: int, res_blocks: int = 0):
        super().__init__()
        enc, cin = [], channels
        for w in widths:
            enc += [conv_block(cin, w, stride=2), conv_block(w, w)]
            cin = w
        enc += [ResBlock(cin) for _ in range(res_blocks)]
        self.encoder = nn.Sequential(*enc, nn.Conv2d(cin, latent_ch, 1))
        rev = list(reversed(widths))
        dec: list[nn.Module] = [nn.Conv2d(latent_ch, rev[0], 3, padding=1), nn.SiLU()]
        dec += [ResBlock(rev[0]) for _ in range(res_blocks)]
        for i, w in enumerate(rev):
            nxt = rev[i + 1] if i + 1 < len(rev) else rev[-1]
            dec += [conv_block(w, w), conv_block(w, nxt, transpose=True)]
        self.decoder = nn.Sequential(*dec, nn.Conv2d(rev[-1], channels, 3, padding=1))
