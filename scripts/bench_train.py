#!/usr/bin/env python
"""Training throughput: fp32 NCHW against the fast path (bf16 autocast + channels_last), side by side.

Times the shared trainer's real ``train_step`` (forward, backward, optimiser) on random images for
a conv VAE at 64×64, a ResNet conv AE at 256×256 and the mean-scale codec at its 256×256 training
crops. The two precisions alternate in rounds so that background load hits both alike; the
median round counts.

``--allocators`` measures the trainer's allocator policy (:mod:`shared.allocator`, freed memory
kept for reuse) against glibc's default instead: each round runs the benchmark once in a child
process per policy, alternating, and the median round of each counts.

    python scripts/bench_train.py [--rounds 3] [--steps 5] [--threads 2] [--allocators] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from shared import registry
from shared.data import TensorItems
from shared.allocator import policy_env, reuse_freed_memory, user_tunes_malloc
from shared.precision import cpu_has_native_bf16
from shared.trainer import TrainConfig, Trainer, seed_everything

CASES = {
    "conv VAE 64x64": ("vae", {"input_shape": (3, 64, 64), "widths": (32, 64, 128, 256), "latent_dim": 128, "recon": "mse"}, 64),
    "ResNet AE 256x256": ("resnet_ae", {"widths": (64, 128), "latent_channels": 16, "res_blocks": 4}, 4),
    "codec 256x256": ("mean_scale", {}, 8),
}
#: warm-up steps: oneDNN's kernel selection, and the kept allocator reaching its steady state
WARMUP = 6


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


def compare_allocators(args) -> dict:
    """Each round: this benchmark once per allocator policy, each in a fresh process, the order
    alternating between rounds."""
    if user_tunes_malloc():
        sys.exit("error: unset ENSO_MALLOC, GLIBC_TUNABLES, MALLOC_*_ and LD_PRELOAD's malloc to compare the allocator policies")
    runs: dict[str, list[dict]] = {"default": [], "kept": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for policy in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
                out = os.path.join(tmp, f"{policy}{r}.json")
                cmd = [sys.executable, __file__, "--rounds", "1", "--steps", str(args.steps), "--threads", str(args.threads), "--json", out]
                subprocess.run(cmd, env=policy_env(policy), check=True, stdout=subprocess.DEVNULL)
                with open(out) as fh:
                    result = json.load(fh)
                if result["allocator_kept"] != (policy == "kept"):
                    sys.exit(f"error: the {policy!r} run did not run under that allocator policy (not glibc?)")
                runs[policy].append(result)
    results = {}
    for label in CASES:
        row = {}
        for policy, rounds in runs.items():
            for prec in ("fp32_nchw_img_s", "bf16_channels_last_img_s"):
                row[f"{policy}_{prec}"] = statistics.median(r[label][prec] for r in rounds)
        results[label] = row
        print(f"{label:20s} glibc default → kept: fp32 NCHW {row['default_fp32_nchw_img_s']:7.1f} → {row['kept_fp32_nchw_img_s']:7.1f} img/s "
              f"({row['kept_fp32_nchw_img_s'] / row['default_fp32_nchw_img_s']:4.2f}x) | bf16 + channels_last "
              f"{row['default_bf16_channels_last_img_s']:7.1f} → {row['kept_bf16_channels_last_img_s']:7.1f} img/s "
              f"({row['kept_bf16_channels_last_img_s'] / row['default_bf16_channels_last_img_s']:4.2f}x)")
    return results


def compare_precisions(args) -> dict:
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_native_bf16()}")
    results = {}
    for label, (name, config, batch) in CASES.items():
        runs = {prec: make_trainer(name, config, batch, prec) for prec in ("fp32", "bf16")}
        for trainer, b in runs.values():
            images_per_s(trainer, b, WARMUP)
        rates = {prec: [] for prec in runs}
        for _ in range(args.rounds):
            for prec, (trainer, b) in runs.items():
                rates[prec].append(images_per_s(trainer, b, args.steps))
        fp32, fast = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
        results[label] = {"batch": batch, "fp32_nchw_img_s": fp32, "bf16_channels_last_img_s": fast, "speedup": fast / fp32}
        print(f"{label:20s} batch {batch:3d}: fp32 NCHW {fp32:8.1f} img/s | bf16 + channels_last {fast:8.1f} img/s | {fast / fp32:4.2f}x")
    results["allocator_kept"] = reuse_freed_memory()  # main() applied it unless told not to
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round and precision")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--allocators", action="store_true", help="compare the allocator policies instead of the precisions")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    reuse_freed_memory()  # as ensō's commands do (shared.allocator); ENSO_MALLOC=default opts out
    results = compare_allocators(args) if args.allocators else compare_precisions(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
