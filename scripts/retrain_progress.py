"""Keep the committed progress of retraining runs current (issue 14's long runs).

For every recipe in configs/retrain/, copy the run's latest plain checkpoint (runs/retrain/NAME.pt)
to checkpoints/retrain/NAME.pt when it is further on than the committed one, then rewrite the table
in checkpoints/retrain/README.md: step, recipe, and the run's last held-out validation figures (read
from its log). Resume files stay out of the repository; a run on another machine continues from the
committed plain checkpoint (`scripts/retrain_styles.sh NAME`). Run it before committing:

    python scripts/retrain_progress.py
"""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from texture_nets.checkpoint import load_checkpoint  # noqa: E402

RUNS, KEPT, RECIPES = ROOT / "runs" / "retrain", ROOT / "checkpoints" / "retrain", ROOT / "configs" / "retrain"

HEADER = """# Progress of retraining runs (issue 14)

Plain checkpoints (weights, step, settings; no optimizer state) of runs in progress, committed so that a
run continues on another machine: `scripts/retrain_styles.sh NAME` resumes from here when
`runs/retrain/NAME.resume.pt` is gone (at the saved step, with a fresh Adam). A style ships (into
`texture_nets/styles/`, its recipe into `configs/styles/` with the step in its header) when
`benchmarks/quality.py` says it beats what is shipped and it looks it; the run goes on from here.
`NAME_init.pt` (and `NAME_phaseK.pt`) are where a run's current recipe started (`init_from`): the weights
of earlier phases with other settings, named in the recipe's header. This table is written by
`python scripts/retrain_progress.py`, which also copies each run's latest checkpoint here.

| run | step | recipe | held-out validation (8 val2017 photos at 256 px; the recipe's own weighted loss) |
|---|---|---|---|
"""


def saved_step(path: Path) -> int:
    """The step of a checkpoint file, -1 where there is none."""
    return load_checkpoint(path)["step"] if path.is_file() else -1


def last_validation(name: str, step: int) -> str:
    """The run's validation figures at `step` from its log, or '?' where the log is gone."""
    log = RUNS / f"{name}.log"
    text = log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n") if log.is_file() else ""
    found = re.findall(rf"step {step}: validation total [\d.]+ content ([\d.]+) style ([\d.]+)", text)
    return f"style {found[-1][1]}, content {found[-1][0]}" if found else "?"


def progress_row(recipe: Path) -> str | None:
    """Bring checkpoints/retrain/NAME.pt up to the run's latest and describe it (None: not started)."""
    name = recipe.stem
    run, kept = RUNS / f"{name}.pt", KEPT / f"{name}.pt"
    if saved_step(run) > saved_step(kept):
        shutil.copy2(run, kept)
    if not kept.is_file():
        return None
    checkpoint = load_checkpoint(kept)
    step, before = checkpoint["step"], checkpoint.get("steps_before", 0)
    total = tomllib.loads(recipe.read_text(encoding="utf-8"))["num_iterations"]
    where = f"{step:,} of {total:,}"
    if before:
        where += f" (after {before:,} steps of earlier phases: {checkpoint['train']['init_from']})"
    return f"| {name} | {where} | configs/retrain/{recipe.name} | {last_validation(name, step)} |"


def main() -> None:
    rows = [row for recipe in sorted(RECIPES.glob("*.toml")) if (row := progress_row(recipe))]
    text = HEADER + "\n".join(rows) + "\n"
    (KEPT / "README.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
