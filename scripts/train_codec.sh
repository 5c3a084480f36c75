#!/usr/bin/env bash
# The recipe behind the shipped codec weights: the mean-scale hyperprior with gain units (6 λ levels),
# trained through the shared trainer on random 128×128 crops of BSDS500 (all 500 photos), batch 8,
# Adam 5e-4 constant for 35 % of the steps then linear decay to 0, bf16 autocast on the transforms.
# The shipped run was resumed three times with a longer --steps as its time budget grew; its lr went
# 5e-4 to step 1040, down to 3.9e-4 at 1400, 5e-4 to 1820, down to 3.4e-4 at 2900, then 4.9e-4 linearly to 0 at 8000
# (the first shipped weights, step 7,800); in a second session it was resumed at 7,800 with --steps 28000 (a warm
# restart: 5e-4 constant to 9,800, then decaying) and at 11,575 with --steps 21000 (3.45e-4 linearly to 0 at 21,000);
# in a third, resumed at 21,000 with --steps 30000, at 23,300 with --steps 36000 (2.7e-4 linearly to 0 at
# 36,000) and at 36,000 with --steps 42000 (1.1e-4 to 0); one thread, 2 h 0 min for these 21,000 steps.
# In a fourth, resumed at 42,425 (a checkpoint past the step-42,000 weights of the third) on 256×256
# crops with the decoder fed rounded latents (--decoder-input round, now the default) and
# --steps 52500 (1.47e-4), at 43,500 with --steps 51000 and at 43,600 with --steps 50000 (9.8e-5
# linearly to 0 at 50,000), each shortening only to finish within the session; two threads,
# --crop 256 --threads 2 after --resume, 1 h 48 min for these 7,575 steps (6 h 17 min in all).
# In a fifth, resumed at 50,000 with --steps 58500 (1.1e-4), at 50,700 with --steps 60000 and at
# 52,600 with --steps 61500 (1.1e-4 linearly to 0 at 61,500), each lengthening as the trainer got
# faster (freed memory kept for reuse: 10.5 → 14.1 images/s); two threads, 256×256 crops,
# 1 h 54 min for these 11,500 steps (8 h 11 min in all). In the fifth's last half hour and a sixth,
# resumed at 61,500 with --steps 75000 (1.4e-4) and at 64,900 with --steps 77500 (1.25e-4 linearly
# to 0 at 77,500); two threads, 256×256 crops, 2 h 36 min for these 16,000 steps (10 h 47 min in
# all). In a seventh, resumed at 77,500 with --steps 91000 and at 77,825 with --steps 85000 (6.4e-5
# linearly to 0 at 85,000, shortened to leave time for the MS-SSIM variant); two threads, 256×256
# crops, 1 h 11 min for these 7,500 steps (11 h 57 min in all). In the seventh's last minutes and an
# eighth, resumed at 85,000 with --steps 100000 (1.15e-4) and at 85,500 with --steps 94000
# --decay-start 0.62 (1.18e-4 linearly to 0 at 94,000); two threads, 256×256 crops, 1 h 28 min for
# these 9,000 steps (13 h 25 min in all). Those step-94,000 weights (in git at fd3147c) were then
# fine-tuned in a later session with g_a, g_s and the gains trained alone on the rate at annealed
# latents (the hyperprior and entropy models kept, so the MS-SSIM variant still fits):
#   scripts/train_codec.sh RUN --init mean_scale --train-only transforms --rate-input annealed \
#     --crop 256 --threads 2 --steps 9000 --lr 3e-5 --decay-start 0.3
# (--init the step-94,000 weights), resumed at 1,325 with the same flags and --steps 5600 (3e-5 to
# 1,680, then linearly to 0 at 5,600) to finish within the session;
# two threads, 256×256 crops, 1 h 27 min for these 5,600 steps (14 h 52 min in all). The shipped
# weights are that fine-tune's last step (99,600 steps in all; its model.json counts the fine-tune's 5,600).
# Resumable: run it again with --resume to continue a killed run.
#   ENSO_DATA=../shared/data scripts/train_codec.sh RUN_DIR [--resume] [more compress train flags]
set -euo pipefail
run="${1:?usage: train_codec.sh RUN_DIR [--resume] [flags]}"; shift
data="${ENSO_DATA:?set ENSO_DATA to the folder holding train_photos/}/train_photos/bsds500"
compress train --model mean_scale --data "$data/train" --data "$data/test" --data "$data/val" \
  --run "$run" --crop 128 --batch-size 8 --steps 8000 --lr 5e-4 --lr-schedule linear --decay-start 0.35 \
  --ckpt-every 100 --no-progress "$@"
