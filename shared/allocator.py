"""Keep freed memory for reuse: glibc's malloc tuned for training on a CPU.

PyTorch's CPU tensors come from ``malloc``. glibc serves every large request (above a threshold
that adapts between 128 KiB and 32 MiB) with a fresh ``mmap`` and returns it to the kernel on
``free``, so each large activation and gradient of every training step pays one page fault and
one kernel page-zeroing per 4 KiB when first written. With freed memory kept in the process
(``mmap`` off, trimming off), the steps after the first few reuse the same pages: the codec's
training (256×256 crops, batch 8, bf16, 2 threads) went from 10.5 to 14.1 images/s, at the same
resident memory (1.8 GB).

The trainer applies this (:class:`shared.trainer.Trainer`); one-shot commands do not, because
glibc then cannot hand large blocks back and fragments: encoding a 12-megapixel photo peaked at
3.0 GiB instead of 2.0. Users who set glibc's malloc tunables themselves
(``GLIBC_TUNABLES=glibc.malloc.*``) keep theirs; ``ENSO_MALLOC=default`` turns this off.
Elsewhere (macOS, musl, Windows) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied: bool | None = None


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory in the process (no ``mmap`` for large blocks, no trimming).

    Returns True when the policy is in force (now or from an earlier call), False when it was not
    applied: not Linux/glibc, ``ENSO_MALLOC=default``, or the user's own ``GLIBC_TUNABLES``.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if (
        not sys.platform.startswith("linux")
        or os.environ.get("ENSO_MALLOC", "") == "default"
        or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")
    ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
