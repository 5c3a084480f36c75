#!/usr/bin/env bash
# horse2zebra end to end: download the data (unless present), train, translate, evaluate.
# The defaults are the recipe of the shipped weights (translate/weights/horse2zebra): the mobile
# generator (depthwise-separable bottleneck, ngf 32, resize + conv upsampling), 128² crops of
# 286² images, batch 1, lr 2e-4 constant for half, then linear to 0. The shipped run: 11,000 steps
# (≈ 8.2 epochs of the 1,334 horses, 1 h 50 min on one thread), then resumed with --steps 15900
# (lr back to 1.2e-4, decaying; two threads) and stopped at step 15,500 for the session's end; in a
# third session resumed at 15,500 with --steps 26000 (lr 1.6e-4 decaying linearly to 0 at 26,000, one thread)
# and at 26,000 with --steps 28500 (3.5e-5 to 0). The shipped weights are step 28,500.
# Resumable: run it again to continue a killed run. Extra flags go to `translate train`; for the
# anchor's full recipe use e.g. --generator resnet --ngf 64 --size 256 --steps 266800.
#   scripts/horse2zebra.sh RUN_DIR [translate train flags]
set -euo pipefail
run="${1:?usage: horse2zebra.sh RUN_DIR [translate train flags]}"; shift
here="$(cd "$(dirname "$0")" && pwd)"
data="${ENSO_DATA:-./data}"
[ -d "$data/horse2zebra/trainA" ] || "$here/download_cyclegan_dataset.sh" horse2zebra "$data"
resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
translate train horse2zebra --data "$data/horse2zebra" --run "$run" "${resume[@]}" \
  --generator mobile --ngf 32 --upsample resize_conv --size 128 --load-size 286 \
  --steps 11000 --ckpt-every 500 --log-every 100 "$@"
mkdir -p "$run/samples"
translate horse2zebra "$data/horse2zebra/testA" -o "$run/samples/fake_B" --model "$run" --force
translate eval horse2zebra --data "$data/horse2zebra" --model "$run"   # FID/KID, cycle PSNR, $run/eval/index.html
