"""A user's files and runs are never lost, and absurd, non-finite or hostile values are refused in one
line before any work."""

import math
import os
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from texture_nets import TextureNetsError, TextureNetwork, load_checkpoint, load_generator, save_checkpoint
from texture_nets.cli import stylize_main, train_main
from texture_nets.core.checkpoint import GENERATOR_ARGS, make_checkpoint
from texture_nets.core.images import save_image_atomic
from texture_nets.core.networks import config_fields
from texture_nets.inference.engine import stylize_tensor
from texture_nets.training.run_files import run_lock

from .conftest import as_argv, tiny_overrides


def one_line_error(capsys, prog: str) -> str:
    """The error a command printed, checked to be one line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{prog}: error:"), err
    return err[0]


@pytest.fixture
def model(tmp_path) -> Path:
    """A tiny, randomly initialised generator saved as a checkpoint (no training needed)."""
    torch.manual_seed(0)
    net = TextureNetwork(num_scales=3, channels=4, noise_factor=0.3)
    checkpoint = make_checkpoint(net, style={"name": "stripes"}, train={}, step=1, losses={})
    return save_checkpoint(checkpoint, tmp_path / "ck" / "stripes.pt")


def edited_checkpoint(model: Path, folder: Path, name: str, edit) -> Path:
    """A copy of `model`'s checkpoint dict changed by `edit`, saved with torch.save as `name`."""
    checkpoint = torch.load(model, weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, folder / name)
    return folder / name


# --- 1. an output never replaces an input ------------------------------------------------------------

@pytest.mark.parametrize("case", ["same_path", "symlink", "dot_path", "folder_into_itself"])
def test_stylize_refuses_an_output_that_is_an_input(model, photos_dir, tmp_path, capsys, case):
    photo = next(photos_dir.rglob("*.png"))
    inputs, output = [str(photo)], str(photo)
    if case == "symlink":
        (tmp_path / "link.png").symlink_to(photo)
        inputs = [str(tmp_path / "link.png")]
    elif case == "dot_path":
        output = str(photo.parent / "." / ".." / photo.parent.name / photo.name)
    elif case == "folder_into_itself":
        inputs, output = [str(photos_dir)], str(photos_dir)
    before = {p: p.read_bytes() for p in photos_dir.rglob("*.*")}
    assert stylize_main(["--model", str(model), "--input", *inputs, "--output", output]) == 2
    assert "would overwrite the input" in one_line_error(capsys, "stylize.py")
    assert {p: p.read_bytes() for p in photos_dir.rglob("*.*")} == before


def test_optimize_refuses_to_write_over_its_style_image(photos_dir, style_path, capsys):
    photo = next(photos_dir.rglob("*.png"))
    before = style_path.read_bytes()
    code = stylize_main(["--optimize", "--style", str(style_path), "--vgg_weights", "random", "--steps", "1",
                         "--input", str(photo), "--output", str(style_path)])
    assert code == 2 and "would overwrite the input" in one_line_error(capsys, "stylize.py")
    assert style_path.read_bytes() == before


def test_features_refuses_to_write_over_its_input_or_beyond_memory(photos_dir, capsys):
    from texture_nets.cli import features_main
    photo = next(photos_dir.rglob("*.png"))
    before = photo.read_bytes()
    assert features_main(["--input", str(photo), "--vgg_weights", "random", "--output", str(photo)]) == 2
    assert "would overwrite the input" in one_line_error(capsys, "texture-nets features")
    assert photo.read_bytes() == before
    assert features_main(["--input", str(photo), "--vgg_weights", "random", "--size", "1000000"]) == 2
    assert "needs about" in one_line_error(capsys, "texture-nets features")



def test_an_output_extension_with_no_format_is_refused_before_stylizing(model, photos_dir, tmp_path, capsys,
                                                                          monkeypatch):
    calls = []
    monkeypatch.setattr(sys.modules["texture_nets.inference.engine"], "stylize_tensor", lambda *a, **k: calls.append(1))
    photo = next(photos_dir.rglob("*.png"))
    before = sorted(tmp_path.rglob("*"))
    for output in ("result", "result.txt"):
        assert stylize_main(["--model", str(model), "--input", str(photo), "--output", str(tmp_path / output)]) == 2
        assert "unknown image extension" in one_line_error(capsys, "stylize.py")
    assert not calls and sorted(tmp_path.rglob("*")) == before


def test_one_files_problem_in_a_folder_spares_the_others(model, photos_dir, tmp_path, capsys):
    photos = sorted(photos_dir.rglob("*.png"))[:2]
    folder = tmp_path / "in"
    folder.mkdir()
    for photo in photos:
        (folder / photo.name).write_bytes(photo.read_bytes())
    out = tmp_path / "out"
    (out / photos[0].name).mkdir(parents=True)  # the first output's name is taken by a folder: unwritable
    assert stylize_main(["--model", str(model), "--input", str(folder), "--output", str(out)]) != 0
    err = capsys.readouterr().err
    assert f"cannot write {out / photos[0].name}" in err and "Traceback" not in err
    assert Image.open(out / photos[1].name).size == Image.open(photos[1]).size  # the other photo is done

# --- 2. a new run never starts over another run's files; one name trains once at a time ---------------

def train_argv(photos_dir, style_path, folder, drop=()) -> list[str]:
    """train.py flags of a 2-step tiny run into `folder`, without the settings named in `drop`."""
    values = tiny_overrides(photos_dir, style_path, folder, num_iterations=2, val_every=0, checkpoint_every=0)
    return as_argv({key: value for key, value in values.items() if key not in drop})


def test_rerunning_a_run_without_resume_is_refused_until_overwrite(photos_dir, style_path, tmp_path, capsys):
    folder = tmp_path / "ck"
    argv = train_argv(photos_dir, style_path, folder)
    assert train_main(argv) == 0
    saved = {p.name: p.read_bytes() for p in folder.iterdir()}
    capsys.readouterr()
    assert train_main(argv) == 2  # the same command again: the resumable checkpoint is kept
    error = one_line_error(capsys, "train.py")
    assert "stripes.resume.pt" in error and all(flag in error for flag in ("--resume", "--name", "--overwrite"))
    (folder / "stripes.resume.pt").unlink()
    del saved["stripes.resume.pt"]
    assert train_main(argv) == 2  # a finished model alone is kept too
    assert "stripes.pt holds a trained model" in one_line_error(capsys, "train.py")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == saved
    assert train_main(["--resume", str(folder / "stripes.pt"), "--num_iterations", "3"]) == 0  # continues it
    assert load_checkpoint(folder / "stripes.pt")["step"] == 3
    assert train_main(argv + ["--overwrite"]) == 0  # starts over, from step 0, on request
    assert load_checkpoint(folder / "stripes.pt")["step"] == 2
    assert not (folder / "stripes.lock").exists()



def test_a_run_resumed_under_another_name_never_replaces_that_names_files(photos_dir, style_path, tmp_path,
                                                                           capsys):
    folder = tmp_path / "ck"
    argv = train_argv(photos_dir, style_path, folder)
    assert train_main(argv) == 0 and train_main(argv + ["--name", "other"]) == 0
    saved = {p.name: p.read_bytes() for p in folder.iterdir()}
    capsys.readouterr()
    assert train_main(["--resume", str(folder / "stripes.resume.pt"), "--name", "other", "--num_iterations", "3"]) == 2
    assert "other.resume.pt holds the progress of a run named 'other'" in one_line_error(capsys, "train.py")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == saved
    (folder / "other.toml").write_text("# my recipe\nstyle_weight = 2.0\n")  # a user's file, not a run's record
    (folder / "other.pt").unlink(), (folder / "other.resume.pt").unlink()
    assert train_main(["--resume", str(folder / "stripes.resume.pt"), "--name", "other", "--num_iterations", "3"]) == 2
    assert "other.toml is not the settings record a run writes" in one_line_error(capsys, "train.py")
    assert (folder / "other.toml").read_text() == "# my recipe\nstyle_weight = 2.0\n"
    (folder / "other.toml").unlink()  # what is left of run "other" is gone: the name is free
    assert train_main(["--resume", str(folder / "stripes.resume.pt"), "--name", "other", "--num_iterations", "3"]) == 0
    assert load_checkpoint(folder / "other.pt")["step"] == 3 and (folder / "other.toml").read_text().startswith(
        "# The resolved settings of training run 'other'")


def test_continuing_from_behind_the_runs_own_progress_is_refused_until_overwrite(photos_dir, style_path, tmp_path,
                                                                                capsys):
    from texture_nets.training.config import make_config
    from texture_nets.training.run import run_training
    folder = tmp_path / "ck"
    values = tiny_overrides(photos_dir, style_path, folder, num_iterations=6, checkpoint_every=2, val_every=0)

    def interrupt(event):
        if event.step == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):  # interrupted at step 3: stripes.pt holds step 2, the resume file 3
        run_training(make_config({}, values), on_event=interrupt, log=lambda *_: None)
    later = (folder / "stripes.resume.pt").read_bytes()
    assert train_main(["--resume", str(folder / "stripes.pt")]) == 2
    error = one_line_error(capsys, "train.py")
    assert "stripes.resume.pt holds later progress of this run (3 steps against 2" in error and "--overwrite" in error
    assert (folder / "stripes.resume.pt").read_bytes() == later
    assert train_main(["--resume", str(folder / "stripes.resume.pt")]) == 0  # from its own progress: exact
    assert load_checkpoint(folder / "stripes.pt")["step"] == 6
    capsys.readouterr()



def test_a_run_continues_only_against_the_style_image_it_trained_on(photos_dir, style_path, tmp_path, capsys):
    folder = tmp_path / "ck"
    assert train_main(train_argv(photos_dir, style_path, folder)) == 0
    moved = tmp_path / "elsewhere" / style_path.name
    moved.parent.mkdir()
    moved.write_bytes(style_path.read_bytes())
    other = tmp_path / "other.png"
    Image.open(style_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other)
    saved = {p.name: p.read_bytes() for p in folder.iterdir()}
    capsys.readouterr()
    resume = ["--resume", str(folder / "stripes.resume.pt"), "--num_iterations", "3"]
    assert train_main(resume + ["--texture", str(other)]) == 2
    assert "other.png is not the style image" in one_line_error(capsys, "train.py")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == saved
    assert train_main(resume + ["--texture", str(moved)]) == 0  # the same image where it is now
    assert load_checkpoint(folder / "stripes.pt")["step"] == 3

def test_resuming_a_finished_run_has_nothing_to_do_and_leaves_its_files(photos_dir, style_path, tmp_path, capsys):
    folder = tmp_path / "ck"
    assert train_main(train_argv(photos_dir, style_path, folder)) == 0
    saved = {p.name: p.read_bytes() for p in folder.iterdir()}
    capsys.readouterr()
    assert train_main(["--resume", str(folder / "stripes.resume.pt")]) == 0
    assert "stripes: already trained to step 2" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == saved  # losses and dates not rewritten

def test_a_name_in_training_is_locked_and_a_stale_lock_is_taken_over(photos_dir, style_path, tmp_path, capsys):
    folder = tmp_path / "ck"
    argv = train_argv(photos_dir, style_path, folder)
    with run_lock(folder, "stripes") as lock:  # as another run of this name, still training
        assert lock.read_text().split()[0] == str(os.getpid())
        assert train_main(argv) == 2
        assert "already running" in one_line_error(capsys, "train.py")
        assert train_main(argv + ["--overwrite"]) == 2  # --overwrite never overrides a live run
        capsys.readouterr()
    assert not lock.exists() and not folder.exists()  # released; the folder it made, left empty, removed
    folder.mkdir()
    (folder / "stripes.lock").write_text(f"{2**22 + 1} {os.uname().nodename} 1\n")  # a PID above any pid_max
    assert train_main(argv) == 0
    assert not (folder / "stripes.lock").exists()
    (folder / "other.lock").write_text(f"{os.getpid()} {os.uname().nodename} 1\n")  # this PID, but reused
    assert train_main(argv + ["--name", "other"]) == 0


def test_two_runs_meeting_one_stale_lock_never_both_take_it(tmp_path, monkeypatch):
    """Both runs judge the lock stale at the same moment (a barrier inside the judgement): only one
    may take it over; the other is refused as the new owner's run is live."""
    import threading

    import texture_nets.training.run_files as run_files
    lock = tmp_path / "stripes.lock"
    lock.write_text(f"{2**22 + 1} {os.uname().nodename} 1\n")  # a dead run's
    judged, real_alive = threading.Barrier(2), run_files.owner_alive

    def alive_after_both_judged(owner):
        verdict = real_alive(owner)
        try:
            judged.wait(timeout=2)  # the other run reaches its judgement too, if it can
        except threading.BrokenBarrierError:
            pass
        return verdict

    monkeypatch.setattr(run_files, "owner_alive", alive_after_both_judged)
    holding, refused, go = [], [], threading.Event()

    def run():
        try:
            with run_lock(tmp_path, "stripes"):
                holding.append(1)
                go.wait(5)
        except TextureNetsError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(holding) + len(refused) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    go.set()
    for thread in threads:
        thread.join()
    assert len(holding) == 1 and len(refused) == 1 and "already running" in refused[0]
    assert not lock.exists()  # the one holder released it


def test_a_dead_runs_lock_still_held_by_its_exiting_workers_is_waited_for(tmp_path):
    """The flock is shared with a run's forked DataLoader workers, which outlive a killed run for a
    moment: a lock naming a dead owner whose flock is still held is waited for, not refused."""
    import subprocess
    lock = tmp_path / "stripes.lock"
    lock.write_text(f"{2**22 + 1} {os.uname().nodename} 1\n")  # a dead run's
    worker = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(1.5)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "held"
    started = time.monotonic()
    with run_lock(tmp_path, "stripes"):
        waited = time.monotonic() - started
        assert worker.poll() is not None and lock.read_text().split()[0] == str(os.getpid())
    worker.wait()
    assert 0.5 < waited < 10


def test_without_flock_the_owner_written_in_the_lock_decides(tmp_path, monkeypatch):
    """On a file system without flock: a live owner or a new empty lock (its creator writing it) is
    refused; a dead owner or an empty lock left for minutes is taken over."""
    import errno

    import texture_nets.training.run_files as run_files

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(run_files.fcntl, "flock", no_flock)
    lock = tmp_path / "stripes.lock"
    for text, age, taken in [(f"{os.getpid()} {os.uname().nodename} {run_files.process_start(os.getpid())}\n", 0, False),
                             ("", 0, False), ("", 600, True), (f"{2**22 + 1} {os.uname().nodename} 1\n", 0, True)]:
        lock.write_text(text)
        os.utime(lock, (time.time() - age, time.time() - age))
        if taken:
            with run_lock(tmp_path, "stripes"):
                assert lock.read_text().split()[0] == str(os.getpid())
        else:
            with pytest.raises(TextureNetsError, match="already running"):
                with run_lock(tmp_path, "stripes"):
                    pass
            assert lock.read_text() == text  # left to its owner


def test_the_lock_is_released_when_a_run_fails(photos_dir, style_path, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    folder = tmp_path / "ck"
    assert train_main(train_argv(photos_dir, style_path, folder) + ["--data_dir", str(tmp_path / "empty")]) == 2
    assert "no images" in one_line_error(capsys, "train.py")
    assert not (folder / "stripes.lock").exists()


# --- 6. a checkpoint's constructor arguments and weights are checked before anything is built ----------

BROKEN = {
    "num_scales=1000": lambda c: c["model"].update(num_scales=1000),
    "channels=-5": lambda c: c["model"].update(channels=-5),
    "channels='abc'": lambda c: c["model"].update(channels="abc"),
    "channels=True": lambda c: c["model"].update(channels=True),
    "noise_factor=nan": lambda c: c["model"].update(noise_factor=math.nan),
    "texture_only without noise": lambda c: c["model"].update(texture_only=True, noise_channels=0),
    "unknown arch": lambda c: c.update(arch="transformer"),
    "no state_dict": lambda c: c.pop("state_dict"),
    "state_dict a list": lambda c: c.update(state_dict=[1, 2]),
    "NaN weights": lambda c: c["state_dict"]["to_rgb.weight"].fill_(math.nan),
    "wrong shapes": lambda c: c["model"].update(channels=8),
    "missing weights": lambda c: c["state_dict"].pop("to_rgb.bias"),
    "step 'x'": lambda c: c.update(step="x"),
    "steps_before -3": lambda c: c.update(steps_before=-3),
    "style a string": lambda c: c.update(style="x"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_damaged_checkpoint_is_one_clear_error(model, tmp_path, capsys, photos_dir, case):
    path = edited_checkpoint(model, tmp_path, "broken.pt", BROKEN[case])
    with pytest.raises(TextureNetsError, match="broken.pt") as caught:  # the library, and so the web app
        load_generator(path)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    out = tmp_path / "out.png"
    photo = next(photos_dir.rglob("*.png"))
    assert stylize_main(["--model", str(path), "--input", str(photo), "--output", str(out)]) == 2
    one_line_error(capsys, "stylize.py")
    assert not out.exists()



DAMAGED_RESUME = {
    "resume a list": lambda c: c.update(resume=[1]),
    "no optimizer": lambda c: c["resume"].pop("optimizer"),
    "optimizer without groups": lambda c: c["resume"]["optimizer"].pop("param_groups"),
    "another network's optimizer": lambda c: c["resume"]["optimizer"]["param_groups"][0].update(params=[0]),
    "history of strings": lambda c: c["resume"].update(history={"train/total": ["x"]}),
    "run id a number": lambda c: c["resume"].update(run_id=7),
}


@pytest.mark.parametrize("case", DAMAGED_RESUME)
def test_a_damaged_resume_checkpoint_is_one_line_and_nothing_is_written(photos_dir, style_path, tmp_path, capsys,
                                                                         case):
    folder = tmp_path / "ck"
    assert train_main(train_argv(photos_dir, style_path, folder)) == 0
    broken = edited_checkpoint(folder / "stripes.resume.pt", folder, "stripes.resume.pt", DAMAGED_RESUME[case])
    saved = {p.name: p.read_bytes() for p in folder.iterdir()}
    capsys.readouterr()
    assert train_main(["--resume", str(broken), "--num_iterations", "4"]) == 2
    error = one_line_error(capsys, "train.py")
    assert "a damaged" in error and "Traceback" not in error
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == saved

def test_checked_generator_arguments_are_the_constructors():
    for arch, allowed in GENERATOR_ARGS.items():
        assert set(allowed) == config_fields(arch)


# --- 7. non-finite values are refused everywhere -------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e9"])
def test_stylize_refuses_a_non_finite_or_absurd_noise_factor(model, photos_dir, tmp_path, capsys, value):
    out = tmp_path / "out.png"
    code = stylize_main(["--model", str(model), "--input", str(next(photos_dir.rglob("*.png"))),
                         "--output", str(out), "--noise_factor", value])
    assert code == 2 and "--noise_factor" in one_line_error(capsys, "stylize.py") and not out.exists()
    with pytest.raises(TextureNetsError, match="noise_factor"):
        stylize_tensor(load_generator(model), torch.rand(1, 3, 16, 16), noise_factor=float(value))


@pytest.mark.parametrize("flags,toml,match", [
    (["--noise_factor", "nan"], "", "noise_factor must be a finite number"),
    (["--learning_rate", "inf"], "", "learning_rate must be a finite number"),
    (["--style_weight", "nan"], "", "style_weight must be a finite number"),
    ([], "noise_factor = nan\n", "noise_factor must be a finite number"),
    ([], "content_weight = -inf\n", "content_weight must be a finite number"),
])
def test_train_refuses_non_finite_values(photos_dir, style_path, tmp_path, capsys, flags, toml, match):
    extra = flags
    if toml:
        (tmp_path / "c.toml").write_text(toml)
        extra = ["--config", str(tmp_path / "c.toml")]
    assert train_main(train_argv(photos_dir, style_path, tmp_path / "ck") + extra) == 2
    assert match in one_line_error(capsys, "train.py")
    assert not (tmp_path / "ck").exists()


# --- 8. sizes are checked against memory before any work ---------------------------------------------

@pytest.mark.parametrize("flags,toml,match", [
    (["--image_size", "100000"], "", "image_size must be at most"),
    (["--photo_size", "99999999999999999999"], "", "photo_size must be at most"),
    (["--batch_size", "1000000"], "", "batch_size must be at most"),
    (["--num_scales", "64"], "", "num_scales must be at most 12"),
    (["--name", "../../elsewhere"], "", "no '/'"),
    ([], "image_size = 1e23\n", "expected int"),
    ([], "image_size = 9223372036854775807\n", "image_size must be at most"),
])
def test_train_refuses_absurd_sizes_at_once(photos_dir, style_path, tmp_path, capsys, flags, toml, match):
    extra = flags
    if toml:
        (tmp_path / "c.toml").write_text(toml)
        extra = ["--config", str(tmp_path / "c.toml")]
    argv = train_argv(photos_dir, style_path, tmp_path / "ck", drop=("image_size",))
    assert train_main(argv + extra) == 2
    assert match in one_line_error(capsys, "train.py")
    assert not (tmp_path / "ck").exists()


def test_train_refuses_a_batch_larger_than_memory(photos_dir, style_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("texture_nets.training.launch.device_memory", lambda device: 2**30)  # 1 GB free
    argv = train_argv(photos_dir, style_path, tmp_path / "ck") + ["--image_size", "1024", "--batch_size", "8"]
    assert train_main(argv) == 2
    error = one_line_error(capsys, "train.py")
    assert "8 crops of 1024x1024" in error and "1.0 GB available" in error and "--batch_size" in error
    assert not (tmp_path / "ck").exists()


def test_stylize_refuses_a_picture_larger_than_memory_before_decoding(model, photos_dir, tmp_path, capsys,
                                                                      monkeypatch):
    photo, out = next(photos_dir.rglob("*.png")), tmp_path / "out.png"
    decoded = []
    monkeypatch.setattr(sys.modules["texture_nets.inference.engine"], "load_image", decoded.append)  # the module, not the function
    assert stylize_main(["--model", str(model), "--input", str(photo), "--output", str(out),
                         "--size", "1000000"]) == 2  # the real memory: a terapixel never fits
    error = one_line_error(capsys, "stylize.py")
    assert str(photo) in error and "1000000x" in error and "pass --size" in error
    assert not decoded and not out.exists()
    code = stylize_main(["--optimize", "--style", str(photo), "--vgg_weights", "random", "--input", str(photo),
                         "--output", str(out), "--size", "100000"])
    assert code == 2 and "optimising 100000x" in one_line_error(capsys, "stylize.py")


def test_stylize_warns_when_a_picture_takes_most_of_the_memory(model, photos_dir, tmp_path, capsys, monkeypatch):
    from texture_nets.inference.engine import stylize_bytes
    photo, out = next(photos_dir.rglob("*.png")), tmp_path / "out.png"
    width, height = Image.open(photo).size
    need = stylize_bytes(load_generator(model), height, width)
    monkeypatch.setattr("texture_nets.cli.stylize.device_memory", lambda device: int(need * 1.5))
    assert stylize_main(["--model", str(model), "--input", str(photo), "--output", str(out)]) == 0
    assert "takes about" in capsys.readouterr().err and out.is_file()
    monkeypatch.setattr("texture_nets.cli.stylize.device_memory", lambda device: need // 2)
    out.unlink()
    assert stylize_main(["--model", str(model), "--input", str(photo), "--output", str(out)]) == 2
    assert "needs about" in one_line_error(capsys, "stylize.py") and not out.exists()


def test_pictures_over_pillows_bomb_guard_are_judged_by_memory_in_the_command_lines(model, photos_dir, tmp_path,
                                                                                    capsys, monkeypatch):
    """Pillow refuses a picture over twice Image.MAX_IMAGE_PIXELS whatever the memory (179 MP by
    default): stylize.py decodes the user's own file and judges it by memory instead; elsewhere
    (training's style images and photos) the refusal is one line in the project's words."""
    from texture_nets.core.images import load_image
    photo, out = next(photos_dir.rglob("*.png")), tmp_path / "out.png"
    width, height = Image.open(photo).size
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", width * height // 4)  # the photo is "over 179 MP"
    with pytest.raises(TextureNetsError, match="over 0 megapixels.*shrink it first") as refused:
        load_image(photo)
    assert str(photo) in str(refused.value) and "\n" not in str(refused.value)
    assert stylize_main(["--model", str(model), "--input", str(photo), "--output", str(out)]) == 0
    assert Image.MAX_IMAGE_PIXELS == width * height // 4  # the guard is back once the command is done
    # the full-size decode is judged against the host's memory, before a pixel is decoded
    decoded = []
    monkeypatch.setattr(sys.modules["texture_nets.inference.engine"], "load_image", decoded.append)
    monkeypatch.setattr(sys.modules["texture_nets.core.images"], "available_memory", lambda: width * height)
    assert stylize_main(["--model", str(model), "--input", str(photo), "--output", str(tmp_path / "b.png"),
                         "--size", "16"]) == 2
    error = one_line_error(capsys, "stylize.py")
    assert f"decoding {width}x{height} pixels" in error and "shrink the picture first" in error and not decoded
    # --optimize decodes its style images at full size too (style_size shrinks them after)
    assert stylize_main(["--optimize", "--style", str(photo), "--vgg_weights", "random", "--input", str(photo),
                         "--output", str(tmp_path / "c.png"), "--size", "16"]) == 2
    assert f"{photo}: decoding" in one_line_error(capsys, "stylize.py")
    monkeypatch.undo()
    assert Image.open(out).size == (width, height)


def test_the_decode_estimate_counts_16_bit_pictures_wider(tmp_path, monkeypatch):
    """A 16-bit picture goes through float64 on its way to RGB: refused where an 8-bit one of the same
    size fits (the header's mode, not only its size, is read)."""
    from texture_nets.core.images import decodable_dimensions
    rgb, wide = tmp_path / "rgb.png", tmp_path / "wide.png"
    Image.new("RGB", (64, 32)).save(rgb)
    Image.new("I;16", (64, 32)).save(wide)
    monkeypatch.setattr(sys.modules["texture_nets.core.images"], "available_memory", lambda: 64 * 32 * 24)
    assert decodable_dimensions(rgb) == (64, 32)
    with pytest.raises(TextureNetsError, match="decoding 64x32 pixels"):
        decodable_dimensions(wide)


def test_the_tiled_estimate_matches_a_measurement():
    from texture_nets.inference.tiling import tiled_bytes
    paper = TextureNetwork(num_scales=6, channels=8)  # the shipped styles' generator
    estimate = tiled_bytes(paper, 3000, 4000, 1024)  # measured peak: 3.4 GB with the interpreter (0.35 GB)
    assert 3.0 * 2**30 < estimate < 4.0 * 2**30
    assert tiled_bytes(paper, 100, 100, 10**9) < 2**30  # a tile never exceeds the picture


# --- 9. one line instead of tracebacks -------------------------------------------------------------------

def test_a_folder_of_corrupt_photos_with_loader_workers_is_one_line(style_path, tmp_path, capsys):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    for i in range(6):
        (folder / f"c{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    argv = train_argv(folder, style_path, tmp_path / "ck") + ["--num_workers", "2"]
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train.py: error: none of the") and "could be read" in err[-1]
    assert all(line.startswith("warning: skipping unreadable image") for line in err[:-1])  # the held-out photos


def test_ctrl_c_in_stylize_is_one_line_exit_130_and_leaves_no_temporary_file(model, photos_dir, tmp_path, capsys,
                                                                                monkeypatch):
    photo, out = next(photos_dir.rglob("*.png")), tmp_path / "out" / "styled.png"
    real_save = Image.Image.save

    def interrupted_save(image, fp, *args, **kwargs):
        real_save(image, fp, *args, **kwargs)  # the temporary file is complete when Ctrl-C comes
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    assert stylize_main(["--model", str(model), "--input", str(photo), "--output", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "stylize.py: interrupted"
    assert list(out.parent.iterdir()) == []


def test_write_errors_name_the_users_path_not_a_temporary_file(model, tmp_path):
    (tmp_path / "taken.png").mkdir()  # a folder where the picture should go
    with pytest.raises(TextureNetsError, match=r"^cannot write .*taken\.png \(") as caught:
        save_image_atomic(Image.new("RGB", (4, 4)), tmp_path / "taken.png")
    assert ".tmp" not in str(caught.value) and "taken.png." not in str(caught.value)
    (tmp_path / "taken.pt").mkdir()
    with pytest.raises(TextureNetsError, match=r"^cannot write .*taken\.pt \("):
        save_checkpoint(load_checkpoint(model), tmp_path / "taken.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "taken.png", "taken.pt"]


# --- probes: empty, huge and wrong values of the flags --------------------------------------------------

@pytest.mark.parametrize("flags,match", [
    (["--input", ""], "--input is empty"),
    (["--output", ""], "--output is empty"),
    (["--checkpoint_dir", ""], "--checkpoint_dir is empty"),
    (["--max_memory", "1e308"], "--max_memory must be in"),
    (["--max_memory", "nan"], "--max_memory must be in"),
])
def test_stylize_refuses_empty_paths_and_absurd_flags(model, photos_dir, tmp_path, capsys, flags, match):
    base = {"--model": str(model), "--input": str(next(photos_dir.rglob("*.png"))), "--output": str(tmp_path / "o.png")}
    base.update(dict(zip(flags[::2], flags[1::2])))
    assert stylize_main([item for pair in base.items() for item in pair]) == 2
    assert match in one_line_error(capsys, "stylize.py")
    assert not (tmp_path / "o.png").exists()


def test_train_refuses_an_empty_resume_or_texture(photos_dir, style_path, tmp_path, capsys):
    argv = train_argv(photos_dir, style_path, tmp_path / "ck")
    assert train_main(argv + ["--resume", ""]) == 2
    assert "--resume is empty" in one_line_error(capsys, "train.py")
    assert train_main(argv + ["--texture", " "]) == 2
    assert "--texture is empty" in one_line_error(capsys, "train.py")
    assert train_main(argv + ["--config", ""]) == 2
    assert "config not found" in one_line_error(capsys, "train.py")
    assert not (tmp_path / "ck").exists()


def test_kill_saves_a_resumable_checkpoint_like_ctrl_c(photos_dir, style_path, tmp_path):
    """`kill PID` (SIGTERM) of a run in the background (where SIGINT is ignored) stops it as Ctrl-C
    does: exit 130, one line, and a resume file at the step it reached."""
    import signal
    import subprocess
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=1_000_000, log_every=1,
                            checkpoint_every=0, val_every=0)
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent.parent / "train.py"), *as_argv(values)],
                               cwd=tmp_path,
                               stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    seen = ""
    while "stripes:" not in seen:  # the progress bar: training has started
        chunk = process.stderr.read(64)
        assert chunk, seen
        seen += chunk
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, seen + rest
    assert "train.py: interrupted" in rest and "Traceback" not in rest
    saved = torch.load(tmp_path / "ck" / "stripes.resume.pt", weights_only=False)
    assert saved["step"] >= 1 and "optimizer" in saved["resume"]
