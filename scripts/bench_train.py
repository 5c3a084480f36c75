#!/usr/bin/env python
"""Training throughput: fp32 NCHW against the fast path (bf16 autocast + channels_last), side by side.

Times the shared trainer's real ``train_step`` (forward, backward, optimiser) on random images for
a conv VAE at 64×64 and a ResNet conv AE at 256×256. The two precisions alternate in rounds so
that background load hits both alike; the median round counts.

    python scripts/bench_train.py [--rounds 3] [--steps 5] [--threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from shared import registry
from shared.data import TensorItems
from shared.precision import cpu_has_native_bf16
from shared.trainer import TrainConfig, Trainer, seed_everything

CASES = {
    "conv VAE 64x64": ("vae", {"input_shape": (3, 64, 64), "widths": (32, 64, 128, 256), "latent_dim": 128, "recon": "mse"}, 64),
    "ResNet AE 256x256": ("resnet_ae", {"widths": (64, 128), "latent_channels": 16, "res_blocks": 4}, 4),
}


def make_trainer(name: str, config: dict, batch: int, precision: str) -> tuple[Trainer, object]:
    seed_everything(0)
    model = registry.build(name, config)
    shape = (3, 64, 64) if name == "vae" else (3, 256, 256)
    data = TensorItems(torch.rand(batch * 2, *shape))
    cfg = TrainConfig(steps=10**9, batch_size=batch, precision=precision, progress=False, device="cpu")
    trainer = Trainer(model, data, cfg)
    return trainer, next(iter(trainer.loader()))


def images_per_s(trainer: Trainer, batch, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    return steps * trainer.model.batch_size_of(batch) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round and precision")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_native_bf16()}")
    results = {}
    for label, (name, config, batch) in CASES.items():
        runs = {prec: make_trainer(name, config, batch, prec) for prec in ("fp32", "bf16")}
        for trainer, b in runs.values():  # warm-up (oneDNN kernel selection)
            images_per_s(trainer, b, 2)
        rates = {prec: [] for prec in runs}
        for _ in range(args.rounds):
            for prec, (trainer, b) in runs.items():
                rates[prec].append(images_per_s(trainer, b, args.steps))
        fp32, fast = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
        results[label] = {"batch": batch, "fp32_nchw_img_s": fp32, "bf16_channels_last_img_s": fast, "speedup": fast / fp32}
        print(f"{label:20s} batch {batch:3d}: fp32 NCHW {fp32:8.1f} img/s | bf16 + channels_last {fast:8.1f} img/s | {fast / fp32:4.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
