"""What a careless or hostile user meets: a replaced output keeps its permissions, a write error names
the user's own path (never a temporary file), blend weights that overflow or hold empty items are
refused in one line, and the web app names an upload as the client sent it, never the server's files."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PIL import Image

from texture_nets import TextureNetsError
from texture_nets.cli import stylize_main
from texture_nets.core.images import save_image_atomic

from .conftest import smooth_image


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    smooth_image(np.random.default_rng(4), 48, 40).save(path)
    return path


def test_a_replaced_output_keeps_its_permissions(photo, tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"the user's earlier picture")
    os.chmod(out, 0o600)
    assert stylize_main(["--model", "mosaic", "--input", str(photo), "--output", str(out), "--size", "32"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert Image.open(out).size == (32, 27)


def test_a_write_error_names_the_users_path_not_a_temporary_file(photo, tmp_path, capsys):
    blocker = tmp_path / "somefile"
    blocker.write_text("a file, not a folder")
    target = blocker / "x.png"
    assert stylize_main(["--model", "mosaic", "--input", str(photo), "--output", str(target), "--size", "32"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0] and ".tmp" not in err[0]
    with pytest.raises(TextureNetsError, match="x.png") as raised:  # the Python API: our one exception type
        save_image_atomic(Image.open(photo), target)
    assert ".tmp" not in str(raised.value)


@pytest.mark.parametrize("blend,words", [("1e308,1e308", "overflows"), (",,", "empty item"), ("1,", "empty item")])
def test_blend_weights_that_overflow_or_hold_empty_items_are_refused(photo, tmp_path, capsys, blend, words):
    style = tmp_path / "style.png"
    smooth_image(np.random.default_rng(5), 48, 48).save(style)
    argv = ["--optimize", "--input", str(photo), "--style", str(style), "--style", str(style), "--style_blend",
            blend, "--vgg_weights", "random", "--steps", "1", "--output", str(tmp_path / "out.png")]
    try:
        status = stylize_main(argv)
    except SystemExit as exc:  # argparse refuses the flag's value itself
        status = exc.code
    assert status == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_the_video_route_names_the_upload_as_the_client_sent_it(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    from texture_nets.web import WebConfig

    from .live_server import LiveServer
    config = WebConfig(checkpoint_dir=str(tmp_path), engine="torch", data_root=str(tmp_path))
    with LiveServer(config) as server:
        response = httpx.post(f"{server.url}/api/stylize_video", data={"model": "mosaic"}, timeout=60,
                              files={"file": ("holiday.mp4", b"not a video at all" * 100, "video/mp4")})
    detail = response.json()["detail"]
    assert response.status_code == 400 and "holiday.mp4" in detail
    assert "texture_nets_video_" not in detail and "upload.mp4" not in detail and "/tmp" not in detail


def test_kill_during_a_video_leaves_nothing_partial(tmp_path):
    """SIGTERM (a scheduler, `kill`) ends a clip's stylization as Ctrl-C does: no temporary file left."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from .test_video import moving_frames, write_clip
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(240, 96, 64), audio=False)
    out = tmp_path / "out"
    script = Path(__file__).resolve().parent.parent / "stylize.py"
    process = subprocess.Popen([sys.executable, str(script), "--model", "mosaic", "--input", str(clip), "--output",
                                str(out / "styled.mp4"), "--batch_size", "1", "--engine", "torch"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.iterdir())) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the clip was done before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "stylize.py: interrupted"
    assert list(out.iterdir()) == []
