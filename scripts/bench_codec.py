#!/usr/bin/env python
"""Codec speed, size accuracy and memory, measured side by side with CompressAI in one run.

* speed: encode and decode of one Kodak image (768×512) on ``--threads`` threads, ours against
  ``compressai.zoo.mbt2018_mean`` (the same mean-scale hyperprior architecture) carrying *our*
  trained weights at the same rate level (the gain folded into its convolutions), so both code
  the same latents and only the implementations differ (and the CDF choice: CompressAI rounds
  each scale up to the next table entry, ours to the nearest, which saves about 2.5 % of y's bits);
  with ``--model mean_scale_cc`` ours also runs its channel context, which the twin lacks (CompressAI's
  zoo has no model with one): ours does more work and writes smaller files;
* size: the file's bytes against the model's estimated bits (−Σ log2 likelihoods) plus the header;
* ceiling: the multiply–accumulates of an encode and a decode (torch's FlopCounterMode) over this
  machine's bf16 matrix-product rate on the same threads (``shared.throughput``): the
  time the transforms would take at best;
* steps: each step of our encode and decode timed on its own (analysis, hyper-analysis and z's
  coding, z's decoding, integer hyper-synthesis, y's rANS coding and decoding, synthesis), and
  g_a's MACs per second;
* memory (``--large``): peak resident memory of encoding and decoding a 4000×3000 photo, each in a
  fresh process.

Speed runs in fresh processes under each allocator policy, the order alternating: the one the
codec applies (``shared.allocator``: freed memory kept for reuse) and glibc's default
(``ENSO_MALLOC=default``). CompressAI runs in the same processes, so it is timed under both
policies too: the headline ratio is each library as it ships (ours with its policy, CompressAI
with glibc's default), and the same-allocator ratios show how much of it the allocator explains.
Memory (``--large``) is measured under both policies.

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

from shared.allocator import policy_env, reuse_freed_memory, user_tunes_malloc


def compressai_twin(codec, level: int):
    """compressai's MeanScaleHyperprior with our weights, the level's gains folded into g_a / g_s."""
    from compressai.zoo import mbt2018_mean

    ours = codec.model
    ref = mbt2018_mean(quality=1, pretrained=False)
    if (ref.N, ref.M) != (ours.config.N, ours.config.M):
        from compressai.models import MeanScaleHyperprior

        ref = MeanScaleHyperprior(ours.config.N, ours.config.M)
    # (a context model, mean_scale_cc, keeps its context: the twin codes with the hyperprior alone, less work than ours)
    state = {k: v.clone() for k, v in ours.state_dict().items() if not k.startswith(("log_gain", "log_inv_gain", "lambdas", "context."))}
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


def prepare(args):
    """(codec, quality, image) as every measurement here uses them, on ``args.threads`` threads."""
    from compress.codec import Codec
    from shared.data.images import load_image

    torch.set_num_threads(args.threads)
    codec = Codec.load(args.model)
    return codec, args.level / (codec.model.log_gain.shape[0] - 1), load_image(args.image)


def speed(args) -> dict:
    """The timed rounds of one process (under whichever allocator policy it runs), with what it
    wrote and decoded; no printing."""
    from shared.metrics.image import psnr

    codec, q, img = prepare(args)
    ref = compressai_twin(codec, args.level)
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
    return {
        "width": W, "height": H, "rounds_ms": rows, "file_bytes": len(data),
        "ours_bpp": len(data) * 8 / (H * W), "compressai_bpp": sum(len(s[0]) for s in enc["strings"]) * 8 / (H * W),
        "ours_psnr": float(psnr(out[None], img[None])),
        "compressai_psnr": float(psnr(rec["x_hat"].clamp(0, 1)[:, :, :H, :W].mul(255).round().div(255), img[None])),
        "allocator_kept": reuse_freed_memory(),  # in force since main() unless ENSO_MALLOC=default
    }


def accounting(args) -> dict:
    """Measured once, in this process: the file's size against the model's estimate, the MACs of an
    encode and a decode, and the bf16 ceiling they imply."""
    from compress.container import parse
    from shared.throughput import count_gmacs, matmul_gmacs

    codec, q, img = prepare(args)
    H, W = img.shape[1:]
    with torch.no_grad():
        data = codec.encode(img, q)
        est = codec.model(torch.nn.functional.pad(img[None], (0, -W % 64, 0, -H % 64), mode="replicate"), torch.tensor([q]))
        est_bits = float(sum((-torch.log2(l)).sum() for l in est["likelihoods"].values()))
        macs = {"encode": count_gmacs(codec.encode, img, q), "decode": count_gmacs(codec.decode, data)}
    ceiling = matmul_gmacs(torch.bfloat16)
    header = len(data) - sum(len(s) for s in parse(data)[1])
    result = {"image": str(args.image), "threads": args.threads, "level": args.level, "file_bytes": len(data),
              "estimated_bytes_plus_header": est_bits / 8 + header, "bf16_matmul_gmac_s": ceiling}
    result["size_error_percent"] = 100 * (len(data) / result["estimated_bytes_plus_header"] - 1)
    for step in ("encode", "decode"):
        result[f"{step}_gmacs"] = macs[step]
        result[f"{step}_ms_at_ceiling"] = 1e3 * macs[step] / ceiling
    return result


def stages(args) -> dict:
    """Medians over ``args.rounds`` of each step of our encode and decode, run one by one as
    :meth:`Codec.encode` / :meth:`Codec.decode` and the hyperprior's ``compress_latent`` /
    ``decompress_latent`` chain them: where the time goes, and which steps use one core only."""
    from compress.container import quality_code
    from compress.models.entropy_coding import decode_bottleneck, decode_gaussian, encode_bottleneck, encode_gaussian
    from shared.throughput import count_gmacs

    codec, q, img = prepare(args)
    m = codec.model
    if not hasattr(m, "coding_parameters"):
        return {}
    gain, inv_gain = codec._gains(quality_code(q))
    steps = {
        "encode: analysis g_a": lambda: codec.analyse(img),
        "encode: h_a and z coded": lambda: encode_bottleneck(m.entropy_bottleneck, codec._net(m.h_a, y)),
        "decode: z decoded": lambda: decode_bottleneck(m.entropy_bottleneck, z_string, z_size),
        "encode/decode: integer h_s and CDF indexes": lambda: m.coding_parameters(z_hat),
        "encode: y rANS-coded (one core)": lambda: encode_gaussian(m.gaussian_conditional, y, indexes, means),
        "decode: y rANS-decoded (one core)": lambda: decode_gaussian(m.gaussian_conditional, y_string, indexes, means),
        "decode: synthesis g_s": lambda: codec._net(codec.synthesis, y_hat * inv_gain),
    }
    if hasattr(m, "context"):  # the channel context: all of y's latent coding, hyperprior included, as the codec runs it
        steps["encode: z, h_s, context and y coded"] = lambda: m.compress_latent(y, run=codec._net)
        steps["decode: z, h_s, context and y decoded"] = lambda: m.decompress_latent(latent_strings, y.shape[-2:])
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        y = codec.analyse(img) * gain
        z = codec._net(m.h_a, y)
        z_size = z.shape[-2:]
        z_string, z_hat = encode_bottleneck(m.entropy_bottleneck, z)
        indexes, means = m.coding_parameters(z_hat)
        y_string = encode_gaussian(m.gaussian_conditional, y, indexes, means)
        y_hat = decode_gaussian(m.gaussian_conditional, y_string, indexes, means).float()
        latent_strings = m.compress_latent(y, run=codec._net) if hasattr(m, "context") else None
        times = {name: [] for name in steps}
        for r in range(args.rounds + 1):
            for name, step in steps.items():
                _, ms = timed(step)
                if r:
                    times[name].append(ms)
        analysis_gmacs = count_gmacs(codec.analyse, img)
    return {"analysis_gmacs": analysis_gmacs, **{f"stage_ms: {name}": statistics.median(t) for name, t in times.items()}}


POLICIES = ("kept", "default")
LABELS = {"kept": "freed memory kept", "default": "glibc default"}


def speed_children(args) -> dict[str, list[dict]]:
    """:func:`speed` in ``args.processes`` fresh processes per allocator policy, the order
    alternating (kept, default, default, kept, ...), so drift in the machine's load hits both."""
    runs: dict[str, list[dict]] = {policy: [] for policy in POLICIES}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.processes):
            for policy in (POLICIES if i % 2 == 0 else POLICIES[::-1]):
                out = Path(tmp) / f"{policy}{i}.json"
                cmd = [sys.executable, __file__, "--child", "--json", str(out), "--model", args.model, "--image", args.image,
                       "--level", str(args.level), "--rounds", str(args.rounds), "--threads", str(args.threads)]
                subprocess.run(cmd, check=True, env=policy_env(policy))
                result = json.loads(out.read_text())
                if result["allocator_kept"] != (policy == "kept"):
                    sys.exit(f"error: the {policy!r} process did not run under that allocator policy (not glibc?)")
                runs[policy].append(result)
    return runs


def report(runs: dict[str, list[dict]], acc: dict, args) -> dict:
    """Print the comparison (medians over every timed round of a policy's processes) and the
    accounting; return both as one flat dict."""
    first = runs["kept"][0]
    if any(r["file_bytes"] != acc["file_bytes"] or r["ours_psnr"] != first["ours_psnr"] for rs in runs.values() for r in rs):
        sys.exit("error: the processes wrote files of different sizes or decoded different images: encoding is not deterministic")
    ms = {f"{policy}_{k}": statistics.median(t for r in rs for t in r["rounds_ms"][k]) for policy, rs in runs.items() for k in first["rounds_ms"]}
    print(f"{first['width']}×{first['height']}, {args.threads} threads, level {args.level}: ours {first['ours_bpp']:.3f} bpp "
          f"{first['ours_psnr']:.2f} dB, compressai {first['compressai_bpp']:.3f} bpp {first['compressai_psnr']:.2f} dB "
          f"({args.processes} processes per allocator policy, {args.rounds} timed rounds each)")
    result = {f"{k}_ms": v for k, v in ms.items()}
    for step in ("encode", "decode"):
        ours, ref = ms[f"kept_ours_{step}"], ms[f"default_compressai_{step}"]
        result[f"{step}_speedup_as_shipped"] = ref / ours
        same = {policy: ms[f"{policy}_compressai_{step}"] / ms[f"{policy}_ours_{step}"] for policy in POLICIES}
        result.update({f"{step}_speedup_same_allocator_{policy}": v for policy, v in same.items()})
        # the same ratio per pair of processes run back to back (kept i, default i): how much the machine's drift moves it
        pairs = [statistics.median(d["rounds_ms"][f"compressai_{step}"]) / statistics.median(k["rounds_ms"][f"ours_{step}"])
                 for k, d in zip(runs["kept"], runs["default"])]
        result[f"{step}_speedup_as_shipped_per_pair"] = pairs
        print(f"{step}: ours ({LABELS['kept']}) {ours:.0f} ms, compressai ({LABELS['default']}) {ref:.0f} ms → {ref / ours:.2f}x "
              f"({min(pairs):.2f}–{max(pairs):.2f}x over the {len(pairs)} pairs of processes); "
              + "; ".join(f"both {LABELS[policy]}: {ms[f'{policy}_ours_{step}']:.0f} vs {ms[f'{policy}_compressai_{step}']:.0f} ms → "
                          f"{same[policy]:.2f}x" for policy in POLICIES))
    print(f"ceiling: bf16 2048³ matmul {acc['bf16_matmul_gmac_s']:.0f} GMAC/s; encode {acc['encode_gmacs']:.1f} GMACs → "
          f"{acc['encode_ms_at_ceiling']:.0f} ms at best, decode {acc['decode_gmacs']:.1f} GMACs → {acc['decode_ms_at_ceiling']:.0f} ms")
    print(f"file {acc['file_bytes']} bytes vs estimate + header {acc['estimated_bytes_plus_header']:.0f} bytes: "
          f"{acc['size_error_percent']:+.2f} %")
    if "analysis_gmacs" in acc:
        ga = acc["stage_ms: encode: analysis g_a"]
        print("steps, one at a time (medians): " + "; ".join(f"{k.split(': ', 1)[1]} {v:.1f} ms" for k, v in acc.items() if k.startswith("stage_ms")))
        print(f"g_a: {acc['analysis_gmacs']:.1f} GMACs in {ga:.1f} ms = {acc['analysis_gmacs'] / ga * 1e3:.0f} GMAC/s "
              f"(ceiling {acc['bf16_matmul_gmac_s']:.0f})")
    return {**{k: v for k, v in first.items() if k not in ("rounds_ms", "allocator_kept")}, **acc, **result}


def peak_rss_child(args, step: str, policy: str, path: Path) -> float:
    """Peak resident memory (GiB) of a fresh process under ``policy`` that encodes a 4000×3000
    upscale of the image to ``path`` or decodes ``path``."""
    code = f"""
import resource, sys, torch
from shared.allocator import reuse_freed_memory
reuse_freed_memory()  # as the compress command does
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
print(reuse_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, env=policy_env(policy))
    kept, gib = out.stdout.split()[-2:]
    if kept != str(policy == "kept"):
        sys.exit(f"error: the {policy!r} process did not run under that allocator policy (not glibc?)")
    return float(gib)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mean_scale")
    data = Path(os.environ.get("ENSO_DATA", "")) / "kodak" / "kodim23.png"
    p.add_argument("--image", default=str(data))
    p.add_argument("--level", type=int, default=2, help="trained rate level for the comparison")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per process (after one warm-up)")
    p.add_argument("--processes", type=int, default=2, help="fresh processes per allocator policy")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--large", action="store_true", help="also measure peak memory on a 4000×3000 image")
    p.add_argument("--json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one process's measurements, to --json
    args = p.parse_args()
    reuse_freed_memory()  # as the compress command does (shared.allocator); ENSO_MALLOC=default opts out
    if args.child:
        Path(args.json).write_text(json.dumps(speed(args)))
        return
    if not Path(args.image).is_file():
        sys.exit(f"error: image {args.image} does not exist; set ENSO_DATA to the folder holding kodak/ or give --image")
    if user_tunes_malloc():
        sys.exit("error: unset ENSO_MALLOC, GLIBC_TUNABLES, MALLOC_*_ and LD_PRELOAD's malloc to compare the allocator policies")
    runs = speed_children(args)
    result = report(runs, {**accounting(args), **stages(args)}, args)
    if args.large:
        with tempfile.TemporaryDirectory() as tmp:
            for policy in POLICIES:
                for step in ("encode", "decode"):
                    result[f"large_{step}_peak_gib_{policy}"] = peak_rss_child(args, step, policy, Path(tmp) / "large.enso")
                print(f"4000×3000, {LABELS[policy]}: peak RSS encode {result[f'large_encode_peak_gib_{policy}']:.2f} GiB, "
                      f"decode {result[f'large_decode_peak_gib_{policy}']:.2f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
