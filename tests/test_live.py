"""The live view's server side (/api/live over a WebSocket, the model's ONNX for the browser) and a
clip's streamed progress, against the app in process (FastAPI's client) and under uvicorn for the
disconnect. The page itself, in a real browser with a fake camera, is in test_live_browser.py."""

from __future__ import annotations

import base64
import io
import json
import struct
import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("websockets")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from texture_nets.core.checkpoint import load_generator  # noqa: E402
from texture_nets.core.images import image_to_tensor, tensor_to_image  # noqa: E402
from texture_nets.inference.engine import Engine  # noqa: E402
from texture_nets.inference.options import StylizeOptions  # noqa: E402
from texture_nets.web import WebConfig, create_app  # noqa: E402
from texture_nets.web import live as live_module  # noqa: E402

from .conftest import smooth_image  # noqa: E402
from .test_video import moving_frames, write_clip  # noqa: E402
from .test_web import TINY_TRAINING, server_files  # noqa: E402,F401  (server_files: a fixture)


def config_for(root, **overrides) -> WebConfig:
    return WebConfig(checkpoint_dir=str(root / "ck"), shipped=False, data_root=str(root / "data"),
                     vgg_weights="random", engine="torch", train_defaults=TINY_TRAINING, **overrides)


@pytest.fixture
def client(server_files):
    with TestClient(create_app(config_for(server_files, max_live_sessions=2))) as test_client:
        yield test_client


def frame(ident: int, image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return struct.pack("<I", ident) + buffer.getvalue()


def camera_image(seed: int = 1, width: int = 64, height: int = 48) -> Image.Image:
    return smooth_image(np.random.default_rng(seed), width, height)


def stylized(socket, ident: int, image: Image.Image) -> np.ndarray:
    """Send a frame, read its answer (id checked) and its timings line; the picture as an array."""
    socket.send_bytes(frame(ident, image, "PNG"))
    reply = socket.receive_bytes()
    timings = socket.receive_json()
    assert struct.unpack("<I", reply[:4])[0] == ident == timings["id"]
    return np.asarray(Image.open(io.BytesIO(reply[4:])).convert("RGB"), dtype=np.float32)


def test_a_live_frame_comes_back_as_the_engine_stylizes_it_and_a_still_camera_gives_a_still_picture(
        client, server_files):
    image = camera_image()
    with client.websocket_connect("/api/live?model=stripes&noise_factor=0.5") as socket:
        assert socket.receive_json()["ready"]
        first, second = stylized(socket, 7, image), stylized(socket, 8, image)
    generator = load_generator(server_files / "ck" / "stripes.pt")
    photo = image_to_tensor(image).unsqueeze(0)
    noise = generator.make_noise(1, *generator.padded_size(48, 64), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = Engine(generator, StylizeOptions(noise_factor=0.5, seed=0)).stylize(photo, noise=noise)
    buffer = io.BytesIO()
    tensor_to_image(expected).save(buffer, format="JPEG", quality=live_module.JPEG_QUALITY)
    assert np.array_equal(first, np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32))
    assert np.array_equal(first, second)  # the same noise every frame: no flicker
    assert np.abs(first - np.asarray(image, dtype=np.float32)).mean() > 10  # stylized, not the camera's picture


def test_settings_change_mid_session_and_bad_ones_are_refused_in_one_line(client):
    image = camera_image()
    with client.websocket_connect("/api/live?model=stripes&noise_factor=0") as socket:
        socket.receive_json()
        quiet = stylized(socket, 1, image)
        for message, match in [('{"style": "candy"}', "holds one style"), ('{"noise_factor": "nan"}', "must be in"),
                               ('{"noise_factor": 99}', "must be in 0..10"), ('{"photorealistic": "x"}', "true or"),
                               ('{"bogus": 1}', "unknown live"), ("not json", "JSON object"), ('[1, 2]', "JSON object"),
                               ('{"model": "missing"}', "unknown model")]:
            socket.send_text(message)
            error = socket.receive_json()["error"]
            assert match in error and "\n" not in error
        assert np.array_equal(stylized(socket, 2, image), quiet)  # nothing changed
        socket.send_text(json.dumps({"noise_factor": 3}))
        assert socket.receive_json()["settings"]["noise_factor"] == 3
        assert np.abs(stylized(socket, 3, image) - quiet).mean() > 1


@pytest.mark.parametrize("message, match", [
    (b"\x01\x02", "4 bytes of frame id"),
    (b"\x00\x00\x00\x00not a picture", "not a readable image"),
    (None, "live frames up to 96 px"),
])
def test_a_bad_frame_gets_one_line_and_the_session_goes_on(server_files, message, match):
    app = create_app(config_for(server_files, max_live_size=96))
    with TestClient(app) as client, client.websocket_connect("/api/live?model=stripes") as socket:
        socket.receive_json()
        socket.send_bytes(message if message is not None else frame(0, camera_image(width=120, height=60)))
        reply = socket.receive_json()
        assert reply["frame_error"] and match in reply["error"] and "\n" not in reply["error"]
        assert stylized(socket, 5, camera_image()).shape == (48, 64, 3)


@pytest.mark.parametrize("query, match", [("model=missing", "unknown model"), ("", "model: the name"),
                                          ("model=stripes&noise_factor=inf", "noise_factor must be in"),
                                          ("model=stripes&preserve_colors=maybe", "true or false"),
                                          ("model=stripes&size=3", "unknown live setting")])
def test_a_session_with_bad_settings_is_refused_in_one_line(client, query, match):
    with client.websocket_connect(f"/api/live?{query}") as socket:
        error = socket.receive_json()["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert match in error and closed.value.code == 1008
    assert client.get("/api/live").json()["sessions"] == 0


def test_sessions_over_the_limit_are_told_so_and_a_closed_session_frees_its_place(server_files):
    app = create_app(config_for(server_files, max_live_sessions=1))
    with TestClient(app) as client:
        with client.websocket_connect("/api/live?model=stripes") as first:
            first.receive_json()
            assert client.get("/api/live").json()["sessions"] == 1
            with client.websocket_connect("/api/live?model=stripes") as second:
                error = second.receive_json()["error"]
                with pytest.raises(WebSocketDisconnect) as closed:
                    second.receive_json()
            assert "all 1 live sessions" in error and closed.value.code == 1013
        deadline = time.monotonic() + 5
        while app.state.live.open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/api/live").json()["sessions"] == 0
        with client.websocket_connect("/api/live?model=stripes") as again:
            assert again.receive_json()["ready"]


def test_frames_arriving_while_one_is_stylized_are_dropped_not_queued(client, monkeypatch):
    """A slow server answers the newest frame next, so what the page shows is never old."""
    original = live_module.LiveStylizer.stylize_frame

    def slow(self, message):
        time.sleep(0.4)
        return original(self, message)
    monkeypatch.setattr(live_module.LiveStylizer, "stylize_frame", slow)
    image = camera_image()
    with client.websocket_connect("/api/live?model=stripes") as socket:
        socket.receive_json()
        for ident in range(10):
            socket.send_bytes(frame(ident, image))
        answered, timings = [], {}
        while not answered or answered[-1] != 9:
            answered.append(struct.unpack("<I", socket.receive_bytes()[:4])[0])
            timings = socket.receive_json()
    assert len(answered) <= 3 and timings["dropped"] >= 10 - len(answered)


def test_a_session_that_sends_nothing_is_closed_and_freed(server_files):
    app = create_app(config_for(server_files, live_idle_s=0.3))
    with TestClient(app) as client:
        with client.websocket_connect("/api/live?model=stripes") as socket:
            socket.receive_json()
            assert "no frame for 0.3 s" in socket.receive_json()["error"]
            with pytest.raises(WebSocketDisconnect):
                socket.receive_json()
        assert client.get("/api/live").json()["sessions"] == 0


def test_the_browsers_onnx_model_with_the_listed_inputs_gives_the_servers_picture(client, server_files):
    """The page feeds the ONNX export as /api/models describes it (the padding multiple, each noise
    input's channels and divisor): fed that way, it gives the server's picture."""
    ort = pytest.importorskip("onnxruntime")
    info = next(m for m in client.get("/api/models").json()["models"] if m["name"] == "stripes")
    response = client.get(info["onnx"])
    assert response.status_code == 200
    session = ort.InferenceSession(response.content, providers=["CPUExecutionProvider"])
    generator = load_generator(server_files / "ck" / "stripes.pt")
    photo = image_to_tensor(camera_image(width=50, height=30)).unsqueeze(0)
    m = info["multiple"]
    height, width = max(-(-30 // m) * m, 2 * m), max(-(-50 // m) * m, 2 * m)
    assert (height, width) == generator.padded_size(30, 50)
    noise = [torch.randn(1, c, height // d, width // d, generator=torch.Generator().manual_seed(s))
             for s, (c, d) in enumerate(info["noise"])]
    feeds = {"photo": generator.pad(photo, height, width).numpy(), "noise_factor": np.array(0.3, dtype=np.float32),
             **{f"noise{s}": n.numpy() for s, n in enumerate(noise)}}
    names = {i.name for i in session.get_inputs()}
    (picture,) = session.run(["picture"], {k: v for k, v in feeds.items() if k in names})
    with torch.inference_mode():
        expected = Engine(generator, StylizeOptions(noise_factor=0.3)).stylize(photo, noise=noise)
    assert np.abs(picture[:, :, :30, :50] - expected.numpy()).max() < 1e-4
    assert client.get("/api/models/missing/model.onnx").status_code == 404


def test_the_page_is_served_cross_origin_isolated_and_the_api_is_not(client):
    for path in ("/", "/static/live.js"):
        headers = client.get(path).headers
        assert headers["cross-origin-embedder-policy"] == "require-corp"
        assert headers["cross-origin-opener-policy"] == "same-origin"
    assert "cross-origin-embedder-policy" not in client.get("/api/models").headers


def read_lines(response) -> list[dict]:
    return [json.loads(line) for line in response.iter_lines() if line]


def test_a_clip_streams_its_progress_then_the_clip(client, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(12, 64, 48), fps=12, audio=False)
    with client.stream("POST", "/api/stylize_video", data={"model": "stripes", "progress": "true", "format": "webm"},
                       files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")}) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "application/x-ndjson"
        lines = read_lines(response)
    progress = [line["frames"] for line in lines if "frames" in line]
    assert progress == sorted(progress) and progress[-1] == 12 and len(set(progress)) >= 4
    assert all(line["total"] == 12 for line in lines if line.get("frames"))
    assert lines[-1]["done"] and lines[-1]["headers"]["X-Video-Frames"] == "12"
    av = pytest.importorskip("av")
    data = base64.b64decode(lines[-1]["clip"].split(",", 1)[1])
    with av.open(io.BytesIO(data)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12


def test_a_clip_streams_its_refusal_as_a_line(server_files, tmp_path):
    app = create_app(config_for(server_files, max_video_seconds=0.5))
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(12, 64, 48), fps=12, audio=False)
    with TestClient(app) as client, client.stream(
            "POST", "/api/stylize_video", data={"model": "stripes", "progress": "true"},
            files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")}) as response:
        lines = read_lines(response)
    assert lines[-1]["status"] == 413 and "this server takes clips up to 0.5 s" in lines[-1]["error"]
    assert app.state.queue.running == 0


def test_a_clip_whose_client_goes_away_stops_and_frees_its_place(server_files, tmp_path):
    """Cancel on the page closes the stream: the work stops after its batch of frames and the place
    in the work queue is free again long before the clip would have been done."""
    import httpx

    from .live_server import LiveServer
    clip = write_clip(tmp_path / "long.mp4", moving_frames(120, 128, 96), fps=10, audio=False)
    with LiveServer(config_for(server_files, max_concurrent=1, max_queue=2)) as server:
        app = server.server.config.app
        seen = []
        with httpx.stream("POST", f"{server.url}/api/stylize_video", timeout=60,
                          data={"model": "stripes", "progress": "true", "size": "640"},
                          files={"file": ("long.mp4", clip.read_bytes(), "video/mp4")}) as response:
            for line in response.iter_lines():
                seen.append(json.loads(line))
                if seen[-1].get("frames", 0) >= 4:
                    break
        deadline = time.monotonic() + 20
        while app.state.queue.running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert app.state.queue.running == 0 and not any(line.get("done") for line in seen)
