#!/usr/bin/env bash
# The recipe behind the shipped MS-SSIM variant (compress/weights/mean_scale_msssim): the shipped
# mean-scale codec's transforms and gains fine-tuned for λ·(1 − MS-SSIM) + bpp (CompressAI's
# MS-SSIM λ for its qualities 1..6), with its hyperprior and entropy models kept as they are
# (--train-only transforms), so the variant ships only g_a, g_s and the gains and shares the
# rest with compress/weights/mean_scale. Random 256×256 crops of BSDS500, batch 8, Adam 1e-4
# constant for 30 % of the steps then linear decay to 0, bf16 autocast on the transforms (MS-SSIM
# itself in fp32). Export against the base:
#   compress export RUN -o compress/weights/mean_scale_msssim --base mean_scale --force
# The shipped variant: this script as it stands (5,000 steps: 1e-4 to 1,500, then linearly to 0)
# from mean_scale's 94,000-step weights; two threads, 46 min. (mean_scale's later fine-tune changed
# only its transforms and gains, which the variant does not take from it.)
# When mean_scale's hyperprior or entropy models change, this variant must be trained again from
# them (it then refuses to load, and its test fails).
# Resumable: run it again with --resume to continue a killed run.
#   ENSO_DATA=../shared/data scripts/train_codec_msssim.sh RUN_DIR [--resume] [more compress train flags]
set -euo pipefail
run="${1:?usage: train_codec_msssim.sh RUN_DIR [--resume] [flags]}"; shift
data="${ENSO_DATA:?set ENSO_DATA to the folder holding train_photos/}/train_photos/bsds500"
compress train --model mean_scale --init mean_scale --train-only transforms --distortion ms-ssim \
  --lambdas 2.40 4.58 8.73 16.64 31.73 60.50 \
  --data "$data/train" --data "$data/test" --data "$data/val" \
  --run "$run" --crop 256 --batch-size 8 --steps 5000 --lr 1e-4 --lr-schedule linear --decay-start 0.3 \
  --ckpt-every 100 --threads 2 --no-progress "$@"
