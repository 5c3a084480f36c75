"""Freed memory kept for reuse (the trainer's allocator policy): steady training steps take no
fresh page faults, where glibc's default maps and faults in every large tensor anew."""
from __future__ import annotations

import subprocess
import sys

import pytest

import shared.allocator as allocator

PROBE = """
import resource, sys, torch
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
print(*[step_faults() for _ in range(6)])
"""


def _steady_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return sum(int(n) for n in out.stdout.split()[-3:])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator policy applies to glibc on Linux only")
def test_kept_memory_skips_page_faults_in_steady_steps():
    default, kept = _steady_faults("default"), _steady_faults("kept")
    assert default > 3000  # glibc's default: the step's large tensors are mapped and faulted in anew
    assert kept < default / 20


def test_opt_out_and_user_tunables_are_respected(monkeypatch):
    for name, value in (("ENSO_MALLOC", "default"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_max=1")):
        monkeypatch.setattr(allocator, "_applied", None)
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert allocator.reuse_freed_memory() is False
