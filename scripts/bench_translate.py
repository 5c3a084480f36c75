#!/usr/bin/env python
"""CycleGAN speed: training iterations/s against the anchor's fp32 NCHW, and inference per generator.

Training (batch 1, 256×256, one full CycleGAN iteration: two generators, two PatchGANs, forward,
backward and both optimisers through the shared trainer's ``train_step``):

* ``anchor``: ResNet-9 generators (ngf 64), fp32 NCHW, as the anchor trains;
* ``same networks``: the same networks with bf16 autocast, in channels_last and in NCHW (the
  instance norms return NCHW, so channels_last pays two layout copies per norm layer; CycleGAN
  therefore trains in bf16 NCHW);
* ``shipped recipe``: the mobile generator (ngf 32, resize + conv) with the fast path, at 256² and
  at the 128² crops the shipped weights were trained on;
* ``CUT`` and ``FastCUT`` with the same generator and crops: one generator and one PatchGAN per
  direction, both directions, MLP heads; their ratio to the CycleGAN iteration beside it is what
  equal training time means in ``scripts/pilot_translate.sh`` (steps per candidate).

The cases alternate in rounds so background load hits all alike; the median round counts. Each
case's multiply–accumulates per iteration (forward and backward, counted by torch's FlopCounterMode)
give its achieved GMAC/s, beside this machine's ceiling: a large fp32 and bf16 matrix product's
GMAC/s on the same threads. Anchor MACs over the bf16 ceiling bound what any bf16 implementation
of the same networks can reach.
Inference: ms per 256×256 and per 1024×768 image (fp32, ``translate.apply.apply_generator``, one
image at a time) and GMACs at 256², for each generator option.

    python scripts/bench_translate.py [--rounds 3] [--steps 2] [--threads 2] [--no-inference] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from shared import registry
from shared.data import TensorItems
from shared.throughput import count_gmacs, matmul_gmacs
from shared.trainer import TrainConfig, Trainer, seed_everything
from translate.apply import apply_generator
from translate.models.generators import build_generator, gmacs

ANCHOR = {"generator": "resnet", "ngf": 64, "n_blocks": 9}
SHIPPED = {"generator": "mobile", "ngf": 32, "n_blocks": 9, "upsample": "resize_conv"}
TRAIN_CASES = {  # label → (model, model config, precision, crop, channels_last)
    "anchor: ResNet-9, fp32 NCHW": ("cyclegan", ANCHOR, "fp32", 256, False),
    "same networks, bf16 + channels_last": ("cyclegan", ANCHOR, "bf16", 256, True),
    "same networks, bf16 NCHW (ours)": ("cyclegan", ANCHOR, "bf16", 256, False),
    "shipped recipe (mobile ngf 32), bf16": ("cyclegan", SHIPPED, "bf16", 256, False),
    "shipped recipe at its 128² crops": ("cyclegan", SHIPPED, "bf16", 128, False),
    "CUT, same generator, 128²": ("cut", SHIPPED, "bf16", 128, False),
    "FastCUT, same generator, 128²": ("fastcut", SHIPPED, "bf16", 128, False),
}
#: the CycleGAN iteration the one-sided models are compared with
RECIPE = "shipped recipe at its 128² crops"
GENERATORS = {  # label → build_generator arguments (kind, ngf, n_blocks, num_downs, upsample)
    "resnet-9 (anchor)": ("resnet", 64, 9, 8, "transposed"),
    "resnet-6": ("resnet", 64, 6, 8, "transposed"),
    "unet-256": ("unet", 64, 9, 8, "transposed"),
    "mobile ngf 64": ("mobile", 64, 9, 8, "resize_conv"),
    "mobile ngf 32 (shipped)": ("mobile", 32, 9, 8, "resize_conv"),
    "mobile ngf 16": ("mobile", 16, 9, 8, "resize_conv"),
}


def make_trainer(name: str, config: dict, precision: str, crop: int, channels_last: bool) -> tuple[Trainer, object]:
    seed_everything(0)
    model = registry.build(name, config)
    model.channels_last = channels_last  # the translators' own choice is NCHW; the benchmark shows why
    data = TensorItems(torch.rand(2, 3, crop, crop), torch.rand(2, 3, crop, crop))
    trainer = Trainer(model, data, TrainConfig(steps=10**9, batch_size=1, precision=precision, progress=False, device="cpu"))
    return trainer, next(iter(trainer.loader()))


def iterations_per_s(trainer: Trainer, batch, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    return steps / (time.perf_counter() - t0)


def inference_ms(net: torch.nn.Module, h: int, w: int, repeats: int) -> float:
    img = torch.rand(3, h, w)
    apply_generator(net, img)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        apply_generator(net, img)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="timed iterations per round and case")
    p.add_argument("--repeats", type=int, default=3, help="timed inferences per image size")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--no-inference", action="store_true", help="time training only")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    runs = {label: make_trainer(*case) for label, case in TRAIN_CASES.items()}
    macs = {label: 1e9 * count_gmacs(trainer.train_step, batch) for label, (trainer, batch) in runs.items()}  # one step each: also the warm-up
    ceiling = {"fp32": matmul_gmacs(torch.float32), "bf16": matmul_gmacs(torch.bfloat16)}
    rates: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(args.rounds):
        for label, (trainer, batch) in runs.items():
            rates[label].append(iterations_per_s(trainer, batch, args.steps))
    base = statistics.median(rates[next(iter(TRAIN_CASES))])
    results: dict = {"threads": args.threads, "training": {}, "inference": {}, "matmul_gmac_s": ceiling}
    print("\ntraining, batch 1 (one iteration = both directions' generators and discriminators, forward + backward)")
    for label, r in rates.items():
        it = statistics.median(r)
        gmac_s = macs[label] * it / 1e9
        results["training"][label] = {"it_s": it, "s_per_it": 1 / it, "speedup": it / base, "gmacs_per_it": macs[label] / 1e9, "gmac_s": gmac_s}
        print(f"  {label:44s} {it:7.3f} it/s  {1 / it:6.2f} s/it  {it / base:5.2f}x  {macs[label] / 1e9:6.0f} GMACs/it  {gmac_s:5.0f} GMAC/s")
    anchor = next(iter(TRAIN_CASES))
    bound = base * macs[anchor] / 1e9 / ceiling["bf16"]  # anchor's s/it ÷ (its MACs at the bf16 ceiling)
    results["same_network_bound"] = 1 / bound
    print(f"\nceiling: {args.threads}-thread 2048³ matmul {ceiling['fp32']:.0f} GMAC/s fp32, {ceiling['bf16']:.0f} GMAC/s bf16;")
    print(f"the anchor's {macs[anchor] / 1e9:.0f} GMACs per iteration at the bf16 ceiling would be {1 / bound:.2f}x the anchor")
    recipe = results["training"][RECIPE]["s_per_it"]
    one_sided = [label for label, case in TRAIN_CASES.items() if case[0] != "cyclegan"]
    results["per_iteration_vs_cyclegan"] = {label: results["training"][label]["s_per_it"] / recipe for label in one_sided}
    for label, ratio in results["per_iteration_vs_cyclegan"].items():
        print(f"{label}: {ratio:.2f}x the time of a CycleGAN iteration ({RECIPE})")
    if args.no_inference:
        GENERATORS.clear()
    if GENERATORS:
        print("\ninference (fp32, one image): ms per image")
    for label, args_g in GENERATORS.items():
        torch.manual_seed(0)
        net = build_generator(*args_g).eval()
        row = {"gmacs_256": gmacs(net, 256), "ms_256": inference_ms(net, 256, 256, args.repeats), "ms_1024x768": inference_ms(net, 768, 1024, args.repeats)}
        results["inference"][label] = row
        print(f"  {label:24s} {row['gmacs_256']:6.2f} GMACs@256  {row['ms_256']:8.1f} ms @256²  {row['ms_1024x768']:8.1f} ms @1024×768")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
