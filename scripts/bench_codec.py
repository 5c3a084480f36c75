#!/usr/bin/env python
"""Codec speed, size accuracy and memory, measured side by side with CompressAI in one run.

* speed: encode and decode of one Kodak image (768×512) on ``--threads`` threads, ours against
  ``compressai.zoo.mbt2018_mean`` (the same mean-scale hyperprior architecture) carrying *our*
  trained weights at the same rate level (the gain folded into its convolutions), so both code
  the same latents and only the implementations differ (and the CDF choice: CompressAI rounds
  each scale up to the next table entry, ours to the nearest, which saves about 2.5 % of y's bits);
* size: the file's bytes against the model's estimated bits (−Σ log2 likelihoods) plus the header;
* ceiling: the multiply–accumulates of an encode and a decode (torch's FlopCounterMode) over this
  machine's bf16 matrix-product rate on the same threads (``shared.throughput``): the
  time the transforms would take at best, so CompressAI's time over it bounds any speed-up;
* memory (``--large``): peak resident memory of encoding and decoding a 4000×3000 photo, each in a
  fresh process.

Each measurement runs twice, in fresh processes: with the allocator policy the codec applies
(``shared.allocator``: freed memory kept for reuse) and with glibc's default (``ENSO_MALLOC=default``).
CompressAI runs in the same processes, so it is timed under both policies too: the headline ratio
is each library as it ships (ours with its policy, CompressAI with glibc's default), and the
same-allocator ratios show how much of it the allocator explains.

    ENSO_DATA=../shared/data python scripts/bench_codec.py [--model mean_scale] [--rounds 5] [--large] [--json out.json]
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
from pathlib import Path

import torch


def compressai_twin(codec, level: int):
    """compressai's MeanScaleHyperprior with our weights, the level's gains folded into g_a / g_s."""
    from compressai.zoo import mbt2018_mean

    ours = codec.model
    ref = mbt2018_mean(quality=1, pretrained=False)
    if (ref.N, ref.M) != (ours.config.N, ours.config.M):
        from compressai.models import MeanScaleHyperprior

        ref = MeanScaleHyperprior(ours.config.N, ours.config.M)
    state = {k: v.clone() for k, v in ours.state_dict().items() if not k.startswith(("log_gain", "log_inv_gain", "lambdas"))}
    gain = ours.log_gain[level].detach().exp()
    inv = ours.log_inv_gain[level].detach().exp()
    last_a, first_s = "g_a.6", "g_s.0"
    state[f"{last_a}.weight"] *= gain[:, None, None, None]
    state[f"{last_a}.bias"] *= gain
    state[f"{first_s}.weight"] *= inv[:, None, None, None]  # ConvTranspose2d weight: (in, out, k, k)
    ref.load_state_dict(state)
    ref.update(force=True)
    return ref.eval()


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, 1e3 * (time.perf_counter() - t0)


def speed(args) -> dict:
    """Every measurement of one process (under whichever allocator policy it runs); no printing."""
    from compress.codec import Codec
    from compress.container import parse
    from shared.allocator import reuse_freed_memory
    from shared.data.images import load_image
    from shared.metrics.image import psnr
    from shared.throughput import count_gmacs, matmul_gmacs

    torch.set_num_threads(args.threads)
    codec = Codec.load(args.model)
    L = codec.model.log_gain.shape[0]
    q = args.level / (L - 1)
    ref = compressai_twin(codec, args.level)
    img = load_image(args.image)
    H, W = img.shape[1:]
    rows = {"ours_encode": [], "ours_decode": [], "compressai_encode": [], "compressai_decode": []}
    with torch.no_grad():
        for r in range(args.rounds + 1):
            data, te = timed(codec.encode, img, q)
            out, td = timed(codec.decode, data)
            enc, tre = timed(ref.compress, img[None])
            rec, trd = timed(ref.decompress, enc["strings"], enc["shape"])
            if r:  # round 0 warms up
                for k, ms in zip(rows, (te, td, tre, trd)):
                    rows[k].append(ms)
        ref_bits = sum(len(s[0]) for s in enc["strings"]) * 8
        est = codec.model(torch.nn.functional.pad(img[None], (0, -W % 64, 0, -H % 64), mode="replicate"), torch.tensor([q]))
        est_bits = float(sum((-torch.log2(l)).sum() for l in est["likelihoods"].values()))
        macs = {"encode": count_gmacs(codec.encode, img, q), "decode": count_gmacs(codec.decode, data)}
    ceiling = matmul_gmacs(torch.bfloat16)
    med = {k: statistics.median(v) for k, v in rows.items()}
    header = len(data) - sum(len(s) for s in parse(data)[1])
    result = {
        "image": str(args.image), "threads": args.threads, "level": args.level, "width": W, "height": H,
        "ours_bpp": len(data) * 8 / (H * W), "compressai_bpp": ref_bits / (H * W),
        "ours_psnr": float(psnr(out[None], img[None])),
        "compressai_psnr": float(psnr(rec["x_hat"].clamp(0, 1)[:, :, :H, :W].mul(255).round().div(255), img[None])),
        **{f"{k}_ms": v for k, v in med.items()},
        "file_bytes": len(data), "estimated_bytes_plus_header": est_bits / 8 + header,
    }
    for step in ("encode", "decode"):
        result[f"{step}_gmacs"] = macs[step]
        result[f"{step}_ms_at_ceiling"] = 1e3 * macs[step] / ceiling
    result["bf16_matmul_gmac_s"] = ceiling
    result["size_error_percent"] = 100 * (result["file_bytes"] / result["estimated_bytes_plus_header"] - 1)
    result["allocator_kept"] = reuse_freed_memory()  # in force since Codec.load unless ENSO_MALLOC=default
    return result


POLICIES = ("kept", "default")


def policy_env(policy: str) -> dict:
    """This process's environment with the codec's allocator policy on ("kept") or off ("default")."""
    env = {k: v for k, v in os.environ.items() if k != "ENSO_MALLOC"}
    if policy == "default":
        env["ENSO_MALLOC"] = "default"
    return env


def speed_child(args, policy: str) -> dict:
    """:func:`speed` in a fresh process under ``policy``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speed.json"
        cmd = [sys.executable, __file__, "--child", "--json", str(out), "--model", args.model, "--image", args.image,
               "--level", str(args.level), "--rounds", str(args.rounds), "--threads", str(args.threads)]
        subprocess.run(cmd, check=True, env=policy_env(policy))
        result = json.loads(out.read_text())
    assert result["allocator_kept"] == (policy == "kept"), result["allocator_kept"]
    return result


def report(runs: dict, args) -> dict:
    """Print the comparison of the two policies' runs and return it as one flat dict."""
    kept, default = runs["kept"], runs["default"]
    W, H = kept["width"], kept["height"]
    print(f"{W}×{H}, {args.threads} threads, level {args.level}: ours {kept['ours_bpp']:.3f} bpp {kept['ours_psnr']:.2f} dB, "
          f"compressai {kept['compressai_bpp']:.3f} bpp {kept['compressai_psnr']:.2f} dB")
    result = {f"{policy}_{k}": v for policy, run in runs.items() for k, v in run.items() if k.endswith("_ms")}
    for step in ("encode", "decode"):
        ours, ref = kept[f"ours_{step}_ms"], default[f"compressai_{step}_ms"]
        result[f"{step}_speedup"] = ref / ours
        for policy, run in runs.items():
            result[f"{step}_speedup_same_allocator_{policy}"] = run[f"compressai_{step}_ms"] / run[f"ours_{step}_ms"]
        print(f"{step}: ours {ours:.0f} ms, compressai {ref:.0f} ms → {ref / ours:.2f}x   (same allocator: freed memory kept "
              f"{kept[f'ours_{step}_ms']:.0f} vs {kept[f'compressai_{step}_ms']:.0f} ms → {result[f'{step}_speedup_same_allocator_kept']:.2f}x; "
              f"glibc default {default[f'ours_{step}_ms']:.0f} vs {default[f'compressai_{step}_ms']:.0f} ms → "
              f"{result[f'{step}_speedup_same_allocator_default']:.2f}x)")
    ceiling = kept["bf16_matmul_gmac_s"]
    print(f"ceiling: bf16 2048³ matmul {ceiling:.0f} GMAC/s; encode {kept['encode_gmacs']:.1f} GMACs → "
          f"{kept['encode_ms_at_ceiling']:.0f} ms at best, decode {kept['decode_gmacs']:.1f} GMACs → {kept['decode_ms_at_ceiling']:.0f} ms")
    print(f"file {kept['file_bytes']} bytes vs estimate + header {kept['estimated_bytes_plus_header']:.0f} bytes: "
          f"{kept['size_error_percent']:+.2f} %")
    shared_keys = ("image", "threads", "level", "ours_bpp", "ours_psnr", "compressai_bpp", "compressai_psnr", "file_bytes",
                   "estimated_bytes_plus_header", "size_error_percent", "encode_gmacs", "decode_gmacs",
                   "encode_ms_at_ceiling", "decode_ms_at_ceiling", "bf16_matmul_gmac_s")
    return {**{k: kept[k] for k in shared_keys}, **result}


def peak_rss_child(args, step: str, policy: str) -> float:
    code = f"""
import resource, sys, torch
torch.set_num_threads({args.threads})
from compress.codec import Codec
from shared.data.images import load_image
codec = Codec.load({args.model!r})
if {step!r} == "encode":
    img = load_image({args.image!r})
    img = torch.nn.functional.interpolate(img[None], size=(3000, 4000), mode="bicubic")[0].clamp(0, 1)
    open(sys.argv[1], "wb").write(codec.encode(img, 0.5))
else:
    codec.decode(open(sys.argv[1], "rb").read())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""
    out = subprocess.run([sys.executable, "-c", code, args.tmp], capture_output=True, text=True, check=True, env=policy_env(policy))
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mean_scale")
    data = Path(os.environ.get("ENSO_DATA", "")) / "kodak" / "kodim23.png"
    p.add_argument("--image", default=str(data))
    p.add_argument("--level", type=int, default=2, help="trained rate level for the comparison")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--large", action="store_true", help="also measure peak memory on a 4000×3000 image")
    p.add_argument("--tmp", default="/tmp/enso_bench_large.enso")
    p.add_argument("--json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one process's measurements, to --json
    args = p.parse_args()
    if args.child:
        Path(args.json).write_text(json.dumps(speed(args)))
        return
    from shared.allocator import user_tunes_malloc

    if user_tunes_malloc():
        sys.exit("error: unset ENSO_MALLOC, GLIBC_TUNABLES, MALLOC_*_ and LD_PRELOAD's malloc to compare the allocator policies")
    result = report({policy: speed_child(args, policy) for policy in POLICIES}, args)
    if args.large:
        for policy in POLICIES:
            for step in ("encode", "decode"):
                result[f"large_{step}_peak_gib_{policy}"] = peak_rss_child(args, step, policy)
            print(f"4000×3000, {'freed memory kept' if policy == 'kept' else 'glibc default'}: peak RSS encode "
                  f"{result[f'large_encode_peak_gib_{policy}']:.2f} GiB, decode {result[f'large_decode_peak_gib_{policy}']:.2f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
