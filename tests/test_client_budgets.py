"""What one client may cost: a clip's frame larger than its header declares is refused (command line
and web), a clip is as long as its longest stream (audio may outlast the video), a clip's work
(frames × stylized pixels, and its frame count from the header) is budgeted before any frame is
stylized, a client that leaves stops its clip's work, and training jobs cannot fill the disk. The
web cases go through the real app under uvicorn on 127.0.0.1."""

from __future__ import annotations

import time

import numpy as np
import pytest

av = pytest.importorskip("av")
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


from texture_nets.cli import stylize_main  # noqa: E402
from texture_nets.web import WebConfig  # noqa: E402

from .live_server import LiveServer  # noqa: E402
from .test_video import moving_frames, video_motion, write_clip  # noqa: E402


def growing_clip(path, small=(64, 48), large=(640, 480)):
    """An MJPEG clip whose header declares `small` frames and whose last two frames are `large`."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = *small, "yuvj420p"
        for i in range(3):
            picture = np.full((small[1], small[0], 3), 60 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuvj420p")))
        big = av.CodecContext.create("mjpeg", "w")
        big.width, big.height, big.pix_fmt, big.time_base = *large, "yuvj420p", stream.codec_context.time_base
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((large[1], large[0], 3), 200, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuvj420p")
            frame.pts = 3 + i
            for packet in big.encode(frame):
                packet.stream, packet.pts, packet.dts = stream, 3 + i, 3 + i
                container.mux(packet)
        container.mux(stream.encode(None))
    return path


def long_audio_clip(path, video_seconds: float = 1.0, audio_seconds: float = 30.0, fps: int = 10):
    """An H.264 clip of `video_seconds` with an AAC tone of `audio_seconds`."""
    frames = moving_frames(int(video_seconds * fps))
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=video_motion.TONE_RATE, layout="mono")
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        for chunk in video_motion._tone(seconds=audio_seconds):
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    return path


def post_clip(server, path, timeout: float = 120, **form):
    return httpx.post(f"{server.url}/api/stylize_video", data={"model": "mosaic", **form}, timeout=timeout,
                      files={"file": (path.name, path.read_bytes(), "video/mp4")})


@pytest.fixture
def server(tmp_path):
    config = WebConfig(checkpoint_dir=str(tmp_path / "ck"), engine="torch", data_root=str(tmp_path),
                       max_concurrent=1, max_queue=4)
    with LiveServer(config) as live:
        yield live


def test_a_frame_larger_than_the_header_declares_is_refused_on_the_command_line(tmp_path, capsys):
    clip = growing_clip(tmp_path / "grow.mkv")
    out = tmp_path / "out"
    assert stylize_main(["--model", "mosaic", "--input", str(clip), "--output", str(out / "styled.mkv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "frame 4 is 640x480, larger than the clip's header declares" in err[-1]
    assert not out.exists() or list(out.iterdir()) == []


def test_a_frame_larger_than_the_header_declares_is_refused_by_the_web_app(server, tmp_path):
    response = post_clip(server, growing_clip(tmp_path / "grow.mkv"))
    assert response.status_code == 400
    assert "larger than the clip's header declares" in response.json()["detail"]


def test_a_clip_is_as_long_as_its_longest_stream(server, tmp_path):
    response = post_clip(server, long_audio_clip(tmp_path / "talk.mp4"))
    assert response.status_code == 413 and "lasts 30" in response.json()["detail"]


def test_a_clip_over_the_work_budget_is_refused_before_any_frame(server, tmp_path):
    tiny = write_clip(tmp_path / "tiny.mp4", moving_frames(300, 16, 16), fps=60, audio=False)
    response = post_clip(server, tiny, size="640")
    assert response.status_code == 413
    assert "300 frames of 640x640" in response.json()["detail"]


def test_a_header_with_more_frames_than_the_server_takes_is_refused_at_once(server, tmp_path):
    fast = write_clip(tmp_path / "fast.mp4", moving_frames(1440, 16, 16), fps=240, audio=False)
    response = post_clip(server, fast, size="16")
    assert response.status_code == 413 and "1440 frames" in response.json()["detail"]


def test_a_client_that_disconnects_stops_its_clips_work(server, tmp_path):
    """The client gives up after a second; the server's place in the work queue is free again within
    a few seconds, long before the clip (about a minute of work) would have been done."""
    clip = write_clip(tmp_path / "long.mp4", moving_frames(100, 128, 96), fps=10, audio=False)
    queue = server.server.config.app.state.queue
    with pytest.raises(httpx.TimeoutException):
        post_clip(server, clip, timeout=1.5, size="640")
    deadline = time.monotonic() + 20
    while queue.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queue.running == 0


def test_training_jobs_cannot_fill_the_disk(tmp_path):
    """Start-and-cancel cycles leave their uploads and progress files, but only up to max_stored_mb:
    beyond it a new job is refused (507) before its upload is kept, and the folder stops growing."""
    from PIL import Image

    from .conftest import smooth_image
    from .test_web import TINY_TRAINING
    photos = tmp_path / "data" / "photos"
    photos.mkdir(parents=True)
    for i in range(4):
        smooth_image(np.random.default_rng(i), 48, 40).save(photos / f"p{i}.png")
    noisy = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(9).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(noisy)
    folder = tmp_path / "ck"
    config = WebConfig(checkpoint_dir=str(folder), engine="torch", data_root=str(tmp_path / "data"),
                       vgg_weights="random", train_defaults=TINY_TRAINING, max_stored_mb=0.3)
    statuses = []
    with LiveServer(config) as live:
        for cycle in range(5):
            response = httpx.post(f"{live.url}/api/train", timeout=60,
                                  files={"style": ("s.png", noisy.read_bytes(), "image/png")},
                                  data={"data_dir": "photos", "name": f"job{cycle}", "steps": "100000",
                                        "image_size": "32"})
            statuses.append(response.status_code)
            if response.status_code != 202:
                assert response.status_code == 507 and "storage for training jobs is full" in \
                    response.json()["detail"]
                continue
            httpx.post(f"{live.url}/api/train/cancel", timeout=60)
            deadline = time.monotonic() + 60
            while httpx.get(f"{live.url}/api/train", timeout=60).json()["state"] not in ("cancelled", "failed", "done"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
    stored = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert 507 in statuses and statuses[0] == 202
    assert stored < 0.3 * 2**20 + noisy.stat().st_size + 200_000  # the quota, plus one job let in under it


def test_a_stalled_upload_is_answered_408_and_dropped(tmp_path):
    """A client that sends part of a body and stops gets 408 after --upload_timeout_s, not an open
    connection held forever."""
    import socket
    config = WebConfig(checkpoint_dir=str(tmp_path), engine="torch", data_root=str(tmp_path), upload_timeout_s=1.0)
    with LiveServer(config) as live, socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        boundary = "b0undary"
        head = (f"POST /api/stylize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                f"boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n").encode()
        sock.sendall(head + f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nmosaic\r\n".encode())
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes the connection
            answer += chunk
        answer = answer.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 408") and "the upload stalled" in answer
    assert time.monotonic() - started < 8


def test_one_client_cannot_hold_more_than_its_share_of_requests(tmp_path):
    """Two stalled uploads from one address fill its share (max_requests_per_client 2): a third
    request is answered 429 at once; once the stalled ones are dropped (408), it is served again."""
    import socket
    config = WebConfig(checkpoint_dir=str(tmp_path), engine="torch", data_root=str(tmp_path), upload_timeout_s=2.0,
                       max_requests_per_client=2)
    head = (b"POST /api/stylize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 1000000\r\n\r\n--b\r\n")
    with LiveServer(config) as live:
        stalled = [socket.create_connection(("127.0.0.1", live.port), timeout=10) for _ in range(2)]
        try:
            for sock in stalled:
                sock.sendall(head)
            time.sleep(0.5)
            refused = httpx.get(f"{live.url}/api/models", timeout=10)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
            for sock in stalled:  # each is answered 408 and closed after the upload timeout
                assert sock.recv(4096).startswith(b"HTTP/1.1 408")
        finally:
            for sock in stalled:
                sock.close()
        time.sleep(0.2)
        assert httpx.get(f"{live.url}/api/models", timeout=10).status_code == 200


def test_a_cancelled_training_job_leaves_no_upload(tmp_path):
    from .conftest import smooth_image, stripes_image
    from .test_web import TINY_TRAINING, png
    photos = tmp_path / "data" / "photos"
    photos.mkdir(parents=True)
    for i in range(4):
        smooth_image(np.random.default_rng(i), 48, 40).save(photos / f"p{i}.png")
    config = WebConfig(checkpoint_dir=str(tmp_path / "ck"), engine="torch", data_root=str(tmp_path / "data"),
                       vgg_weights="random", train_defaults=TINY_TRAINING)
    with LiveServer(config) as live:
        for cycle in range(3):
            started = httpx.post(f"{live.url}/api/train", timeout=60, files={"style": ("s.png", png(stripes_image(48)))},
                                 data={"data_dir": "photos", "name": f"job{cycle}", "steps": "100000",
                                       "image_size": "32"})
            assert started.status_code == 202
            httpx.post(f"{live.url}/api/train/cancel", timeout=60)
            deadline = time.monotonic() + 60
            while httpx.get(f"{live.url}/api/train", timeout=60).json()["state"] != "cancelled":
                assert time.monotonic() < deadline
                time.sleep(0.1)
    assert list((tmp_path / "ck" / ".uploads").iterdir()) == []
