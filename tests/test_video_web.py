"""POST /api/stylize_video (issue 16): a short clip in, the stylized clip out, with its audio; clips
over the length or size caps, broken uploads and hostile fields are refused cleanly (4xx, one line)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from texture_nets.video import probe  # noqa: E402
from texture_nets.web import WebConfig, create_app  # noqa: E402

from .test_video import moving_frames, write_clip  # noqa: E402
from .test_web import TINY_TRAINING, server_files  # noqa: E402,F401  (server_files: a fixture)


@pytest.fixture
def client(server_files):
    config = WebConfig(checkpoint_dir=str(server_files / "ck"), shipped=False, data_root=str(server_files / "data"),
                       vgg_weights="random", max_upload_mb=1, engine="torch", train_defaults=TINY_TRAINING,
                       max_concurrent=1, max_queue=4, max_video_seconds=2, max_video_size=48)
    with TestClient(create_app(config)) as test_client:
        yield test_client


def post(client, data: bytes, name: str = "clip.mp4", **fields):
    return client.post("/api/stylize_video", files={"file": (name, data, "video/mp4")},
                       data={"model": "stripes", **{k: str(v) for k, v in fields.items()}})


def test_a_clip_comes_back_stylized_with_its_frames_and_audio(client, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(8, 64, 48), fps=8)
    answer = post(client, clip.read_bytes())
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(answer.content)
    info = probe(out)
    assert (info.frames, info.width, info.height, info.audio) == (8, 48, 36, "aac")  # longer side capped at 48
    assert answer.headers["X-Video-Frames"] == "8" and answer.headers["X-Video-Audio"] == "copied"


def test_the_page_learns_the_servers_limits(client):
    """The page clamps its size menu for clips to what the server takes (GET /api/models)."""
    limits = client.get("/api/models").json()["limits"]
    assert (limits["max_video_size"], limits["max_video_seconds"], limits["max_upload_mb"]) == (48, 2, 1)


def test_a_gif_or_webm_can_be_asked_for(client, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(4, 32, 24), fps=8, audio=False)
    for fmt, kind in (("gif", "image/gif"), ("webm", "video/webm")):
        answer = post(client, clip.read_bytes(), format=fmt, temporal="noise")
        assert answer.status_code == 200 and answer.headers["content-type"] == kind
        out = tmp_path / f"out.{fmt}"
        out.write_bytes(answer.content)
        assert probe(out).width == 32


@pytest.mark.parametrize("make,fields,status,message", [
    (lambda p: write_clip(p / "long.mp4", moving_frames(30, 32, 24), fps=10).read_bytes(), {}, 413, "up to 2 s"),
    (lambda p: b"not a video", {}, 400, "not a video"),
    (lambda p: b"", {}, 400, "empty file"),
    (lambda p: write_clip(p / "c.mp4", moving_frames(2, 32, 24)).read_bytes(), {"format": "exe"}, 400, "format"),
    (lambda p: write_clip(p / "c.mp4", moving_frames(2, 32, 24)).read_bytes(), {"temporal": "x"}, 400, "temporal"),
    (lambda p: write_clip(p / "c.mp4", moving_frames(2, 32, 24)).read_bytes(), {"size": 4096}, 400, "size"),
    (lambda p: write_clip(p / "c.mp4", moving_frames(2, 32, 24)).read_bytes(), {"temporal_weight": "nan"}, 400,
     "temporal_weight"),
    (lambda p: write_clip(p / "c.mp4", moving_frames(2, 32, 24)).read_bytes(), {"model": "nope"}, 404, "nope"),
])
def test_bad_clips_and_fields_are_refused_cleanly(client, tmp_path, make, fields, status, message):
    answer = post(client, make(tmp_path), **fields)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]
    assert post(client, write_clip(tmp_path / "ok.mp4", moving_frames(2, 32, 24)).read_bytes()).status_code == 200
