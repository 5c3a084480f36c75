"""Procedural dSprites-like sprites (Matthey et al. 2017), generated here, no download.

One white shape on a black 64×64 canvas, set by five independent ground-truth factors, each a
small set of evenly spaced values (the factor table holds their indices):

====== ====== =====================================================================
factor values  meaning
====== ====== =====================================================================
shape  3      0 square, 1 ellipse, 2 heart
scale  6      size 0.5 … 1.0 (at 1.0 the square is 19 px wide, the ellipse 24 px long)
rotation 20   angle 0 … 2π·19/20 for every shape, as in dSprites; the square looks the same
              every π/2 and the ellipse every π, so for them some rotations give equal images
pos_x  16     centre 16 … 48 px from the left
pos_y  16     centre 16 … 48 px from the top
====== ====== =====================================================================

Images are float32 ``(N, 1, 64, 64)`` holding exactly 0 or 1 (a pixel is 1 when its centre lies
inside the shape; no antialiasing). Rasterisation is vectorised in torch: every shape is an
inside-test evaluated on the pixel grid after undoing the sprite's translation, rotation and scale.

>>> sprites = sample_sprites(1000, seed=0)   # 1000 distinct random factor combinations
>>> sprites.images.shape, sprites.factors.shape
(torch.Size([1000, 1, 64, 64]), torch.Size([1000, 5]))
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import UserError

SIZE = 64
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "rotation", "pos_x", "pos_y")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 20, 16, 16)
SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")
#: the half-size in pixels of a shape at scale 1 (before the shape's own proportions)
RADIUS = 12.0


def factor_values() -> dict[str, torch.Tensor]:
    """The value of every factor index: ``{name: (size,) float tensor}`` (shape: its index)."""
    return {
        "shape": torch.arange(3, dtype=torch.float32),
        "scale": torch.linspace(0.5, 1.0, FACTOR_SIZES[1]),
        "rotation": torch.arange(FACTOR_SIZES[2], dtype=torch.float32) * (2 * math.pi / FACTOR_SIZES[2]),
        "pos_x": torch.linspace(16.0, 48.0, FACTOR_SIZES[3]),
        "pos_y": torch.linspace(16.0, 48.0, FACTOR_SIZES[4]),
    }


def num_combinations() -> int:
    """Size of the full factor grid (92,160)."""
    return math.prod(FACTOR_SIZES)


def unravel(flat: torch.Tensor) -> torch.Tensor:
    """Flat grid indices (N,) → factor table (N, 5) int64, in the order of :data:`FACTOR_NAMES`."""
    cols, rest = [], flat.long()
    for size in reversed(FACTOR_SIZES):
        cols.append(rest % size)
        rest = rest // size
    return torch.stack(cols[::-1], dim=1)


def _square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 0.8


def _ellipse(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return u**2 + (v / 0.55) ** 2 <= 1.0


def _heart(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    u, v = u * 1.15, v * 1.15 + 0.1  # the classic heart curve, shrunk and centred
    return (u**2 + v**2 - 1.0) ** 3 - u**2 * v**3 <= 0.0


#: inside-tests in a sprite's own frame (unit size, v pointing up), in the order of SHAPES
_INSIDE = (_square, _ellipse, _heart)


def render(factors: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Factor table (N, 5) of indices → images (N, 1, 64, 64) float32 in {0, 1}."""
    factors = torch.as_tensor(factors)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
        raise UserError(f"a sprite factor table must be (N, {len(FACTOR_SIZES)}), not {tuple(factors.shape)}")
    factors = factors.long()
    sizes = torch.tensor(FACTOR_SIZES)
    if len(factors) and ((factors < 0).any() or (factors >= sizes).any()):
        raise UserError(f"sprite factor indices must lie in [0, size) with sizes {FACTOR_SIZES} for {FACTOR_NAMES}")
    vals = factor_values()
    grid = torch.arange(SIZE, dtype=torch.float32) + 0.5  # pixel centres
    out = torch.empty(len(factors), 1, SIZE, SIZE)
    for start in range(0, len(factors), chunk):
        f = factors[start : start + chunk]
        scale = vals["scale"][f[:, 1]].view(-1, 1, 1) * RADIUS
        angle = vals["rotation"][f[:, 2]].view(-1, 1, 1)
        dx = grid.view(1, 1, SIZE) - vals["pos_x"][f[:, 3]].view(-1, 1, 1)
        dy = vals["pos_y"][f[:, 4]].view(-1, 1, 1) - grid.view(1, SIZE, 1)  # up is +
        cos, sin = angle.cos(), angle.sin()
        u = (cos * dx + sin * dy) / scale  # rotate the pixel by -angle: the sprite turns by +angle
        v = (-sin * dx + cos * dy) / scale
        block = torch.empty(len(f), SIZE, SIZE)
        for k, inside in enumerate(_INSIDE):
            rows = f[:, 0] == k
            block[rows] = inside(u[rows], v[rows]).float()
        out[start : start + chunk, 0] = block
    return out


@dataclass
class Sprites:
    """Images (N, 1, 64, 64) in {0, 1} and their factor table (N, 5) int64 of value indices."""

    images: torch.Tensor
    factors: torch.Tensor
    names: tuple[str, ...] = FACTOR_NAMES
    sizes: tuple[int, ...] = FACTOR_SIZES

    def __len__(self) -> int:
        return len(self.images)


def sample_factors(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` distinct factor combinations drawn uniformly from the grid by ``seed``: (n, 5) int64."""
    total = num_combinations()
    if not 1 <= n <= total:
        raise UserError(f"the sprite grid has {total} factor combinations; ask for 1 to {total} images, not {n}")
    g = torch.Generator().manual_seed(int(seed))
    return unravel(torch.randperm(total, generator=g)[:n])


def sample_sprites(n: int, seed: int = 0) -> Sprites:
    """``n`` distinct random sprites (see :func:`sample_factors`), rendered."""
    factors = sample_factors(n, seed)
    return Sprites(render(factors), factors)


def all_sprites() -> Sprites:
    """The full factor grid in order (92,160 images, 1.5 GB as float32)."""
    factors = unravel(torch.arange(num_combinations()))
    return Sprites(render(factors), factors)
