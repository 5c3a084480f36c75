"""How many CPU threads a command uses: the user's ``--threads N``, or a choice by the size of the work.

Small models lose to OpenMP's synchronisation when the cores are shared with other work (a laptop
always runs something else): one thread is then several times faster than two, while large
convolutions still gain from every core. ``--threads 0`` (the default of every command) asks
:func:`choose_threads` to decide from the multiply–accumulates of one unit of work (a training
step, an image); ``--threads N`` sets N. :func:`training_step_macs` counts a training step.
"""
from __future__ import annotations

import contextlib
import copy
import os
from typing import Any, Callable, Iterable

import torch

#: below this many multiply–accumulates per unit of work, one thread. Chosen from
#: ``scripts/bench_train.py --under-load`` (docs/results.md): a second thread pays for itself, over
#: a core to itself and a core shared with another process, only from the codec's and the ResNet
#: AE's 1.4–1.7·10¹¹ a step; the 64×64 conv VAE (2.6·10¹⁰) and the digits VAE (4·10⁸) lose with it.
SMALL_WORK_MACS = 6e10


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def choose_threads(work_macs: float | None) -> int:
    """Threads for work of ``work_macs`` multiply–accumulates per unit (None: unknown, taken as large).

    Large work gets every available core, or ``$OMP_NUM_THREADS`` where the environment sets it.
    """
    if work_macs is not None and work_macs < SMALL_WORK_MACS:
        return 1
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else available_cores()


def use_threads(requested: int = 0, work_macs: float | None = None) -> int:
    """Set torch's intra-op threads to ``requested`` (> 0), or to :func:`choose_threads` of the work (0).

    Returns the count set; a negative ``requested`` is a ``ValueError``.
    """
    if requested < 0:
        raise ValueError(f"threads must be 0 (choose by the work) or a positive count, not {requested}")
    n = requested if requested > 0 else choose_threads(work_macs)
    torch.set_num_threads(n)
    return n


def training_step_macs(
    model: torch.nn.Module, batch: Any, optimizers: Iterable[str], autocast: Callable[[], Any] = contextlib.nullcontext
) -> float | None:
    """Multiply–accumulates of one training step of ``model`` on ``batch`` (on the model's device),
    or None where they cannot be counted.

    Counts the forward of ``model.training_step(batch, name)`` for each optimiser name, times 3 for
    the backward. It runs on a copy of the model in training mode and gives every RNG back its
    state, so neither the model (weights, batch-norm statistics, attributes) nor the random stream
    of the run changes: a resumed run stays exact. The count depends only on the model and the
    batch's shape.
    """
    from .checkpoint import rng_state, set_rng_state
    from .throughput import count_gmacs

    state = rng_state()
    try:
        twin = copy.deepcopy(model).train()

        def forward() -> None:
            for name in optimizers:
                with autocast():
                    twin.training_step(batch, name)

        return 3e9 * count_gmacs(forward)
    except Exception:  # a model the copy or the counter cannot follow: unknown, taken as large work
        return None
    finally:
        set_rng_state(state)
