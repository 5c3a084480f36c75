"""Keep freed memory for reuse: glibc's malloc tuned for repeated large tensors (training, the codec).

PyTorch's CPU tensors come from ``malloc``. glibc serves large requests with a fresh ``mmap``
(above a threshold that adapts between 128 KiB and 32 MiB, so always above 32 MiB) and returns
free memory at the top of its heap to the kernel once it exceeds a trim threshold; a training
step's large activations and gradients are then page-faulted and zeroed by the kernel anew, step
after step. With ``mmap`` and trimming off, the steps after the first few reuse the same pages:
the codec's training run (256×256 crops, batch 8, bf16, 2 threads) went from 10.5 to 14.1
images/s, and ``scripts/bench_train.py --allocators`` measures it side by side (README).

ensō's own commands (``ae``, ``compress``, ``translate``: every entry point runs through
:func:`shared.errors.run_cli`) apply this at start-up, and it stays in force for the rest of that
process: the codec's transforms allocate activation-sized tensors layer after layer too, and
``scripts/bench_codec.py`` measures its encode and decode under both policies. Library code never
applies it on its own (building a ``Codec`` or a ``Trainer`` leaves malloc as it was): a program
that embeds ensō opts in by calling :func:`reuse_freed_memory` once, before its first large
tensors. The price is fragmentation: glibc cannot hand large blocks back, so a 12-megapixel encode
peaks higher (``bench_codec.py --large`` reports both; README), which a long-lived process (a web
server, a notebook) should weigh. Users who tune malloc themselves keep their settings
(``GLIBC_TUNABLES=glibc.malloc.*``, glibc's ``MALLOC_*_`` variables, or another malloc in
``LD_PRELOAD``); ``ENSO_MALLOC=default`` turns it off for the commands as well. Elsewhere (macOS,
musl, Windows) it does nothing.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied: bool | None = None  # None: never asked in this process; else reuse_freed_memory's answer


def user_tunes_malloc() -> bool:
    """True when the environment already says how malloc should behave (see the module docstring)."""
    env = os.environ
    return (
        env.get("ENSO_MALLOC", "") == "default"
        or "glibc.malloc." in env.get("GLIBC_TUNABLES", "")
        or any(name.startswith("MALLOC_") and name.endswith("_") for name in env)
        or any(lib in env.get("LD_PRELOAD", "") for lib in ("jemalloc", "tcmalloc", "mimalloc"))
    )


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory in the process (no ``mmap`` for large blocks, no trimming),
    for the rest of the process: the explicit opt-in for programs that embed ensō (its commands
    call it themselves).

    Returns True when the policy is in force (now or from an earlier call), False when it was not
    applied: not Linux with glibc, or the user tunes malloc (:func:`user_tunes_malloc`).
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or user_tunes_malloc():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied


def policy_env(policy: str) -> dict[str, str]:
    """A copy of ``os.environ`` for a child process that runs under one policy: ``"kept"`` (this
    module's, unless the user tunes malloc) or ``"default"`` (glibc's, via ``ENSO_MALLOC=default``);
    for benchmarks that compare the two."""
    if policy not in ("kept", "default"):
        raise ValueError(f"policy must be 'kept' or 'default', not {policy!r}")
    env = {k: v for k, v in os.environ.items() if k != "ENSO_MALLOC"}
    if policy == "default":
        env["ENSO_MALLOC"] = "default"
    return env
