#!/usr/bin/env bash
# The perceptual decoder of the default codec (compress/weights/mean_scale_cc_perceptual):
# mean_scale_cc frozen, a second g_s trained on 150·MSE + LPIPS + 0.1·(adaptive) hinge PatchGAN
# (spectral norm, flips/translations, started at step 200) on 128² crops of BSDS500 train + val,
# batch 4, Adam 1e-4, one thread; BSDS500 test stays held out for choosing the checkpoint.
# Resumable: run it again to continue (the schedule is in the flags below; extra flags go to
# `compress train`), then export what differs from mean_scale_cc:
#   scripts/train_perceptual_decoder.sh RUN_DIR [--steps N] [compress train flags]
#   compress export RUN_DIR -o compress/weights/mean_scale_cc_perceptual --base mean_scale_cc
# The shipped weights are this schedule stopped at step 800, then a second stage from its export with
# the discriminator on frozen AlexNet features (the model card has both commands):
#   scripts/train_perceptual_decoder.sh RUN2 --init RUN_DIR/export --disc-features alexnet \
#     --no-disc-spectral-norm --disc-lr-ratio 4 --gan-weight 0.5 --disc-start 0 --steps 3000
set -euo pipefail
run="${1:?usage: train_perceptual_decoder.sh RUN_DIR [compress train flags]}"; shift
photos="${ENSO_DATA:-./data}/train_photos/bsds500"
resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
compress train --data "$photos/train" --data "$photos/val" --run "$run" "${resume[@]}" \
  --model mean_scale_cc_perceptual --init mean_scale_cc --crop 128 --batch-size 4 --lr 1e-4 --lr-schedule constant \
  --pixel-weight 150 --lpips-weight 1 --gan-weight 0.1 --disc-start 200 \
  --steps 20000 --ckpt-every 100 --log-every 25 --threads 1 --no-progress "$@"
