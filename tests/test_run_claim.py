"""One run path: train.py and the web app's training job both claim a run's name (`<name>.lock`,
training/launch.py) before they write its files, so a command-line run and a web job of the same
name never both write them, whichever starts first."""

from __future__ import annotations

import threading

from texture_nets.cli import train_main
from texture_nets.training.config import make_config
from texture_nets.training.run_files import run_lock
from texture_nets.web import jobs as jobs_module
from texture_nets.web.jobs import Busy, TrainingJobs

from .conftest import as_argv, tiny_overrides


def names_files(folder, name: str) -> list[str]:
    return sorted(p.name for p in folder.glob(f"{name}.*") if not p.name.endswith(".lock"))


def test_a_web_job_is_refused_while_a_command_line_run_holds_the_name(photos_dir, style_path, tmp_path):
    folder = tmp_path / "ckpt"
    config = make_config(tiny_overrides(photos_dir, style_path, folder, name="shared_name"))
    jobs = TrainingJobs()
    with run_lock(folder, "shared_name"):  # what train.py holds while it trains
        try:
            jobs.start(config)
            raise AssertionError("the web job started while the name was held")
        except Busy as exc:
            assert "shared_name" in str(exc)
    assert jobs.status()["state"] == "idle"
    assert names_files(folder, "shared_name") == []


def test_a_command_line_run_is_refused_while_a_web_job_holds_the_name(photos_dir, style_path, tmp_path,
                                                                       monkeypatch, capsys):
    folder = tmp_path / "ckpt"
    overrides = tiny_overrides(photos_dir, style_path, folder, name="shared_name")
    training, release = threading.Event(), threading.Event()

    def held_run(config, **kwargs):  # the job's run, paused while it holds the name
        training.set()
        release.wait(30)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(jobs_module, "run_training", held_run)
    jobs = TrainingJobs()
    jobs.start(make_config(overrides))
    assert training.wait(30)
    try:
        assert train_main(as_argv(overrides)) == 2  # a user error: one line, exit status 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "shared_name" in err[0]
        assert names_files(folder, "shared_name") == []  # the command line wrote nothing
    finally:
        release.set()
        assert jobs.wait(30)
    assert jobs.status()["state"] == "failed"
    assert train_main(as_argv({**overrides, "num_iterations": 1})) == 0  # the name is free again
    assert "shared_name.pt" in names_files(folder, "shared_name")


def test_a_web_job_is_refused_a_name_whose_files_exist(photos_dir, style_path, tmp_path):
    folder = tmp_path / "ckpt"
    overrides = tiny_overrides(photos_dir, style_path, folder, name="shared_name", num_iterations=1)
    assert train_main(as_argv(overrides)) == 0
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    try:
        TrainingJobs().start(make_config(overrides))
        raise AssertionError("the web job started over another run's files")
    except Busy as exc:
        assert "shared_name" in str(exc)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
