"""Deterministic batch order: the data a step sees is a pure function of (seed, step, rank).

This is what makes resume exact without saving loader state: a run resumed at step ``s`` asks
:class:`StepBatchSampler` to start at ``s`` and sees the same batches the uninterrupted run saw.
Each item is yielded as ``(index, item_seed)``; datasets with random augmentation seed a
``torch.Generator`` from ``item_seed`` (see :func:`item_generator`), so crops and flips are
reproducible too, in any number of loader workers.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler

from ..errors import UserError


def item_generator(item_seed: int) -> torch.Generator:
    """A CPU generator for one item's augmentation."""
    return torch.Generator().manual_seed(int(item_seed))


def split_key(key) -> tuple[int, int]:
    """A dataset key as ``(index, item_seed)``; a plain int index gets seed 0."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(key), 0


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of ``(index, item_seed)``: epoch ``e`` is a permutation seeded by ``(seed, e)``.

    With ``world`` ranks, one global batch of ``batch_size * world`` items is split into disjoint
    per-rank slices. Incomplete global batches at the end of an epoch are dropped.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world: int = 1):
        global_batch = batch_size * world
        if n < global_batch:
            raise UserError(
                f"the data set has {n} items, fewer than one batch of {global_batch}; lower --batch-size or add data"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.rank, self.world = start_step, rank, world
        self.per_epoch = n // global_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step, current = self.start_step, -1
        while True:
            epoch, b = divmod(step, self.per_epoch)
            if epoch != current:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                perm = torch.randperm(self.n, generator=g)
                seeds = torch.randint(0, 2**62, (self.n,), generator=g)
                current = epoch
            start = (b * self.world + self.rank) * self.batch_size
            idx = perm[start : start + self.batch_size]
            yield [(int(i), int(seeds[i])) for i in idx]
            step += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for len()
        return 2**62
