#!/usr/bin/env bash
# The translation pilot: equal training time (from scratch or from --init), scored on the held-out split.
# Trains one candidate in RUN_DIR until each wall-clock point (minutes of training time, summed
# over resumes), and after each point scores the export on the 100 + 100 training images the run
# held out (`translate eval --split val`: FID and KID, never the test set), in RUN_DIR/val_<min>/.
#   scripts/pilot_translate.sh RUN_DIR "10 20 40" [translate train flags]
# The pilot of the README's table, one thread each, two candidates at a time:
#   OMP_NUM_THREADS=1 scripts/pilot_translate.sh runs/cut "10 20 35" --model cut --generator mobile --ngf 32 --upsample resize_conv
# Warm-started from the shipped CycleGAN pair (its generators; discriminators and heads start fresh):
#   OMP_NUM_THREADS=1 scripts/pilot_translate.sh runs/fastcut "10 20" --model fastcut --init horse2zebra --generator mobile --ngf 32 --upsample resize_conv --lr 1e-4
set -euo pipefail
run="${1:?usage: pilot_translate.sh RUN_DIR \"MINUTES...\" [translate train flags]}"; points="${2:?give the wall-clock points in minutes}"; shift 2
data="${ENSO_DATA:-./data}/horse2zebra"
for t in $points; do
  resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
  translate train horse2zebra --data "$data" --run "$run" "${resume[@]}" --size 128 --load-size 286 \
    --steps 10000000 --lr-schedule constant --stop-after-minutes "$t" --ckpt-every 200 --log-every 50 --threads 1 --no-progress "$@"
  translate eval horse2zebra --data "$data" --model "$run" --split val --html 8 -o "$run/val_$t" --device cpu > "$run/val_$t.json"
done
