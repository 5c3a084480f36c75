"""Data-parallel training with torch.distributed, started by ``torchrun``.

``torchrun --nproc-per-node N -m shared.cli train ...`` sets ``WORLD_SIZE``/``RANK``; the trainer
then calls :func:`init_from_env` (gloo on CPU, nccl on CUDA), broadcasts rank 0's parameters and
buffers, and averages gradients over ranks before each optimiser step (:func:`average_gradients`),
which is what DDP does, done per optimiser so that models with several optimisers (a GAN, a codec's
auxiliary loss) stay exact. Each rank reads a disjoint slice of every global batch.
"""
from __future__ import annotations

import os
from typing import Iterable

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group torchrun described in the environment; return this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_gradients(params: Iterable[torch.nn.Parameter], bucket_bytes: int = 25 << 20) -> None:
    """All-reduce and average the gradients of ``params`` over ranks, in flattened buckets."""
    n = world_size()
    if n == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    bucket: list[torch.Tensor] = []
    size = 0

    def flush() -> None:
        if not bucket:
            return
        flat = _flatten_dense_tensors(bucket)
        dist.all_reduce(flat)
        flat.div_(n)
        for g, synced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            g.copy_(synced)
        bucket.clear()

    for g in grads:
        bucket.append(g)
        size += g.numel() * g.element_size()
        if size >= bucket_bytes:
            flush()
            size = 0
    flush()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place (no-op on one process); returns ``t``."""
    if world_size() > 1:
        dist.all_reduce(t)
    return t
