"""Recipes trained in phases (phases.py) and stop_at: one command runs every phase, each exactly as
the runs it stands for, and a second command continues where the first stopped."""

from pathlib import Path

import pytest
import torch

from texture_nets import TextureNetsError, load_checkpoint
from texture_nets.cli import train_main
from texture_nets.core.checkpoint import total_steps
from texture_nets.core.settings import config_to_toml
from texture_nets.training.config import make_config
from texture_nets.training.recipes import load_config_file
from texture_nets.training.run import load_resume, run_training

from .conftest import tiny_overrides
from .test_user_safety import one_line_error

PHASES = """
[[phases]]
num_iterations = 6
stop_at = 4
style_weight = 1.5
content_layers = ["relu1_1", "relu2_1"]

[[phases]]
num_iterations = 2
learning_rate = 4e-3
"""


def quiet(*_):
    pass


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_checkpoint(a)["state_dict"], load_checkpoint(b)["state_dict"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture
def recipe(photos_dir, style_path, tmp_path) -> Path:
    """A tiny three-run recipe: two [[phases]], then its own settings (3 steps at style weight 1.05)."""
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=3, style_weight=1.05,
                            name="stripes", checkpoint_every=2)
    path = tmp_path / "phased.toml"
    path.write_text(config_to_toml(make_config({}, values)) + PHASES, encoding="utf-8")
    return path


def test_stop_at_is_a_phase_of_the_longer_schedule(photos_dir, style_path, tmp_path):
    """4 steps of a 6-step schedule, continued to 6, give the weights of the whole 6-step run."""
    whole = run_training(make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "a")), log=quiet)
    part_config = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "b", stop_at=4))
    part = run_training(part_config, log=quiet)
    assert part.step == 4 and load_checkpoint(part.checkpoint)["step"] == 4
    rest = make_config({}, {**part_config.to_dict(), "stop_at": 0})
    run_training(rest, resume=load_resume(part.resume_checkpoint), log=quiet)
    assert same_weights(whole.checkpoint, part.checkpoint)
    with pytest.raises(TextureNetsError, match="stop_at"):
        make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "c", stop_at=7))


def test_one_command_runs_every_phase_as_its_own_run(recipe, tmp_path, capsys):
    assert train_main(["--config", str(recipe)]) == 0
    folder = tmp_path / "ck"
    final, first, second = (load_checkpoint(folder / f"{name}.pt")
                            for name in ("stripes", "stripes_phase1", "stripes_phase2"))
    assert (first["step"], first["train"]["style_weight"], first["train"]["content_layers"]) == \
        (4, 1.5, ["relu1_1", "relu2_1"])
    assert (second["step"], second["train"]["learning_rate"], second["train"]["init_from"]) == \
        (2, 4e-3, str(folder / "stripes_phase1.pt"))
    assert (final["step"], final["train"]["style_weight"], total_steps(final)) == (3, 1.05, 9)
    # the same three runs, one by one, through the library: bit-identical weights
    values = load_config_file(str(recipe))
    phases = values.pop("phases")
    by_hand, previous = tmp_path / "by_hand", ""
    for number, phase in enumerate([*phases, {}], 1):
        name = f"stripes_phase{number}" if number <= len(phases) else "stripes"
        config = make_config({**values, **phase, "name": name, "init_from": previous, "checkpoint_dir": str(by_hand)})
        previous = str(run_training(config, log=quiet).checkpoint)
    assert same_weights(Path(previous), folder / "stripes.pt")
    assert "phase 3 of 3 (stripes)" in capsys.readouterr().out


def test_a_second_command_continues_where_the_first_stopped(recipe, tmp_path, capsys):
    assert train_main(["--config", str(recipe)]) == 0
    folder = tmp_path / "ck"
    kept = {p.name: p.read_bytes() for p in folder.glob("stripes_phase*.pt")}
    first_final = load_checkpoint(folder / "stripes.pt")["state_dict"]
    for name in ("stripes.pt", "stripes.resume.pt"):  # the last run lost (another machine, a crash)
        (folder / name).unlink()
    capsys.readouterr()
    assert train_main(["--config", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "phase 1 of 3 (stripes_phase1): done (step 4" in out and "phase 2 of 3 (stripes_phase2): done" in out
    assert {p.name: p.read_bytes() for p in folder.glob("stripes_phase*.pt")} == kept  # finished phases untouched
    again = load_checkpoint(folder / "stripes.pt")["state_dict"]
    assert all(torch.equal(again[k], first_final[k]) for k in again)
    assert train_main(["--config", str(recipe)]) == 0  # all done: nothing to run, nothing rewritten
    assert "phase 3 of 3 (stripes): done (step 3" in capsys.readouterr().out


def test_later_phases_grown_from_replaced_weights_are_not_reused(recipe, tmp_path, capsys):
    """Retraining an earlier phase (its files deleted) would leave later phases' files built on weights
    that no longer exist: one clear error instead of silently reusing (or replacing) them."""
    assert train_main(["--config", str(recipe)]) == 0
    folder = tmp_path / "ck"
    for path in folder.glob("stripes_phase1*"):
        path.unlink()
    later = {p.name: p.read_bytes() for p in folder.glob("stripes*.pt")}
    capsys.readouterr()
    assert train_main(["--config", str(recipe)]) == 2
    assert "delete stripes_phase2.*" in one_line_error(capsys, "train.py")
    assert all((folder / name).read_bytes() == data for name, data in later.items())  # nothing of theirs lost
    assert train_main(["--config", str(recipe), "--overwrite"]) == 0


@pytest.mark.parametrize("table,match", [
    ('[[phases]]\ntexture = ["other.png"]\n', "shares: set it at the top level"),
    ('[[phases]]\nstyle_wieght = 2\n', "did you mean style_weight"),
    ('[[phases]]\nstyle_weight = "x"\n', "style_weight: expected float"),
    ('phases = 3\n', "list of tables"),
])
def test_a_bad_phase_table_is_one_clear_error(recipe, tmp_path, capsys, table, match):
    text = recipe.read_text(encoding="utf-8").split("\n[[phases]]")[0]
    if table.startswith("phases"):
        text = table + text
    else:
        text += "\n" + table
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    assert train_main(["--config", str(bad)]) == 2
    assert match in one_line_error(capsys, "train.py")
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("flags", [["--resume"], ["--init_from", "x.pt"]])
def test_flags_that_would_break_the_chain_are_refused(recipe, tmp_path, capsys, flags):
    assert train_main(["--config", str(recipe), *flags]) == 2
    assert "run the same command again" in one_line_error(capsys, "train.py")
    assert not (tmp_path / "ck").exists()
