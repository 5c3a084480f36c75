#!/usr/bin/env bash
# The longer denoising recipe: a residual U-Net denoising autoencoder on grey 64x64 crops of
# BSDS500 train+test (400 photos; val/ holds BSD68 and is never used), Gaussian sigma 25, then
# BSD68 PSNR (unclipped noisy input, the standard protocol) and the figure.
#
#   ENSO_DATA=../shared/data scripts/train_denoiser.sh [RUN] [extra ae train flags...]   # RUN: the use's folder
#
# Measured: 3000 steps x 16 crops took 1354 s (22.6 min) on one CPU thread shared with other jobs
# (--precision auto = bf16 autocast on this AVX512-BF16 CPU) and gave 28.79 dB mean PSNR on BSD68 at
# sigma 25 (published: BM3D 28.57, DnCNN-S 29.23). A GPU should need a minute or two; raise
# --steps there. Continue a stopped run with the same command plus --resume (checkpoints every
# 250 steps). To stop a background run, kill the python process's id: `ae` is a pyenv shim here,
# so the id of `ae ... &` is the shim's, not the trainer's.
set -euo pipefail
RUN="${1:-runs/denoise/denoising}"
shift || true
ae train denoising --run "$RUN" --steps 3000 --batch-size 16 --crop 64 --widths 32 64 128 --blocks 1 \
    --lr 1e-3 --lr-schedule cosine --decay-start 0.3 --threads 1 --ckpt-every 250 --log-every 50 "$@"
ae eval denoising --run "$RUN"
ae plot denoising --run "$RUN"
