"""Freed memory kept for reuse (the trainer's allocator policy): steady training steps take no
fresh page faults, where glibc's default maps and faults in large tensors anew."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys

import pytest

import shared.allocator as allocator

PROBE = """
import ctypes, resource, sys, torch
ctypes.CDLL("libc.so.6").prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: count 4 KiB pages on any host
from shared.allocator import reuse_freed_memory
if sys.argv[1] == "kept":
    assert reuse_freed_memory()
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 3, 3, padding=1))
x = torch.rand(4, 3, 128, 128)
def step_faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    net(x).square().mean().backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(*[step_faults() for _ in range(8)])
"""


def _env_without_malloc_settings() -> dict:
    return {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") or k in ("ENSO_MALLOC", "GLIBC_TUNABLES", "LD_PRELOAD"))}


def _steady_faults(mode: str) -> float:
    """Page faults of a typical steady step: the median of the last 5 of 8 (a step may now and then
    grow the heap once, e.g. by 16 MiB, under either policy)."""
    env = _env_without_malloc_settings()
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env)
    return statistics.median(int(n) for n in out.stdout.split()[-5:])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator policy applies to glibc on Linux only")
def test_kept_memory_skips_page_faults_in_steady_steps():
    default, kept = _steady_faults("default"), _steady_faults("kept")
    assert default > 1000  # glibc's default: the step's large tensors are mapped and faulted in anew
    assert kept < default / 20


@pytest.mark.parametrize(
    "name,value",
    [("ENSO_MALLOC", "default"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_max=1"), ("MALLOC_MMAP_MAX_", "65536"), ("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")],
)
def test_user_malloc_settings_are_respected(monkeypatch, name, value):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv(name, value)
    assert allocator.reuse_freed_memory() is False


CODEC_PROBE = """
import shared.allocator as allocator
from compress.codec import Codec
from shared import registry
assert allocator._applied is None
Codec(registry.build("factorized", {"N": 8, "M": 8}))
print(allocator._applied)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator policy applies to glibc on Linux only")
@pytest.mark.parametrize("opt_out,expected", [(False, "True"), (True, "False")])
def test_building_a_codec_keeps_freed_memory_unless_told_not_to(opt_out, expected):
    env = _env_without_malloc_settings()
    if opt_out:
        env["ENSO_MALLOC"] = "default"
    out = subprocess.run([sys.executable, "-c", CODEC_PROBE], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split()[-1] == expected
