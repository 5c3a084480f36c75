"""Freed memory kept for reuse (the commands' allocator policy): steady training steps take no
fresh page faults, where glibc's default maps and faults in large tensors anew; the commands apply
it, library code (a Codec, a Trainer) never does unasked."""
from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys

import pytest

import shared.allocator as allocator

PROBE = """
import ctypes, resource, sys, torch
ctypes.CDLL("libc.so.6").prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: count 4 KiB pages on any host
import shared.allocator as allocator
mode = sys.argv[1]
if mode == "kept":  # a library user's explicit opt-in
    assert allocator.reuse_freed_memory()
elif mode == "library":  # building the codec and the trainer in-process
    from compress.codec import Codec
    from shared import registry
    from shared.data import TensorItems
    from shared.trainer import TrainConfig, Trainer
    Codec(registry.build("factorized", {"N": 8, "M": 8}))
    Trainer(registry.build("vae", {"input_shape": (1, 8, 8)}), TensorItems(torch.rand(4, 1, 8, 8)), TrainConfig(steps=1, progress=False, device="cpu"))
elif mode == "cli":  # what every command runs through
    from shared.errors import run_cli
    assert run_cli(lambda argv: 0, []) == 0
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 3, 3, padding=1))
x = torch.rand(4, 3, 128, 128)
def step_faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    net(x).square().mean().backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(allocator._applied, *[step_faults() for _ in range(8)])
"""


def _env_without_malloc_settings() -> dict:
    return {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") or k in ("ENSO_MALLOC", "GLIBC_TUNABLES", "LD_PRELOAD"))}


@functools.cache
def _probe(mode: str, **env_changes: str) -> tuple[str, float]:
    """The allocator state after ``mode``'s set-up (``_applied``: None if never asked) and the page
    faults of a typical steady step: the median of the last 5 of 8 (a step may now and then grow the
    heap once, e.g. by 16 MiB, under either policy)."""
    env = _env_without_malloc_settings() | env_changes
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env)
    applied, *faults = out.stdout.split()[-9:]
    return applied, statistics.median(int(n) for n in faults[-5:])


LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator policy applies to glibc on Linux only")


@LINUX
def test_kept_memory_skips_page_faults_in_steady_steps():
    (_, default), (applied, kept) = _probe("default"), _probe("kept")
    assert default > 1000  # glibc's default: the step's large tensors are mapped and faulted in anew
    assert applied == "True" and kept < default / 20


@LINUX
def test_building_a_codec_or_trainer_leaves_the_process_malloc_alone():
    (_, default), (applied, library) = _probe("default"), _probe("library")
    assert applied == "None"  # never asked
    assert library > default / 4  # steady steps still fault their pages in, as under glibc's default (kept: < default / 20)


@LINUX
@pytest.mark.parametrize("opt_out,expected", [(False, "True"), (True, "False")])
def test_the_commands_keep_freed_memory_unless_told_not_to(opt_out, expected):
    applied, faults = _probe("cli", **({"ENSO_MALLOC": "default"} if opt_out else {}))
    assert applied == expected
    _, default = _probe("default")
    assert (faults < default / 20) == (not opt_out)


@pytest.mark.parametrize(
    "name,value",
    [("ENSO_MALLOC", "default"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_max=1"), ("MALLOC_MMAP_MAX_", "65536"), ("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")],
)
def test_user_malloc_settings_are_respected(monkeypatch, name, value):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv(name, value)
    assert allocator.reuse_freed_memory() is False
