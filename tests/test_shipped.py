"""The trained styles shipped in texture_nets/styles/: each loads, stylizes (shape, range, determinism with a
seed), is small, is found by name, and was made by the recipe in configs/styles/ that bears its name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from texture_nets import TextureNetsError
from texture_nets.core.checkpoint import SHIPPED_DIR, load_checkpoint, load_generator, resolve_model
from texture_nets.inference.engine import stylize_tensor
from texture_nets.training.config import RECIPE_KEYS, make_config, recipe_differences, trained_settings
from texture_nets.training.recipes import load_config_file

from .conftest import smooth_image

ROOT = Path(__file__).resolve().parent.parent
ARTISTIC = ["mosaic", "candy", "starry_night", "the_scream", "udnie", "wave",
            "ulyanov_mosaic", "pleades", "ulyanov_starry", "turner"]
PHOTOGRAPHIC = ["winter", "lamplight"]  # photos as styles, for stylize.py --photorealistic
SHIPPED = ARTISTIC + PHOTOGRAPHIC


def test_every_style_is_shipped_with_its_recipe():
    assert SHIPPED_DIR == ROOT / "texture_nets" / "styles"  # inside the package: installed with it
    found = sorted(p.stem for p in SHIPPED_DIR.glob("*.pt") if not p.name.endswith(".resume.pt"))
    assert sorted(SHIPPED) == found
    recipes = sorted(p.stem for p in (ROOT / "configs" / "styles").glob("*.toml"))
    assert recipes == found


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    image = np.asarray(smooth_image(np.random.default_rng(5), 70, 45), dtype=np.float32) / 255
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)


@pytest.mark.parametrize("style", SHIPPED)
def test_shipped_checkpoint_stylizes(style, photo):
    path = SHIPPED_DIR / f"{style}.pt"
    assert path.stat().st_size < 10 * 2**20
    checkpoint = load_checkpoint(path)
    assert "resume" not in checkpoint  # no optimizer state in a shipped file
    assert checkpoint["style"]["name"] == style
    generator = load_generator(path)
    out = stylize_tensor(generator, photo, seed=3)
    assert out.shape == photo.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert out.std() > 0.02  # a picture, not a flat colour
    assert torch.equal(out, stylize_tensor(generator, photo, seed=3))
    assert not torch.equal(out, stylize_tensor(generator, photo, seed=4))  # the noise input matters
    assert (out - photo).abs().mean() > 0.03  # it changes the photo...
    other = torch.flip(photo, dims=[3])  # ...and follows it: another photo, same noise, another picture
    assert (stylize_tensor(generator, other, seed=3) - out).abs().mean() > 0.01


@pytest.mark.parametrize("style", SHIPPED)
def test_checkpoint_was_made_by_its_recipe(style):
    recipe = load_config_file(str(ROOT / "configs" / "styles" / f"{style}.toml"))
    checkpoint = load_checkpoint(SHIPPED_DIR / f"{style}.pt")
    train = checkpoint["train"]
    assert recipe_differences(recipe, train) == []
    # a run still in progress ships its best checkpoint so far (continued by scripts/retrain_styles.sh):
    # its recipe's header says at which step; the schedule is the recipe's whole one
    assert 0 < checkpoint["step"] <= train["num_iterations"]
    if checkpoint["step"] < train["num_iterations"]:
        header = (ROOT / "configs" / "styles" / f"{style}.toml").read_text(encoding="utf-8")
        assert f"step {checkpoint['step']} of {train['num_iterations']}" in header
    assert Path(recipe["texture"][0]).name == checkpoint["style"]["images"][0]["name"]


PHASED = [style for style in SHIPPED
          if "phases" in load_config_file(str(ROOT / "configs" / "styles" / f"{style}.toml"))]


@pytest.mark.parametrize("style", PHASED)
def test_each_phase_of_a_phased_recipe_made_its_committed_checkpoint(style):
    """The [[phases]] a recipe lists are the runs that trained the shipped style: each committed phase
    checkpoint (checkpoints/retrain/<style>_phase<k>.pt) holds the phase's settings, ended at its last
    step, and counts the steps of the phases before it, as the shipped checkpoint counts them all."""
    values = load_config_file(str(ROOT / "configs" / "styles" / f"{style}.toml"))
    phases, before = values.pop("phases"), 0
    for number, phase in enumerate(phases, 1):
        expected = make_config({**values, **phase})
        checkpoint = load_checkpoint(ROOT / "checkpoints" / "retrain" / f"{style}_phase{number}.pt")
        trained = trained_settings(checkpoint["train"])
        for key in RECIPE_KEYS:
            assert trained[key] == getattr(expected, key), (number, key)
        assert (checkpoint["step"], checkpoint.get("steps_before", 0)) == (expected.last_step, before), number
        before += checkpoint["step"]
    shipped = load_checkpoint(SHIPPED_DIR / f"{style}.pt")
    assert shipped["steps_before"] == before
    assert shipped["train"]["init_from"].endswith(f"{style}_phase{len(phases)}.pt")


def test_styles_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here: the shipped folder answers
    assert resolve_model("mosaic.pt") == SHIPPED_DIR / "mosaic.pt"
    assert resolve_model("candy") == SHIPPED_DIR / "candy.pt"
    mine = tmp_path / "checkpoints"
    mine.mkdir()
    (mine / "candy.pt").write_bytes((SHIPPED_DIR / "candy.pt").read_bytes())
    assert resolve_model("candy") == Path("checkpoints") / "candy.pt"  # the user's own folder comes first


@pytest.mark.parametrize("model,why", [("/nonexistent/dir/mosaic.pt", "no such file"), ("my_runs/candy", "no such file"),
                                       ("./wave", "no such file"), ("checkpoints/", "a folder, not a checkpoint file")])
def test_a_path_that_does_not_exist_is_not_taken_for_a_style_name(tmp_path, monkeypatch, model, why):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(TextureNetsError) as error:
        resolve_model(model)
    assert str(error.value) == f"model not found: {model} ({why})"
