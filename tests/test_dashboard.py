"""The Visdom dashboard: history bookkeeping, and whole training runs against a real Visdom server
(started by the fixture on a free port) read back through Visdom's own client API."""

from __future__ import annotations

import base64
import io
import sys
import time
import warnings

import pytest
import torch
from PIL import Image

from texture_nets import TextureNetsError, load_checkpoint
from texture_nets.cli import train_main
from texture_nets.training.config import make_config
from texture_nets.training.dashboard import DashboardWarning, History, plot_of, sample_grid
from texture_nets.training.loop import StepEvent
from texture_nets.training.run import load_resume, run_training

from .conftest import as_argv, tiny_overrides
from .visdom_server import VisdomServer, free_port, visdom_server  # noqa: F401  (fixture)

LOSS_WINDOWS = ("total", "style", "content", "tv")


def expected_steps(start: int, end: int, viz_every: int, val_every: int) -> list[float]:
    """Steps that get a training point: multiples of viz_every, validation steps, the last one."""
    return [float(s) for s in range(start + 1, end + 1) if s % viz_every == 0 or s % val_every == 0 or s == end]


def event(step, val=False, memory=None):
    losses = {"total": 3.0 / step, "content": 1.0, "style": 2.0 / step, "tv": 0.0, "style/relu1_1": 1.5 / step}
    return StepEvent(step, 10, losses, 0.01, 12.5, dict(losses) if val else None, (), memory)


def test_series_go_to_their_windows_and_traces():
    assert plot_of("train/total") == ("total", "train")
    assert plot_of("val/content") == ("content", "validation")
    assert plot_of("train/style/relu3_1") == ("style_layers", "relu3_1")
    assert plot_of("val/style/relu3_1") == ("style_layers", "relu3_1 validation")
    assert plot_of("learning_rate")[0] == "learning_rate" and plot_of("cuda_memory_mb")[0] == "cuda_memory"
    assert plot_of("train/output_tv") == ("tv", "train") and plot_of("train/tv") is None  # tv = weight × output_tv


def test_history_records_events_and_survives_a_checkpoint(tmp_path):
    history = History()
    for step in (2, 4):
        history.record(event(step, val=step == 4, memory=100.0 * step))
    assert history.series["train/total"] == [[2.0, 1.5], [4.0, 0.75]]
    assert history.series["val/style/relu1_1"] == [[4.0, 0.375]]
    assert history.series["cuda_memory_mb"] == [[2.0, 200.0], [4.0, 400.0]]
    assert history.since({"train/total": 1})["train/total"] == [[4.0, 0.75]]
    assert "train/total" not in history.since({"train/total": 2})
    torch.save({"history": history.state_dict()}, tmp_path / "h.pt")
    restored = History(torch.load(tmp_path / "h.pt", weights_only=True)["history"])
    assert restored.series == history.series


def test_sample_grid_puts_each_column_side_by_side_under_its_label():
    photos, styled = torch.zeros(2, 3, 8, 6), torch.ones(2, 3, 8, 6)
    styled[1, 0] = 0.5
    grid = sample_grid({"photo": photos, "noise 0": styled}, padding=2, label_height=0)
    assert grid.shape == (3, 2 * 8 + 2, 2 * 6 + 2) and grid.dtype.name == "uint8"
    assert (grid[:, :8, :6] == 0).all() and (grid[:, :8, 8:] == 255).all()
    assert (grid[0, 10:, 8:] == 128).all() and (grid[1, 10:, 8:] == 255).all()
    assert (grid[:, 8:10, :] == 255).all()  # the padding between rows
    labelled = sample_grid({"photo": torch.ones(1, 3, 40, 60), "noise 0.5": torch.ones(1, 3, 40, 60)}, label_height=16)
    assert labelled.shape == (3, 16 + 40, 2 * 60 + 4)
    assert (labelled[:, 16:, :60] == 255).all()  # the white photo, below its label
    assert (labelled[:, :16, :60] < 128).any() and (labelled[:, :16, 64:] < 128).any()  # dark text in both labels


def viz_values(photos_dir, style_path, folder, server, env, **extra):
    values = tiny_overrides(photos_dir, style_path, folder, viz_server=server.server, viz_port=server.port,
                            viz_env=env, viz_every=2, val_every=3, log_every=5, **extra)
    values.pop("device")
    return values


def test_training_with_viz_fills_every_window(photos_dir, style_path, tmp_path, visdom_server, capsys):
    values = viz_values(photos_dir, style_path, tmp_path / "ck", visdom_server, "fill", num_iterations=7,
                        tv_weight=1e-3)
    assert train_main(as_argv(values) + ["--viz"]) == 0
    assert "warning" not in capsys.readouterr().err
    windows = visdom_server.windows("fill")
    assert set(windows) == {"total", "style", "content", "tv", "style_layers", "learning_rate", "throughput",
                            "samples", "run"}  # no cuda_memory window on the CPU
    train_steps = expected_steps(0, 7, viz_every=2, val_every=3)
    assert train_steps == [2.0, 3.0, 4.0, 6.0, 7.0]
    for name in LOSS_WINDOWS:
        assert visdom_server.traces("fill", name) == {"train": train_steps, "validation": [3.0, 6.0, 7.0]}
        assert windows[name]["title"]
    layers = visdom_server.traces("fill", "style_layers")
    assert sorted(layers) == ["relu1_1", "relu1_1 validation", "relu2_1", "relu2_1 validation"]
    assert layers["relu2_1"] == train_steps and layers["relu2_1 validation"] == [3.0, 6.0, 7.0]
    assert visdom_server.traces("fill", "learning_rate") == {"learning rate": train_steps}
    assert visdom_server.traces("fill", "throughput") == {"images/s": train_steps}
    lr = windows["learning_rate"]["content"]["data"][0]["y"]
    assert lr[0] > lr[-1] > 0  # the cosine schedule, as sent

    styles = {t["name"]: t["line"] for t in windows["style_layers"]["content"]["data"]}
    assert styles["relu1_1"]["color"] == styles["relu1_1 validation"]["color"] != styles["relu2_1"]["color"]
    assert styles["relu1_1"]["dash"] == "solid" and styles["relu1_1 validation"]["dash"] == "dash"

    samples = windows["samples"]
    assert samples["type"] == "image"
    assert samples["title"] == "validation samples, step 7: photo | noise 0.1 (training) | noise 0 | noise 0.5 | noise 1"
    picture = Image.open(io.BytesIO(base64.b64decode(samples["content"]["src"].split(",", 1)[1])))
    assert picture.size == (5 * (32 + 4) - 4, 18 + 2 * (32 + 4) - 4)  # 5 columns, num_val=2 rows of 32 px

    run = windows["run"]["content"]
    assert "training photos</b></td><td>6<" in run and "validation photos</b></td><td>2<" in run
    assert "image_size = 32" in run and "cpu (" in run and "skipped files</b></td><td>0<" in run


def test_resumed_run_continues_its_plots(photos_dir, style_path, tmp_path, visdom_server):
    values = viz_values(photos_dir, style_path, tmp_path / "ck", visdom_server, "", num_iterations=6)
    values.pop("viz_env")
    assert train_main(as_argv(values) + ["--viz"]) == 0
    resume_file = tmp_path / "ck" / "stripes.resume.pt"
    run_id = load_resume(resume_file)["resume"]["run_id"]
    env = f"stripes_{run_id}"  # the default environment: style name + run id
    assert visdom_server.traces(env, "total")["train"] == expected_steps(0, 6, 2, 3)
    assert visdom_server.windows(env)["tv"]["content"]["data"][0]["y"][0] > 0  # measured, though tv_weight is 0

    assert train_main(["--resume", str(resume_file), "--num_iterations", "10", "--viz"]) == 0
    assert load_resume(resume_file)["resume"]["run_id"] == run_id
    assert visdom_server.traces(env, "total") == {"train": expected_steps(0, 10, 2, 3),
                                                  "validation": [3.0, 6.0, 9.0, 10.0]}

    visdom_server.client(env).delete_env(env)  # as after a server restart: redrawn from the checkpoint
    assert train_main(["--resume", str(resume_file), "--num_iterations", "12", "--viz"]) == 0
    assert visdom_server.traces(env, "total")["train"] == expected_steps(0, 12, 2, 3)
    assert visdom_server.traces(env, "learning_rate")["learning rate"] == expected_steps(0, 12, 2, 3)


def test_server_killed_mid_run_then_back(photos_dir, style_path, tmp_path):
    pytest.importorskip("visdom")
    server = VisdomServer(tmp_path / "visdom").start()
    lines: list[str] = []

    def on_event(event):
        if event.step == 4:
            server.stop()
            deadline = time.monotonic() + 20  # the test waits for the warning; training would not
            while not any(w.category is DashboardWarning for w in recorded):
                assert time.monotonic() < deadline, lines
                time.sleep(0.05)
        if event.step == 10:
            server.start()

    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=14, viz=True,
                            viz_server=server.server, viz_port=server.port, viz_env="killed", viz_every=1,
                            val_every=7, log_every=1)
    try:
        with warnings.catch_warnings(record=True) as recorded:  # on_event reads `recorded` too
            warnings.simplefilter("always")
            result = run_training(make_config({}, values), on_event=on_event, log=lines.append)
        assert result.step == 14 and load_checkpoint(result.checkpoint)["step"] == 14
        warned = [str(w.message) for w in recorded if w.category is DashboardWarning]
        assert len(warned) == 1 and f"127.0.0.1:{server.port} is not answering" in warned[0]
        assert any("Visdom server is back" in line for line in lines), lines
        # the restarted server started empty; everything was redrawn from the history, once
        assert server.traces("killed", "total") == {"train": [float(s) for s in range(1, 15)],
                                                    "validation": [7.0, 14.0]}
        assert "samples" in server.windows("killed")
    finally:
        server.stop()


def test_no_server_at_all_warns_once_and_trains(photos_dir, style_path, tmp_path, capsys):
    pytest.importorskip("visdom")
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck", viz_port=free_port(),
                            viz_server="http://127.0.0.1", num_iterations=8, log_every=1, viz_every=1)
    values.pop("device")
    assert train_main(as_argv(values) + ["--viz"]) == 0
    err = capsys.readouterr().err
    assert err.count("is not answering") == 1, err
    assert (tmp_path / "ck" / "stripes.pt").is_file()


def test_viz_without_visdom_is_a_one_line_error(photos_dir, style_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "visdom", None)  # import visdom → ImportError
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck")
    assert train_main(as_argv(values) + ["--viz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the visdom package" in err[0] and "pip install" in err[0]
    assert not (tmp_path / "ck").exists()  # failed before any work


def test_viz_options_are_checked():
    with pytest.raises(TextureNetsError, match="viz_port"):
        make_config({}, {"texture": ["a.jpg"], "data_dir": "x", "viz_port": 70000})
    with pytest.raises(TextureNetsError, match="viz_every"):
        make_config({}, {"texture": ["a.jpg"], "data_dir": "x", "viz_every": 0})
    with pytest.raises(TextureNetsError, match="viz_noise_factors"):
        make_config({}, {"texture": ["a.jpg"], "data_dir": "x", "viz_noise_factors": [-1.0]})


def test_a_window_closed_mid_run_is_redrawn_whole(photos_dir, style_path, tmp_path, visdom_server):
    """A window gone from the server (closed in the page, or a restart between two sends) is redrawn
    from the history with its options, not recreated from the newest points alone."""
    def on_event(event):
        if event.step == 4:
            deadline = time.monotonic() + 20
            while "style" not in visdom_server.windows("lost") or \
                    visdom_server.traces("lost", "style")["train"][-1:] != [4.0]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            visdom_server.client("lost").close(win="style", env="lost")
            assert "style" not in visdom_server.windows("lost")

    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=9, viz=True,
                            viz_server=visdom_server.server, viz_port=visdom_server.port, viz_env="lost",
                            viz_every=1, val_every=0, log_every=1)
    run_training(make_config({}, values), on_event=on_event, log=lambda line: None)
    windows = visdom_server.windows("lost")
    assert visdom_server.traces("lost", "style") == {"train": [float(s) for s in range(1, 10)]}
    assert windows["style"]["title"] == "style loss"  # its options came back too
    assert visdom_server.traces("lost", "total") == {"train": [float(s) for s in range(1, 10)]}


def test_ctrl_c_sends_the_last_points_and_the_resume_continues_them(photos_dir, style_path, tmp_path,
                                                                      visdom_server):
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=8, viz=True,
                            viz_server=visdom_server.server, viz_port=visdom_server.port, viz_env="ctrlc",
                            viz_every=1, val_every=0, log_every=1, checkpoint_every=0)

    def interrupt_at_5(event):
        if event.step == 5:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_training(make_config({}, values), on_event=interrupt_at_5, log=lambda line: None)
    assert visdom_server.traces("ctrlc", "total")["train"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    saved = load_resume(tmp_path / "ck" / "stripes.resume.pt")
    assert [p[0] for p in saved["resume"]["history"]["train/total"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
    run_training(make_config({}, values), resume=saved, log=lambda line: None)
    assert visdom_server.traces("ctrlc", "total")["train"] == [float(s) for s in range(1, 9)]


def test_a_server_that_is_not_visdom_is_an_outage_not_a_redraw_loop(photos_dir, style_path, tmp_path):
    """Another web server on the port (here: every request gets 404) must not be taken for Visdom."""
    import http.server
    import threading
    requests_seen = []

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            requests_seen.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=6, viz=True,
                            viz_server="http://127.0.0.1", viz_port=server.server_address[1], viz_every=1)
    started = time.monotonic()
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")
            run_training(make_config({}, values), log=lambda line: None)
    finally:
        server.shutdown()
    elapsed = time.monotonic() - started
    warned = [str(w.message) for w in recorded if w.category is DashboardWarning]
    assert len(warned) == 1 and "answered HTTP 404; is it a Visdom server?" in warned[0]
    # tried at start, once per 2-s retry while the run lasts (a few s; longer on a loaded machine) and
    # at close: no points resent in a loop
    assert len(requests_seen) <= 3 + elapsed / 2.0, (len(requests_seen), elapsed)
