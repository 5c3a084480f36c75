#!/usr/bin/env bash
# The default codec (mean_scale_cc) fine-tuned on content beyond clean photos (issue 23): every part
# trained (transforms, hyperprior, entropy models, channel context; --train-only all) from the shipped
# weights, on random 128×128 crops of BSDS500 (all 500 photos, as the shipped codec), of which 35 % are
# degraded (noise, grain, blur, JPEG, dithering, posterisation, exposure) and 15 % replaced by
# synthetic content (flat colours, gradients, text, lines): shared/data/degradations.py. Batch 16,
# Adam 5e-5 constant for 30 % of the steps, then linearly to 0. One thread.
# The measured run (docs/results.md, "Fine-tuning on degraded and synthetic crops"): this script as it
# stands, 1,600 steps; not shipped (Kodak lost 1.5 points of BD-rate against JPEG, more than 1 allowed).
# Resumable: run it again with --resume (and the same flags) to continue a killed run.
#   ENSO_DATA=../shared/data scripts/train_codec_content.sh RUN_DIR [--resume] [more compress train flags]
set -euo pipefail
run="${1:?usage: train_codec_content.sh RUN_DIR [--resume] [flags]}"; shift
data="${ENSO_DATA:?set ENSO_DATA to the folder holding train_photos/}/train_photos/bsds500"
compress train --model mean_scale_cc --init mean_scale_cc --train-only all --degrade 0.35 --synthetic 0.15 \
  --data "$data/train" --data "$data/test" --data "$data/val" \
  --run "$run" --crop 128 --batch-size 16 --steps 1600 --lr 5e-5 --lr-schedule linear --decay-start 0.3 \
  --ckpt-every 100 --log-every 50 --threads 1 --no-progress "$@"
