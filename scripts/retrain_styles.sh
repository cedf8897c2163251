#!/usr/bin/env bash
# Train (or continue training) shipped styles in the background, one thread each (two runs share a
# 2-core machine), into runs/retrain/<name>.{pt,resume.pt,log}. The recipe: configs/retrain/<name>.toml
# (a run in progress) where there is one, else configs/styles/<name>.toml (the shipped checkpoint's).
#
#   scripts/retrain_styles.sh pleades ulyanov_starry     # start or continue these two
#
# A recipe in phases ([[phases]], texture_nets/phases.py) continues by itself from its files in runs/retrain
# (each phase's <name>_phase<k>.pt), else from their committed copies in checkpoints/retrain. Any other
# run continues from runs/retrain/<name>.resume.pt where that is still here (exactly); else from the
# committed progress of a run not yet shipped, checkpoints/retrain/<name>.pt (brought up to date by
# scripts/retrain_progress.py: run it and commit before a session ends); else from the shipped texture_nets/styles/<name>.pt if
# it was trained with the same recipe (its step and weights, a fresh optimizer); else from step 0. When
# a run's <name>.pt is better than the shipped one (python scripts/ship_style.py <name> scores it beside
# the shipped one and the peers), ship it: its recipe in configs/styles/ (with "step S of N" in its header
# while the run goes on), then python scripts/ship_style.py <name> --ship.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=runs/retrain
mkdir -p "$run_dir"
for name in "$@"; do
    recipe="styles/$name"
    [ -f "configs/retrain/$name.toml" ] && recipe="retrain/$name"
    args=(--config "$recipe" --checkpoint_dir "$run_dir")
    if grep -q '^\[\[phases\]\]' "configs/$recipe.toml"; then
        # a recipe in phases continues by itself from its files in $run_dir; where a phase has none
        # (another machine), from its committed progress (a plain checkpoint: a fresh optimizer)
        for kept in checkpoints/retrain/"$name"_phase*.pt "checkpoints/retrain/$name.pt"; do
            [ -f "$kept" ] && [ ! -f "$run_dir/$(basename "$kept")" ] && cp "$kept" "$run_dir/"
        done
    else
        for saved in "$run_dir/$name.resume.pt" "checkpoints/retrain/$name.pt" "texture_nets/styles/$name.pt"; do
            # the first that exists and was made by this recipe (train.py refuses a changed setting)
            [ -f "$saved" ] || continue
            if why=$(python train.py "${args[@]}" --resume "$saved" --dry_run 2>&1); then
                args+=(--resume "$saved")
                break
            fi
            echo "$name: not resuming from $saved: $(tail -n 1 <<<"$why")" >&2
        done
    fi
    echo "$name: python train.py ${args[*]}"
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} nohup python train.py "${args[@]}" >>"$run_dir/$name.log" 2>&1 &
done
