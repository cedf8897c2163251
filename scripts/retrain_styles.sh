#!/usr/bin/env bash
# Train (or continue training) shipped styles from their recipes in configs/styles, in the background,
# one thread each (two runs share a 2-core machine), into runs/retrain/<name>.{pt,resume.pt,log}.
#
#   scripts/retrain_styles.sh pleades ulyanov_starry     # start or continue these two
#
# A run continues from runs/retrain/<name>.resume.pt where that is still here (exactly); else from the
# committed checkpoints/<name>.pt if it was trained with the same recipe (its step and weights, a fresh
# optimizer); else it starts from step 0. Copy runs/retrain/<name>.pt to checkpoints/ when it is better.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=runs/retrain
mkdir -p "$run_dir"
for name in "$@"; do
    args=(--config "styles/$name" --checkpoint_dir "$run_dir")
    if [ -f "$run_dir/$name.resume.pt" ]; then
        args+=(--resume "$run_dir/$name.resume.pt")
    elif [ -f "checkpoints/$name.pt" ] && python train.py "${args[@]}" --resume "checkpoints/$name.pt" --dry_run \
            >/dev/null 2>&1; then
        args+=(--resume "checkpoints/$name.pt")
    fi
    echo "$name: python train.py ${args[*]}"
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} nohup python train.py "${args[@]}" >>"$run_dir/$name.log" 2>&1 &
done
