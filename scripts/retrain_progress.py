"""Keep the committed progress of retraining runs current.

For every recipe in configs/retrain/, copy the run's latest plain checkpoint (runs/retrain/NAME.pt, and
a phased recipe's NAME_phaseK.pt) to checkpoints/retrain/ when it has trained longer than the committed
one, then rewrite the table in checkpoints/retrain/README.md: step, recipe, and the run's last held-out
validation figures (read from its log). Resume files stay out of the repository; a run on another machine continues from the
committed plain checkpoint (`scripts/retrain_styles.sh NAME`). Run it before committing:

    python scripts/retrain_progress.py
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from texture_nets.core.checkpoint import load_checkpoint, total_steps  # noqa: E402
from texture_nets.core.files import atomic_output  # noqa: E402

RUNS, KEPT, RECIPES = ROOT / "runs" / "retrain", ROOT / "checkpoints" / "retrain", ROOT / "configs" / "retrain"

HEADER = """# Progress of retraining runs

Plain checkpoints (weights, step, settings; no optimizer state) of runs in progress, committed so that a
run continues on another machine: `scripts/retrain_styles.sh NAME` resumes from here when
`runs/retrain/NAME.resume.pt` is gone (at the saved step, with a fresh Adam). A style ships (into
`texture_nets/styles/`, its recipe into `configs/styles/` with the step in its header) when
`python scripts/ship_style.py NAME` (benchmarks/quality.py's scores) says it beats what is shipped and it
looks it, by `scripts/ship_style.py NAME --ship`; the run goes on from here.
`NAME_phaseK.pt` are the earlier phases of a recipe in phases (its `[[phases]]` tables, other settings):
`python train.py --config retrain/NAME --checkpoint_dir checkpoints/retrain` finds them done. This table is written by
`python scripts/retrain_progress.py`, which also copies each run's latest checkpoint here.

| run | step | recipe | held-out validation (8 val2017 photos at 256 px; the recipe's own weighted loss) |
|---|---|---|---|
"""


def saved_step(path: Path) -> int:
    """The training steps behind a checkpoint file (earlier phases' too), -1 where there is none."""
    return total_steps(load_checkpoint(path)) if path.is_file() else -1


def last_validation(name: str, step: int, where: str) -> str:
    """The run's validation figures at `step` from its log; where the log is gone (another machine),
    those the table already gives for the same progress `where`; else '?'."""
    log = RUNS / f"{name}.log"
    text = log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n") if log.is_file() else ""
    found = re.findall(rf"step {step}: validation total [\d.]+ content ([\d.]+) style ([\d.]+)", text)
    if found:
        return f"style {found[-1][1]}, content {found[-1][0]}"
    return committed_rows().get((name, where), "?")


def committed_rows() -> dict[tuple[str, str], str]:
    """{(run, its progress): its validation figures} from the table written last time."""
    readme = KEPT / "README.md"
    rows = readme.read_text(encoding="utf-8").splitlines() if readme.is_file() else []
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows if row.startswith("| ")]
    return {(c[0], c[1]): c[3] for c in cells if len(c) == 4}


def progress_row(recipe: Path) -> str | None:
    """Bring checkpoints/retrain/NAME.pt up to the run's latest and describe it (None: not started)."""
    name = recipe.stem
    for run in [*sorted(RUNS.glob(f"{name}_phase*.pt")), RUNS / f"{name}.pt"]:  # a phased recipe's phases too
        if saved_step(run) > saved_step(KEPT / run.name):
            with atomic_output(KEPT / run.name) as tmp:  # a reader never finds half a checkpoint
                shutil.copy2(run, tmp)
    kept = KEPT / f"{name}.pt"
    if not kept.is_file():
        return None
    checkpoint = load_checkpoint(kept)
    step, before = checkpoint["step"], checkpoint.get("steps_before", 0)
    total = tomllib.loads(recipe.read_text(encoding="utf-8"))["num_iterations"]
    where = f"{step:,} of {total:,}"
    if before:
        start = Path(checkpoint["train"]["init_from"])
        where += f" (after {before:,} steps of earlier phases: {KEPT.relative_to(ROOT) / start.name})"
    return f"| {name} | {where} | configs/retrain/{recipe.name} | {last_validation(name, step, where)} |"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help, and nothing else
    rows = [row for recipe in sorted(RECIPES.glob("*.toml")) if (row := progress_row(recipe))]
    text = HEADER + "\n".join(rows or ["| (none: every run has finished; its phases' files stay here) | | | |"]) + "\n"
    with atomic_output(KEPT / "README.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
