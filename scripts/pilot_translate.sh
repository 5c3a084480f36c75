#!/usr/bin/env bash
# The translation pilot: candidates trained for equal time (from scratch or from --init), scored on the held-out split.
# Trains one candidate in RUN_DIR up to each point (a step count, resuming between points), and after
# each point scores the export on the 100 + 100 training images the run held out (`translate eval
# --split val`: FID and KID, never the test set), in RUN_DIR/val_<steps>.json and RUN_DIR/val_<steps>/.
# Points are steps, not minutes, so that load from other work does not favour one candidate: give each
# candidate the steps that the same training time buys, from `python scripts/bench_translate.py --train`
# (seconds per step of cyclegan, cut and fastcut, measured side by side).
#   scripts/pilot_translate.sh RUN_DIR "STEPS..." [translate train flags]
# The README's pilot, one thread each, warm-started from the shipped CycleGAN pair (its generators;
# discriminators and NCE heads start fresh), points at 10 and 20 minutes' worth of steps:
#   OMP_NUM_THREADS=1 scripts/pilot_translate.sh runs/fastcut "1175 2350" --model fastcut --init horse2zebra --generator mobile --ngf 32 --upsample resize_conv --lr 1e-4
set -euo pipefail
run="${1:?usage: pilot_translate.sh RUN_DIR \"STEPS...\" [translate train flags]}"; points="${2:?give the points in steps}"; shift 2
data="${ENSO_DATA:-./data}/horse2zebra"
for t in $points; do
  resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
  translate train horse2zebra --data "$data" --run "$run" "${resume[@]}" --size 128 --load-size 286 \
    --steps "$t" --lr-schedule constant --ckpt-every 200 --log-every 50 --threads 1 --no-progress "$@"
  translate eval horse2zebra --data "$data" --model "$run" --split val --html 8 -o "$run/val_$t" --device cpu > "$run/val_$t.json"
done
