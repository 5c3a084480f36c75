"""Exponential moving averages of a network's weights (as StarGAN v2 and most GAN recipes).

:func:`ema_copy` makes a frozen copy of a network to hold the average; :func:`update_ema` moves it
towards the live network after each optimiser step. The average is an ordinary submodule of the
model, so checkpoints hold it and resumed runs stay exact.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with ``requires_grad`` off on every parameter (it is never optimised)."""
    avg = copy.deepcopy(net)
    for p in avg.parameters():
        p.requires_grad_(False)
    return avg


@torch.no_grad()
def update_ema(avg: nn.Module, net: nn.Module, decay: float, step: int | None = None) -> None:
    """``avg ← decay·avg + (1 − decay)·net`` on parameters; buffers are copied.

    With ``step`` (the number of optimiser steps done), the decay is capped at
    ``(1 + step) / (10 + step)`` so the average does not remember the random initialisation for
    thousands of steps.
    """
    if step is not None:
        decay = min(decay, (1 + step) / (10 + step))
    for a, p in zip(avg.parameters(), net.parameters()):
        a.lerp_(p.detach().to(a.dtype), 1.0 - decay)
    for a, b in zip(avg.buffers(), net.buffers()):
        a.copy_(b)
