"""POST /api/stylize_video: a short clip in, the stylized clip out, with its audio; clips
over the length or size caps, broken uploads and hostile fields are refused cleanly (4xx, one line)."""

from __future__ import annotations

import importlib

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from texture_nets.inference import video  # noqa: E402
from texture_nets.inference.video import probe  # noqa: E402
from texture_nets.web import (  # noqa: E402
    WebConfig,
    create_app,
    video_routes,  # noqa: E402
)
from texture_nets.web.limits import stylization_bytes  # noqa: E402

from .test_video import moving_frames, write_clip  # noqa: E402
from .test_web import TINY_TRAINING, server_files  # noqa: E402,F401  (server_files: a fixture)


def video_config(root, **overrides) -> WebConfig:
    """The tiny-model server's config for clips (2 s, 48 px), with `overrides`."""
    values = dict(checkpoint_dir=str(root / "ck"), shipped=False, data_root=str(root / "data"), vgg_weights="random",
                  max_upload_mb=1, engine="torch", train_defaults=TINY_TRAINING, max_concurrent=1, max_queue=4,
                  max_video_seconds=2, max_video_size=48)
    return WebConfig(**{**values, **overrides})


@pytest.fixture
def client(server_files):
    with TestClient(create_app(video_config(server_files))) as test_client:
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


def watch(monkeypatch, module, name: str) -> list:
    """Record each call of module.name (which still runs): the list of calls."""
    calls, original = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(a) or original(*a, **k))
    return calls


def test_frames_over_max_pixels_are_refused_from_the_header_before_any_is_decoded(server_files, tmp_path,
                                                                                 monkeypatch):
    """A small file can declare huge frames, which FFmpeg decodes at full size before they are shrunk
    to max_video_size: the frames' pixels are held to max_pixels (--max_megapixels), as photos are."""
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(2, 64, 48), audio=False).read_bytes()  # 3,072 pixels
    decoded, stylized = watch(monkeypatch, video, "_quarter_turns"), watch(monkeypatch, video_routes, "stylize_clip")
    with TestClient(create_app(video_config(server_files, max_pixels=3000))) as small:
        answer = post(small, clip)
        assert answer.status_code == 413
        assert answer.json()["detail"] == "the clip's frames are 64x48 pixels, over the limit of 0.003 megapixels"
        assert decoded == [] and stylized == []  # not one frame decoded (probing decodes the first for its rotation)
    with TestClient(create_app(video_config(server_files, max_pixels=3072))) as enough:
        assert post(enough, clip).status_code == 200 and len(stylized) == 1


def test_a_clip_over_the_memory_budget_is_refused_before_stylizing_with_the_size_that_fits(
        server_files, client, tmp_path, monkeypatch):
    """The per-request budget (--request_memory_gb) holds for clips as for photos (limits.plan_stylization):
    not just the memory the machine has free right now."""
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(2, 64, 48), audio=False).read_bytes()
    one_frame = stylization_bytes(client.app.state.store.generator("stripes"), 48, 36, None)  # at max_video_size
    stylized = watch(monkeypatch, video_routes, "stylize_clip")
    with TestClient(create_app(video_config(server_files, request_memory_gb=0.8 * one_frame / 2**30))) as tight:
        answer = post(tight, clip)
        assert answer.status_code == 413
        detail = answer.json()["detail"]
        assert answer.status_code == 413 and "memory budget" in detail and not stylized
        fitting = int(detail.split("size ≤ ")[1].split()[0])  # the size the message suggests
        assert 16 <= fitting < 48 and post(tight, clip, size=fitting).status_code == 200 and len(stylized) == 1


def test_a_clip_that_fits_the_budget_only_in_tiles_is_stylized_in_tiles(server_files, client, tmp_path, monkeypatch):
    """As for photos, frames whose one pass is over the budget go through the largest tile that fits."""
    stylize = importlib.import_module("texture_nets.inference.engine")  # the module (the package exports a function so named)
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(2, 320, 240), audio=False).read_bytes()
    generator = client.app.state.store.generator("stripes")
    one_pass, tiled = (stylization_bytes(generator, 320, 240, tile) for tile in (None, 128))
    assert tiled < one_pass
    budget_gb = (one_pass + tiled) / 2 / 2**30
    stylized, tiles = watch(monkeypatch, video_routes, "stylize_clip"), watch(monkeypatch, stylize, "_stylize_tiled")
    with TestClient(create_app(video_config(server_files, request_memory_gb=budget_gb, max_video_size=320))) as tight:
        answer = post(tight, clip)
    assert answer.status_code == 200 and answer.headers["X-Video-Size"] == "320x240"
    ((*_, options),) = stylized
    assert (options.tile, options.memory_limit) == (128, int(budget_gb * 2**30))
    assert tiles and {call[4] for call in tiles} == {128}  # every batch of frames in 128-pixel tiles
