"""Run a convolutional network over a large image in overlapping tiles, with bounded memory."""
from __future__ import annotations

from typing import Callable

import torch


def tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, margin: int, scale: float = 1.0) -> torch.Tensor:
    """``fn`` over ``x`` (1, C, H, W) in ``tile``² cores, each computed with ``margin`` pixels of context.

    ``fn`` must be translation-equivariant (a conv net) and map a (1, C, h, w) input to
    (1, C', h·scale, w·scale). Tile and margin should be multiples of the net's stride, so every
    tile samples the whole image's grid; where the margin covers the receptive field, the result
    equals ``fn(x)`` up to floating-point rounding. Inputs no larger than one tile with its margins
    run whole.
    """
    _, _, H, W = x.shape
    if H <= tile + 2 * margin and W <= tile + 2 * margin:
        return fn(x)
    out = None
    for top in range(0, H, tile):
        for left in range(0, W, tile):
            t0, l0 = max(0, top - margin), max(0, left - margin)
            y = fn(x[:, :, t0 : min(H, top + tile + margin), l0 : min(W, left + tile + margin)])
            if out is None:
                out = torch.empty(1, y.shape[1], int(H * scale), int(W * scale), dtype=y.dtype, device=y.device)
            a, b = int((top - t0) * scale), int((left - l0) * scale)
            h, w = int(min(tile, H - top) * scale), int(min(tile, W - left) * scale)
            r, c = int(top * scale), int(left * scale)
            out[:, :, r : r + h, c : c + w] = y[:, :, a : a + h, b : b + w]
    return out
