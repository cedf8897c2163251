"""Score a retraining run's checkpoint beside the shipped one and the peers, and ship it.

    python scripts/ship_style.py udnie             # score runs/retrain/udnie.pt (about 1 min on 2 cores)
    python scripts/ship_style.py udnie --ship      # score it, then ship it
    python scripts/ship_style.py pleades --checkpoint checkpoints/retrain/pleades.pt

Scoring is `benchmarks/quality.py`'s, on the photos of benchmarks/results/quality_cpu.json (16 held-out
val2017 photos at 512 px) with bf16 VGG passes, into a copy of that file; the peers' figures are kept
from it. Nothing a user has changes until `--ship`, which does the mechanical part of shipping: the
checkpoint into texture_nets/styles/ (atomically), its figures into quality_cpu.json and the tables of
benchmarks/README.md, and "step S of N" in its recipe's header (configs/styles/NAME.toml) while the run
goes on. It refuses a checkpoint that recipe did not make (another learning rate, other weights): a new
recipe and its header are written by hand first. What stays by hand, after looking at the pictures:
the header's and the README's figures and prose, and the pictures (docs/make_gallery.sh, docs/make_compare.sh).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import quality  # noqa: E402

from texture_nets.core.checkpoint import load_checkpoint, save_checkpoint, total_steps  # noqa: E402
from texture_nets.core.errors import TextureNetsError  # noqa: E402
from texture_nets.core.files import atomic_output  # noqa: E402
from texture_nets.training.config import recipe_differences  # noqa: E402
from texture_nets.training.recipes import load_config_file  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "quality_cpu.json"
BENCH_README = ROOT / "benchmarks" / "README.md"
GATYS = ROOT / "benchmarks" / "results" / "quality_gatys_cpu.json"
FIGURES = (("style", "style (rel.)", ".3f"), ("content", "content (rel.)", ".3f"),
           ("classic_style", "style (classic)", ".3g"), ("classic_content", "content (classic)", ".3g"),
           ("edge_corr", "edge corr", ".3f"), ("lum_corr", "lum. corr", ".3f"),
           ("colour_distance", "colour dist.", ".1f"), ("contrast_ratio", "contrast", ".2f"))


def score(name: str, checkpoint: Path, workdir: Path, photos: int) -> dict:
    """quality_cpu.json with `checkpoint` scored as `name`'s texture_nets model on its `photos` (a copy,
    in workdir)."""
    (workdir / "ckpt").mkdir()
    shutil.copy2(checkpoint, workdir / "ckpt" / f"{name}.pt")
    output = workdir / "quality.json"
    shutil.copy2(RESULTS, output)
    command = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--update", "--photos", str(photos),
               "--styles", name, "--checkpoint_dir", str(workdir / "ckpt"), "--no-timing", "--precision", "bf16",
               "--output", str(output)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return json.loads(output.read_text(encoding="utf-8"))


def comparison(name: str, shipped: dict | None, candidate: dict) -> str:
    """A text table of the figures: the shipped model, the candidate, then the peers (candidate's run)."""
    columns = {}
    if shipped and quality.OURS in shipped["models"]:
        columns[f"shipped (step {shipped['models'][quality.OURS].get('step', '?'):,})"] = shipped["models"][quality.OURS]
    ours = candidate["models"][quality.OURS]
    columns[f"candidate (step {ours['step']:,})"] = ours
    columns.update({label: m for label, m in candidate["models"].items() if label != quality.OURS})
    width = max(len(label) for label in columns) + 2
    lines = [f"{name:18s}" + "".join(f"{label:>{width}s}" for label in columns)]
    for key, title, spec in FIGURES:
        cells = [format(m[key], spec) if isinstance(m.get(key), (int, float)) else "—" for m in columns.values()]
        lines.append(f"{title:18s}" + "".join(f"{cell:>{width}s}" for cell in cells))
    for label, peer in candidate["models"].items():
        if label != quality.OURS:
            lines.append(f"against {label}: {quality.verdict(ours, peer)}")
    return "\n".join(lines)


def header_with_step(header: str, step: int, total: int) -> str:
    """The recipe text with its "step S of N" (a run still going on) made `step`; a finished run's
    header (step == N) is the user's to rewrite, so it is returned as it is."""
    if step >= total:
        return header
    new, count = re.subn(rf"step [\d,]+ of {total:,}|step [\d,]+ of {total}", f"step {step} of {total}", header, count=1)
    if not count:
        raise TextureNetsError(f"the recipe's header does not say at which step of {total} it ships "
                               f"(\"step S of {total}\"): write it first")
    return new


def finished_note(name: str, saved: dict) -> str:
    """What a finished run leaves to do by hand ('' while it goes on)."""
    if saved["step"] < saved["train"]["num_iterations"]:
        return ""
    return (f"the run is finished: rewrite the header of configs/styles/{name}.toml (no \"step S of N\"), and "
            f"git rm configs/retrain/{name}.toml checkpoints/retrain/{name}.pt (keep its phase files)")


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a text file whole or not at all."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def ship(name: str, saved: dict, checkpoint: Path, results: dict) -> list[str]:
    """Put the checkpoint `saved` (read from `checkpoint`), its figures and its step into place; the
    files changed."""
    recipe_path = ROOT / "configs" / "styles" / f"{name}.toml"
    differences = recipe_differences(load_config_file(str(recipe_path)), saved["train"])
    if differences:
        raise TextureNetsError(f"{recipe_path.relative_to(ROOT)} did not make {checkpoint} ({'; '.join(differences)}): "
                               f"copy its recipe there (configs/retrain/{name}.toml) and write the header first")
    # every new text first: a refusal (no "step S of N", no tables to replace) leaves all as it was
    recipe_text = header_with_step(recipe_path.read_text(encoding="utf-8"), saved["step"], saved["train"]["num_iterations"])
    gatys = json.loads(GATYS.read_text(encoding="utf-8")) if GATYS.is_file() else None
    readme_text = quality.replace_tables(BENCH_README.read_text(encoding="utf-8"), quality.markdown(results, gatys))
    save_checkpoint(saved, ROOT / "texture_nets" / "styles" / f"{name}.pt")
    write_text_atomic(recipe_path, recipe_text)
    quality.write_json(results, RESULTS)
    write_text_atomic(BENCH_README, readme_text)
    return [f"texture_nets/styles/{name}.pt", str(recipe_path.relative_to(ROOT)), str(RESULTS.relative_to(ROOT)),
            str(BENCH_README.relative_to(ROOT))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a shipped style (texture_nets/styles/NAME.pt)")
    parser.add_argument("--checkpoint", help="the candidate (default: runs/retrain/NAME.pt)")
    parser.add_argument("--ship", action="store_true", help="after scoring, ship it")
    args = parser.parse_args()
    checkpoint = Path(args.checkpoint or ROOT / "runs" / "retrain" / f"{args.name}.pt")
    try:
        if args.name not in quality.SHIPPED:
            raise TextureNetsError(f"{args.name}: not a shipped style ({', '.join(quality.SHIPPED)})")
        if not checkpoint.is_file():
            raise TextureNetsError(f"{checkpoint}: no such checkpoint")
        saved = load_checkpoint(checkpoint)
        print(f"{args.name}: scoring {checkpoint} ({total_steps(saved):,} steps in all) ...", flush=True)
        before = json.loads(RESULTS.read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory() as workdir:
            results = score(args.name, checkpoint, Path(workdir), photos=len(before["photos"]))
        print(comparison(args.name, before["styles"].get(args.name), results["styles"][args.name]))
        if args.ship:
            changed = ship(args.name, saved, checkpoint, results)
            print("shipped; changed: " + ", ".join(changed))
            print("by hand: the recipe header's and README's figures, bash docs/make_gallery.sh, "
                  "bash docs/make_compare.sh 288 (paper styles), python scripts/retrain_progress.py")
            print(finished_note(args.name, saved))
    except TextureNetsError as exc:
        raise SystemExit(f"ship_style.py: {exc}") from None


if __name__ == "__main__":
    main()
