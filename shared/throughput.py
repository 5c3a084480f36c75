"""Compute counts and this machine's ceiling, for benchmarks that compare a speed with what the
hardware allows.

* :func:`count_gmacs`: multiply–accumulates (10⁹) a call performs, counted by torch's
  FlopCounterMode (convolutions and matrix products, the integer ``_int_mm`` included, forward and
  any backward run inside it).
* :func:`matmul_gmacs`: GMAC/s of a large matrix product in a number format on the current
  threads: the rate convolution kernels in that format approach at best.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry, register_flop_formula


def _int_mm_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """The exact integer matrix product (int8 × int8 → int32) counts like any other: 2·m·k·n."""
    m, k = a_shape
    return 2 * m * k * b_shape[1]


if torch.ops.aten._int_mm not in flop_registry:  # torch may count it itself one day
    register_flop_formula(torch.ops.aten._int_mm)(_int_mm_flops)


def count_gmacs(fn: Callable[..., Any], *args: Any) -> float:
    """Multiply–accumulates (10⁹) of ``fn(*args)`` (FLOPs / 2); ``fn`` runs once."""
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() / 2e9


def matmul_gmacs(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Multiply–accumulates per second (10⁹) of an n×n×n CPU matrix product in ``dtype`` on the
    current threads."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * n**3 / (time.perf_counter() - t0) / 1e9
