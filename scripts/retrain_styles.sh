#!/usr/bin/env bash
# Train (or continue training) shipped styles in the background, one thread each (two runs share a
# 2-core machine), into runs/retrain/<name>.{pt,resume.pt,log}. The recipe: configs/retrain/<name>.toml
# (a run in progress) where there is one, else configs/styles/<name>.toml (the shipped checkpoint's).
#
#   scripts/retrain_styles.sh pleades ulyanov_starry     # start or continue these two
#
# A run continues from runs/retrain/<name>.resume.pt where that is still here (exactly); else from the
# committed progress of a run not yet shipped, checkpoints/retrain/<name>.pt (brought up to date by
# scripts/retrain_progress.py: run it and commit before a session ends); else from the shipped texture_nets/styles/<name>.pt if
# it was trained with the same recipe (its step and weights, a fresh optimizer); else from step 0. When
# a run's <name>.pt is better than the shipped one, ship it: copy it to texture_nets/styles/ and move
# its recipe to configs/styles/ (with "step S of N" in its header while the run goes on).
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=runs/retrain
mkdir -p "$run_dir"
for name in "$@"; do
    recipe="styles/$name"
    [ -f "configs/retrain/$name.toml" ] && recipe="retrain/$name"
    args=(--config "$recipe" --checkpoint_dir "$run_dir")
    for saved in "$run_dir/$name.resume.pt" "checkpoints/retrain/$name.pt" "texture_nets/styles/$name.pt"; do
        # the first that exists and was made by this recipe (train.py refuses a changed setting)
        [ -f "$saved" ] || continue
        if why=$(python train.py "${args[@]}" --resume "$saved" --dry_run 2>&1); then
            args+=(--resume "$saved")
            break
        fi
        echo "$name: not resuming from $saved: $(tail -n 1 <<<"$why")" >&2
    done
    echo "$name: python train.py ${args[*]}"
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} nohup python train.py "${args[@]}" >>"$run_dir/$name.log" 2>&1 &
done
