"""The two command lines end to end in a temporary folder, and their error handling."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from texture_nets import load_checkpoint
from texture_nets.cli import stylize_main, train_main

from .conftest import as_argv, tiny_overrides

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def trained(photos_dir, style_path, tmp_path):
    """A tiny model trained through the CLI (CPU, random VGG): its checkpoint folder."""
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck")
    values.pop("device")
    assert train_main(as_argv(values) + ["--name", "stripes"]) == 0
    return tmp_path / "ck"


def test_train_cli_writes_checkpoints_and_cuda_falls_back(photos_dir, style_path, tmp_path, capsys):
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck")
    values.pop("device")
    assert train_main(as_argv(values) + ["--cuda"]) == 0
    out = capsys.readouterr()
    if not torch.cuda.is_available():
        assert "CUDA is not available" in out.out + out.err
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["stripes.pt", "stripes.resume.pt", "stripes.toml"]


def test_resume_flag_continues_and_extends_a_run(trained, capsys):
    assert train_main(["--resume", str(trained / "stripes.resume.pt"), "--num_iterations", "8",
                       "--checkpoint_dir", str(trained)]) == 0
    assert load_checkpoint(trained / "stripes.pt")["step"] == 8
    capsys.readouterr()
    code = train_main(["--resume", str(trained / "stripes.resume.pt"), "--image_size", "64"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot change image_size" in err and len(err.splitlines()) == 1
    code = train_main(["--resume", str(trained / "stripes.resume.pt"), "--val_dir", str(trained)])
    assert code == 2 and "cannot change val_dir" in capsys.readouterr().err  # it changes the training split


def test_resuming_a_checkpoint_older_than_a_setting(trained, tmp_path, capsys):
    """A checkpoint saved before a setting existed was trained at that setting's default."""
    old = torch.load(trained / "stripes.resume.pt", weights_only=False)
    del old["train"]["luminance_weight"]
    torch.save(old, tmp_path / "old.resume.pt")
    args = ["--resume", str(tmp_path / "old.resume.pt"), "--checkpoint_dir", str(tmp_path / "out"), "--dry_run"]
    assert train_main(args + ["--luminance_weight", "0"]) == 0  # the default: no change
    capsys.readouterr()
    assert train_main(args + ["--luminance_weight", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("(it was trained with luminance_weight=0.0)") and len(err.splitlines()) == 1


def test_stylize_file_folder_and_formats(trained, photos_dir, tmp_path, capsys):
    jpg = next(photos_dir.rglob("*.jpg"))
    out = tmp_path / "out.png"
    assert stylize_main(["--model", str(trained / "stripes.pt"), "--input", str(jpg), "--output", str(out)]) == 0
    with Image.open(out) as image, Image.open(jpg) as source:
        assert image.format == "PNG" and image.size == source.size
    # a name found in --checkpoint_dir, a folder in, a folder out, formats kept, sub-folders mirrored
    folder = tmp_path / "styled"
    assert stylize_main(["--model", "stripes", "--checkpoint_dir", str(trained), "--input", str(photos_dir),
                         "--output", str(folder), "--size", "50", "--noise_factor", "0"]) == 0
    for source in photos_dir.rglob("*.*"):
        target = folder / source.relative_to(photos_dir)
        with Image.open(target) as image:
            assert max(image.size) == 50 and image.format == {".jpg": "JPEG", ".png": "PNG"}[source.suffix]


def test_stylize_is_deterministic_with_a_seed(trained, photos_dir, tmp_path):
    src = next(photos_dir.rglob("*.png"))
    outs = []
    for i, seed in enumerate(["3", "3", "4"]):
        outs.append(tmp_path / f"o{i}.png")
        stylize_main(["--model", str(trained / "stripes.pt"), "--input", str(src), "--output", str(outs[-1]),
                      "--seed", seed, "--noise_factor", "2"])
    data = [Image.open(p).tobytes() for p in outs]
    assert data[0] == data[1] and data[0] != data[2]


@pytest.mark.parametrize("case", ["missing_model", "not_a_checkpoint", "missing_input", "corrupt_input", "bad_ext",
                                  "negative_noise", "output_under_a_file"])
def test_stylize_bad_input_is_one_line_and_writes_nothing(trained, photos_dir, tmp_path, capsys, case):
    model, src, out = str(trained / "stripes.pt"), str(next(photos_dir.rglob("*.png"))), tmp_path / "out" / "x.png"
    extra = []
    if case == "missing_model":
        model = str(tmp_path / "nope.pt")
    elif case == "not_a_checkpoint":
        model = str(tmp_path / "fake.pt")
        Path(model).write_bytes(b"fake")
    elif case == "missing_input":
        src = str(tmp_path / "nothing.jpg")
    elif case == "corrupt_input":
        src = str(tmp_path / "corrupt.jpg")
        Path(src).write_bytes(b"\xff\xd8\xff\xe0 broken")
    elif case == "bad_ext":
        out = tmp_path / "out" / "x.xyz"
    elif case == "negative_noise":
        extra = ["--noise_factor", "-1"]
    elif case == "output_under_a_file":
        (tmp_path / "out").write_text("a file where a folder should be")
    code = stylize_main(["--model", model, "--input", src, "--output", str(out)] + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("stylize.py: error:")
    assert not out.exists() and not (out.parent.is_dir() and any(out.parent.iterdir()))


@pytest.mark.parametrize("case,match", [("empty_dir", "no images"), ("missing_texture", "image not found"),
                                        ("corrupt_texture", "cannot read"), ("bad_config", "did you mean"),
                                        ("missing_resume", "checkpoint not found"), ("absurd", "batch_size")])
def test_train_bad_input_is_one_line(photos_dir, style_path, tmp_path, capsys, case, match):
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck")
    extra = []
    if case == "empty_dir":
        (tmp_path / "empty").mkdir()
        values["data_dir"] = str(tmp_path / "empty")
    elif case == "missing_texture":
        values["texture"] = [str(tmp_path / "no.jpg")]
    elif case == "corrupt_texture":
        (tmp_path / "bad.jpg").write_bytes(b"nope")
        values["texture"] = [str(tmp_path / "bad.jpg")]
    elif case == "bad_config":
        (tmp_path / "c.toml").write_text("learning_rat = 0.1\n")
        extra = ["--config", str(tmp_path / "c.toml")]
    elif case == "missing_resume":
        extra = ["--resume"]
    elif case == "absurd":
        values["batch_size"] = -3
    code = train_main(as_argv(values) + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and match in err
    assert not (tmp_path / "ck" / "stripes.pt").exists()


def test_dry_run_prints_the_resolved_config(photos_dir, style_path, capsys):
    assert train_main(["--data_dir", str(photos_dir), "--texture", str(style_path), "--config", "default",
                       "--dry_run", "--batch_size", "3"]) == 0
    out = capsys.readouterr().out
    assert "batch_size = 3" in out and 'content_layers = ["relu4_2"]' in out


def test_thin_scripts_run_as_documented(trained, photos_dir, tmp_path):
    src = next(photos_dir.rglob("*.jpg"))
    result = subprocess.run([sys.executable, str(ROOT / "stylize.py"), "--model", str(trained / "stripes.pt"),
                             "--input", str(src), "--output", str(tmp_path / "s.jpg")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.jpg").is_file()
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "--texture", str(src)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == \
        "train.py: error: no training photos: pass --data_dir FOLDER (or --mode texture)"


def test_stylize_engines_tiles_and_memory_limit_give_the_same_picture(trained, photos_dir, tmp_path, capsys):
    src = max(photos_dir.rglob("*.png"), key=lambda p: Image.open(p).size)
    variants = {"auto": [], "torch": ["--engine", "torch"], "torch tiled": ["--engine", "torch", "--tile", "32"],
                "auto tiled": ["--tile", "32"], "memory-limited": ["--max_memory", "0.000001"]}
    pictures = {}
    for name, flags in variants.items():
        out = tmp_path / f"{name}.png"
        assert stylize_main(["--model", str(trained / "stripes.pt"), "--input", str(src), "--output", str(out),
                             "--noise_factor", "1", *flags]) == 0
        pictures[name] = torch.from_numpy(np.asarray(Image.open(out), dtype=np.int16))
    for name, picture in pictures.items():
        assert (picture - pictures["torch"]).abs().max() <= 1, name  # rounding to 8 bits only
    for flags, message in ((["--tile", "8"], "--tile must be at least 32"), (["--max_memory", "0"], "--max_memory")):
        capsys.readouterr()
        assert stylize_main(["--model", str(trained / "stripes.pt"), "--input", str(src), *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
