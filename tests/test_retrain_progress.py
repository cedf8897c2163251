"""scripts/retrain_progress.py: a run's committed progress only ever moves forward, phases included, and
the table says where each run stands (tiny checkpoints in a temporary tree; no ../shared needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from texture_nets.core.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from texture_nets.core.pyramid import TextureNetwork

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import retrain_progress  # noqa: E402


def write(path: Path, step: int, steps_before: int = 0, init_from: str | None = None) -> None:
    torch.manual_seed(step)
    net = TextureNetwork(num_scales=2, channels=4, noise_channels=1)
    train = {"num_iterations": 100, **({"init_from": init_from} if init_from else {})}
    save_checkpoint(make_checkpoint(net, style={"name": path.stem}, train=train, step=step, losses={},
                                    steps_before=steps_before), path)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """runs/retrain, checkpoints/retrain and configs/retrain under tmp_path, in place of the repository's."""
    folders = {name: tmp_path / name for name in ("runs", "kept", "recipes")}
    for folder in folders.values():
        folder.mkdir()
    monkeypatch.setattr(retrain_progress, "ROOT", tmp_path)
    monkeypatch.setattr(retrain_progress, "RUNS", folders["runs"])
    monkeypatch.setattr(retrain_progress, "KEPT", folders["kept"])
    monkeypatch.setattr(retrain_progress, "RECIPES", folders["recipes"])
    monkeypatch.setattr(sys, "argv", ["retrain_progress.py"])
    return folders


def test_a_longer_run_is_committed_and_a_shorter_one_never_replaces_it(tree, capsys):
    (tree["recipes"] / "wave.toml").write_text("num_iterations = 400\n")
    (tree["recipes"] / "udnie.toml").write_text("num_iterations = 400\n")
    write(tree["runs"] / "wave.pt", 250)
    (tree["runs"] / "wave.log").write_text("\rstep 250: validation total 1.5 content 0.9 style 0.6\n")
    write(tree["runs"] / "udnie.pt", 100)
    write(tree["kept"] / "udnie.pt", 300)  # committed from another machine, further on
    retrain_progress.main()

    assert load_checkpoint(tree["kept"] / "wave.pt")["step"] == 250
    assert load_checkpoint(tree["kept"] / "udnie.pt")["step"] == 300  # not set back to the local run's 100
    table = (tree["kept"] / "README.md").read_text()
    assert "| wave | 250 of 400 | configs/retrain/wave.toml | style 0.6, content 0.9 |" in table
    assert "| udnie | 300 of 400 | configs/retrain/udnie.toml | ? |" in table  # no log here for step 300
    assert table in capsys.readouterr().out
    assert not [p.name for p in tree["kept"].iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_phased_run_copies_its_phases_and_names_the_one_it_continues(tree):
    (tree["recipes"] / "pleades.toml").write_text("num_iterations = 600\n")
    write(tree["runs"] / "pleades_phase1.pt", 200)
    write(tree["runs"] / "pleades.pt", 50, steps_before=200, init_from="runs/retrain/pleades_phase1.pt")
    retrain_progress.main()
    assert load_checkpoint(tree["kept"] / "pleades_phase1.pt")["step"] == 200
    row = "| pleades | 50 of 600 (after 200 steps of earlier phases: kept/pleades_phase1.pt) |"
    assert row in (tree["kept"] / "README.md").read_text()


def test_a_recipe_without_any_checkpoint_gets_no_row(tree):
    (tree["recipes"] / "candy.toml").write_text("num_iterations = 400\n")
    retrain_progress.main()
    assert "| candy |" not in (tree["kept"] / "README.md").read_text()
