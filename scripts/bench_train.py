#!/usr/bin/env python
"""Training throughput: fp32 NCHW against the fast path (bf16 autocast + channels_last), side by side.

Times the shared trainer's real ``train_step`` (forward, backward, optimiser) on random images for
the small VAE of ``ae train generation`` (8×8 digits, batch 128), a conv VAE at 64×64, a ResNet
conv AE at 256×256 and the mean-scale codec at its 256×256 training crops. The two precisions
alternate in rounds so that background load hits both alike; the median round counts.

``--under-load`` measures threads instead, the table :data:`shared.threads.SMALL_WORK_MACS` is set
from: steps/s of each case on 1 thread and on ``--threads`` (default: every core), alone and while
a second process (started and stopped here) multiplies matrices on ``--load-threads``, as on a
laptop that runs something else. Cases, thread counts and load alternate in rounds; the median
round counts. It prints each case's multiply–accumulates per step, the trainer's own choice for it
(``--threads 0``), and the ratios: N threads against 1 alone and under load, and each count under
load against alone. Where "both" (the geometric mean of the two N/1 ratios) falls below 1, one
thread is the better bet on cores that are sometimes shared; the threshold lies between the
largest such case and the smallest case above 1. Run it on an otherwise quiet machine.

``--allocators`` measures the trainer's allocator policy (:mod:`shared.allocator`, freed memory
kept for reuse) against glibc's default instead: each round runs the benchmark once in a child
process per policy, alternating, and the median round of each counts.

    python scripts/bench_train.py [--rounds 3] [--steps 5] [--threads 2] [--allocators] [--json out.json]
    python scripts/bench_train.py --under-load [--rounds 3] [--seconds 5] [--threads 2] [--load-threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
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
from shared.threads import SMALL_WORK_MACS, available_cores
from shared.trainer import TrainConfig, Trainer, seed_everything

CASES = {
    "digits VAE 8x8": ("vae", {"input_shape": (1, 8, 8), "widths": (32, 64), "latent_dim": 2, "recon": "bce"}, 128),
    "conv VAE 64x64": ("vae", {"input_shape": (3, 64, 64), "widths": (32, 64, 128, 256), "latent_dim": 128, "recon": "mse"}, 64),
    "ResNet AE 256x256": ("resnet_ae", {"widths": (64, 128), "latent_channels": 16, "res_blocks": 4}, 4),
    "codec 256x256": ("mean_scale", {}, 8),
}
#: warm-up steps: oneDNN's kernel selection, and the kept allocator reaching its steady state
WARMUP = 6


def make_trainer(name: str, config: dict, batch: int, precision: str) -> tuple[Trainer, object]:
    seed_everything(0)
    model = registry.build(name, config)
    shape = config.get("input_shape", (3, 256, 256))
    data = TensorItems(torch.rand(batch * 2, *shape))
    cfg = TrainConfig(steps=10**9, batch_size=batch, precision=precision, progress=False, device="cpu")
    trainer = Trainer(model, data, cfg)
    return trainer, next(iter(trainer.loader()))


def images_per_s(trainer: Trainer, batch, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    return steps * trainer.model.batch_size_of(batch) / (time.perf_counter() - t0)


def selected(args) -> dict:
    """The cases whose label holds one of ``--cases``' comma-separated words (all without it)."""
    return {k: v for k, v in CASES.items() if not args.cases or any(c.lower() in k.lower() for c in args.cases.split(","))}


def steps_per_s(trainer: Trainer, batch, seconds: float) -> float:
    """Steps/s over at least ``seconds`` (and 2 steps), after one untimed step."""
    trainer.train_step(batch)
    steps, t0 = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - t0 < seconds:
        trainer.train_step(batch)
        steps += 1
    return steps / (time.perf_counter() - t0)


class Load:
    """A second process multiplying matrices on ``threads`` threads while the block runs."""

    CODE = "import torch\ntorch.set_num_threads({t})\na = torch.rand(512, 512)\na @ a\nprint('ready', flush=True)\nwhile True:\n    a @ a\n"

    def __init__(self, threads: int):
        self.threads = threads

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE.format(t=self.threads)], stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            sys.exit("error: the load process did not start")
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def compare_threads(args) -> dict:
    """Steps/s per case on 1 and ``args.threads`` threads, alone and under a second process's load."""
    many = args.threads or max(2, available_cores())
    counts, loads = (1, many), ("alone", "load")
    cases = selected(args)
    print(f"torch {torch.__version__}, {available_cores()} cores, 1 against {many} threads, "
          f"load: a {args.load_threads}-thread matmul process, precision {args.precision}")
    runs, macs, auto = {}, {}, {}
    for label, (name, config, batch) in cases.items():
        trainer, b = make_trainer(name, config, batch, args.precision)
        auto[label] = trainer.choose_threads(b)  # what --threads 0 picks; changes no state
        macs[label] = trainer.step_macs or float("nan")
        for n in counts:
            torch.set_num_threads(n)
            images_per_s(trainer, b, args.warmup)
        runs[label] = (trainer, b)
    rates = {(label, load, n): [] for label in cases for load in loads for n in counts}
    for r in range(args.rounds):
        for load in (loads if r % 2 == 0 else loads[::-1]):
            with Load(args.load_threads) if load == "load" else contextlib.nullcontext():
                for i, (label, (trainer, b)) in enumerate(runs.items()):
                    for n in (counts if (r + i) % 2 == 0 else counts[::-1]):
                        torch.set_num_threads(n)
                        rates[label, load, n].append(steps_per_s(trainer, b, args.seconds))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{'case':20s} {'GMAC/step':>9s} {'auto':>4s} | steps/s: alone 1t, {many}t; load 1t, {many}t | "
          f"{many}t/1t: alone  load  both | load/alone: 1t  {many}t")
    results = {}
    for label in cases:
        a1, an, l1, ln = (med[label, load, n] for load in loads for n in counts)
        ratios = {"alone": an / a1, "load": ln / l1, "both": math.sqrt(an / a1 * ln / l1), "load_over_alone_1t": l1 / a1, "load_over_alone_nt": ln / an}
        results[label] = {"gmacs_per_step": macs[label] / 1e9, "auto_threads": auto[label], "threads": many,
                          "steps_per_s": {"alone_1t": a1, "alone_nt": an, "load_1t": l1, "load_nt": ln}, "ratios": ratios}
        print(f"{label:20s} {macs[label] / 1e9:9.3g} {auto[label]:4d} | {a1:8.3g} {an:8.3g} {l1:8.3g} {ln:8.3g} | "
              f"{ratios['alone']:5.2f} {ratios['load']:5.2f} {ratios['both']:5.2f} | {ratios['load_over_alone_1t']:5.2f} {ratios['load_over_alone_nt']:5.2f}")
    one = [r["gmacs_per_step"] for r in results.values() if r["ratios"]["both"] < 1]
    more = [r["gmacs_per_step"] for r in results.values() if r["ratios"]["both"] >= 1]
    print(f"one thread wins ('both' < 1) up to {max(one, default=float('nan')):.3g} GMAC/step; {many} threads from "
          f"{min(more, default=float('nan')):.3g} GMAC/step (shared.threads.SMALL_WORK_MACS = {SMALL_WORK_MACS / 1e9:.3g} GMAC)")
    return results


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
                cmd = [sys.executable, __file__, "--rounds", "1", "--steps", str(args.steps), "--threads", str(args.threads),
                       "--warmup", str(args.warmup), "--cases", args.cases, "--json", out]
                subprocess.run(cmd, env=policy_env(policy), check=True, stdout=subprocess.DEVNULL)
                with open(out) as fh:
                    result = json.load(fh)
                if result["allocator_kept"] != (policy == "kept"):
                    sys.exit(f"error: the {policy!r} run did not run under that allocator policy (not glibc?)")
                runs[policy].append(result)
    results = {}
    for label in selected(args):
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
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_native_bf16()}")
    results = {}
    for label, (name, config, batch) in selected(args).items():
        runs = {prec: make_trainer(name, config, batch, prec) for prec in ("fp32", "bf16")}
        for trainer, b in runs.values():
            images_per_s(trainer, b, args.warmup)
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
    p.add_argument("--threads", type=int, default=0, help="threads (default: torch's count; with --under-load every core, at least 2)")
    p.add_argument("--allocators", action="store_true", help="compare the allocator policies instead of the precisions")
    p.add_argument("--under-load", action="store_true", help="compare 1 and --threads threads, alone and beside a second process, instead")
    p.add_argument("--seconds", type=float, default=5.0, help="--under-load: seconds timed per case, thread count and load, per round")
    p.add_argument("--load-threads", type=int, default=available_cores(), help="--under-load: threads of the loading process")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="--under-load: the precision trained in")
    p.add_argument("--warmup", type=int, default=WARMUP, help="untimed steps per case (and thread count) first")
    p.add_argument("--cases", default="", help="only cases whose label holds one of these comma-separated words")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    reuse_freed_memory()  # as ensō's commands do (shared.allocator); ENSO_MALLOC=default opts out
    results = compare_allocators(args) if args.allocators else compare_threads(args) if args.under_load else compare_precisions(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
