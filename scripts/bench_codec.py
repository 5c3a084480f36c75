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

    ENSO_DATA=../shared/data python scripts/bench_codec.py [--model mean_scale] [--rounds 5] [--large]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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
    from compress.codec import Codec
    from compress.container import parse
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
        "image": str(args.image), "threads": args.threads, "level": args.level,
        "ours_bpp": len(data) * 8 / (H * W), "compressai_bpp": ref_bits / (H * W),
        "ours_psnr": float(psnr(out[None], img[None])),
        "compressai_psnr": float(psnr(rec["x_hat"].clamp(0, 1)[:, :, :H, :W].mul(255).round().div(255), img[None])),
        **{f"{k}_ms": v for k, v in med.items()},
        "encode_speedup": med["compressai_encode"] / med["ours_encode"],
        "decode_speedup": med["compressai_decode"] / med["ours_decode"],
        "file_bytes": len(data), "estimated_bytes_plus_header": est_bits / 8 + header,
    }
    for step in ("encode", "decode"):
        result[f"{step}_gmacs"] = macs[step]
        result[f"{step}_ms_at_ceiling"] = 1e3 * macs[step] / ceiling
        result[f"{step}_speedup_bound"] = med[f"compressai_{step}"] / result[f"{step}_ms_at_ceiling"]
    result["bf16_matmul_gmac_s"] = ceiling
    result["size_error_percent"] = 100 * (result["file_bytes"] / result["estimated_bytes_plus_header"] - 1)
    print(f"{W}×{H}, {args.threads} threads, level {args.level}: ours {result['ours_bpp']:.3f} bpp {result['ours_psnr']:.2f} dB, "
          f"compressai {result['compressai_bpp']:.3f} bpp {result['compressai_psnr']:.2f} dB")
    print(f"encode: ours {med['ours_encode']:.0f} ms, compressai {med['compressai_encode']:.0f} ms → {result['encode_speedup']:.2f}x")
    print(f"decode: ours {med['ours_decode']:.0f} ms, compressai {med['compressai_decode']:.0f} ms → {result['decode_speedup']:.2f}x")
    print(f"ceiling: bf16 2048³ matmul {ceiling:.0f} GMAC/s; encode {macs['encode']:.1f} GMACs → {result['encode_ms_at_ceiling']:.0f} ms at best "
          f"({result['encode_speedup_bound']:.1f}x compressai), decode {macs['decode']:.1f} GMACs → {result['decode_ms_at_ceiling']:.0f} ms "
          f"({result['decode_speedup_bound']:.1f}x)")
    print(f"file {len(data)} bytes vs estimate + header {result['estimated_bytes_plus_header']:.0f} bytes: {result['size_error_percent']:+.2f} %")
    return result


def peak_rss_child(args, step: str) -> float:
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
    out = subprocess.run([sys.executable, "-c", code, args.tmp], capture_output=True, text=True, check=True)
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
    args = p.parse_args()
    result = speed(args)
    if args.large:
        result["large_encode_peak_gib"] = peak_rss_child(args, "encode")
        result["large_decode_peak_gib"] = peak_rss_child(args, "decode")
        print(f"4000×3000: peak RSS encode {result['large_encode_peak_gib']:.2f} GiB, decode {result['large_decode_peak_gib']:.2f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
