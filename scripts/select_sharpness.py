#!/usr/bin/env python
"""Compare sharp-VAE training runs on a folder that is not the use's test set, to choose a recipe.

``ae eval sharpness`` measures the three variants of one ``--run`` on BSDS500 test crops, which is
the test set: it is measured once, for what ships. This script scores any number of single-variant
run folders (``RUN/runs/VARIANT``, each with its ``export/``) on fixed crops of another folder
(default ``$ENSO_DATA/kodak``), with the same crops, functions and batches as the use's evaluation
(:func:`shared.uses.sharpness.reconstruction_numbers`), and prints one row per run with its FID
ratio against the first run given (put the ``mse`` run first).

    python scripts/select_sharpness.py RUN_A/runs/mse RUN_A/runs/lpips_gan RUN_B/runs/lpips_gan \
        [--data $ENSO_DATA/kodak] [--crops 2048] [--seed 1] [--threads 1] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from shared.errors import UserError, run_cli
from shared.metrics import distribution
from shared.paths import data_dir
from shared.uses import get_use
from shared.uses.base import load_run
from shared.uses.sharpness import eval_crops, reconstruction_numbers


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="single-variant run folders (RUN/runs/VARIANT); the first is the FID baseline")
    p.add_argument("--data", type=Path, default=None, help="folder of photos to crop (default: $ENSO_DATA/kodak)")
    p.add_argument("--crops", type=int, default=2048, help="fixed crops scored (FID: compare only equal counts)")
    p.add_argument("--seed", type=int, default=1, help="crop seed (the use's eval_seed)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.json is not None and args.json.exists():
        raise UserError(f"{args.json} exists; give another --json path (nothing is overwritten)")
    torch.set_num_threads(args.threads)
    models = [load_run(run) for run in args.runs]  # every folder checked before the long part
    folder = data_dir("kodak", args.data, "--data")
    crop = models[0].config.input_shape[-1]
    # only the crops are taken from this config, so no variant's training limits apply to it
    cfg = get_use("sharpness").config(test_data=str(folder), crop=crop, eval_crops=args.crops, eval_seed=args.seed, variants=("mse",))
    x = eval_crops(cfg)
    real = distribution.inception_features(x.split(cfg.eval_batch))
    rows = []
    print(f"{len(x)} fixed {crop}x{crop} crops of {folder} (seed {args.seed})")
    print(f"{'run':<48} {'PSNR':>6} {'LPIPS':>7} {'FID':>8} {'ratio':>6} {'KIDx100':>8} {'HF dB':>7} {'KL':>7}")
    for run, model in zip(args.runs, models):
        n = reconstruction_numbers(model, x, real, cfg.eval_batch)
        n["fid_ratio"] = n["fid"] / rows[0]["fid"] if rows else 1.0
        rows.append({"run": str(run), **n})
        print(f"{str(run)[-48:]:<48} {n['psnr']:6.2f} {n['lpips']:7.4f} {n['fid']:8.2f} {n['fid_ratio']:6.3f} "
              f"{100 * n['kid']:8.3f} {n['hf_db']:7.2f} {n['kl']:7.1f}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"data": str(folder), "crops": len(x), "seed": args.seed, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
