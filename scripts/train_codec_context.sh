#!/usr/bin/env bash
# A channel context (compress/models/channel_context.py, --model mean_scale_cc) on the shipped
# mean-scale codec: its transforms, hyperprior and entropy models kept (--train-only
# context), only the context networks trained, on the rate alone, at a random quality per image.
# Random 256×256 crops of BSDS500, batch 16, Adam 1e-3 constant for half the steps then linear
# decay to 0; g_a runs once per step without gradients, g_s not at all. Export against the base,
# so only the context ships:
#   compress export RUN -o OUT --base mean_scale
# The shipped context (compress/weights/mean_scale_cc): this script with --steps 2500 (27 min), then
# resumed with --resume --steps 6000 (a warm restart: 1e-3 to 3,000, then linearly to 0; 30 min).
# Its Kodak results are in the README (Measured results, The codec).
# Resumable: run it again with --resume to continue a killed run.
#   ENSO_DATA=../shared/data scripts/train_codec_context.sh RUN_DIR [--resume] [more compress train flags]
set -euo pipefail
run="${1:?usage: train_codec_context.sh RUN_DIR [--resume] [flags]}"; shift
data="${ENSO_DATA:?set ENSO_DATA to the folder holding train_photos/}/train_photos/bsds500"
compress train --model mean_scale_cc --init mean_scale --train-only context \
  --data "$data/train" --data "$data/test" --data "$data/val" \
  --run "$run" --crop 256 --batch-size 16 --steps 1000 --lr 1e-3 --lr-schedule linear --decay-start 0.5 \
  --ckpt-every 100 --threads 2 --no-progress "$@"
