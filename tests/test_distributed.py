"""Data-parallel training over torch.distributed (gloo on CPU), as torchrun runs it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import torch
import torch.multiprocessing as mp

from shared import registry
from shared.data import TensorItems
from shared.trainer import TrainConfig, Trainer, seed_everything


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data() -> TensorItems:
    g = torch.Generator().manual_seed(1)
    return TensorItems(torch.rand(256, 1, 8, 8, generator=g))


def build(seed: int):
    seed_everything(seed)
    return registry.build("ae", {"input_shape": (1, 8, 8), "widths": (16, 32), "latent_dim": 8})


CFG = TrainConfig(steps=6, batch_size=16, lr=1e-2, precision="fp32", progress=False)


def worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
    torch.set_num_threads(1)
    model = build(seed=100 + rank)  # different init per rank: the trainer must broadcast rank 0's
    Trainer(model, data(), CFG).fit()
    torch.save(model.state_dict(), f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ranks_hold_identical_weights_equal_to_one_process_with_the_global_batch(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    # one process with the global batch (2 × 16) takes the same steps: rank 0 starts from seed 100
    single = build(seed=100)
    Trainer(single, data(), TrainConfig(**{**CFG.__dict__, "batch_size": 32})).fit()
    for k, v in single.state_dict().items():
        torch.testing.assert_close(r0[k], v, rtol=1e-4, atol=1e-5)


def test_torchrun_cli_trains_and_only_rank0_writes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
        "-m", "shared.cli", "train", "generation", "-o", str(tmp_path), "--steps", "4", "--batch-size", "16",
        "--no-progress", "--precision", "fp32",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(tmp_path / "generation" / "runs" / "vae" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 4
