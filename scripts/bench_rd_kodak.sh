#!/usr/bin/env bash
# Rate–distortion benchmark on the 24 Kodak images: the learned codec ("ours") and JPEG, WebP, AVIF,
# JPEG 2000 and JPEG XL, each at 6–7 quality settings; bpp, PSNR, MS-SSIM dB and LPIPS per image and
# averaged per setting, RD plots, and the BD-rate table against JPEG and AVIF (printed and saved).
#
#   ENSO_DATA=../shared/data scripts/bench_rd_kodak.sh OUT [--model NAME_OR_PATH ...] [more eval flags...]
#
# "ours" loads the shipped default codec unless --model names one (a run folder works); when it
# cannot load, it is skipped with the reason and the classical codecs still run. The classical part
# (24 images x 32 points) took 17 minutes wall, 4 CPU-minutes, with --threads 1 on a busy 2-core
# machine; AVIF (speed 6) and JPEG XL (effort 7) encoding is most of the CPU time. With
# --refine 50 (latent refinement, compress/refine.py) and --threads 2, the run for mean_scale and
# mean_scale_msssim took 60 minutes: 7.3 and 12.8 s per encode.
set -euo pipefail
OUT="${1:?usage: bench_rd_kodak.sh OUT [--model NAME_OR_PATH] [eval flags...]}"
shift
compress eval --data "${ENSO_DATA:?set ENSO_DATA to the folder holding kodak/}/kodak" \
    --codecs ours,jpeg,webp,avif,jpeg2000,jxl -o "$OUT" --threads 1 "$@"
