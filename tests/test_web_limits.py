"""The web server's limits: a bounded work queue (503 with Retry-After
beyond it), a memory budget per request (tiled or refused before decoding), memory given back after
large requests, the upload cap enforced while a chunked body streams in, a refused training request
that decodes and writes nothing, damaged checkpoints and symbolic-link loops that cannot 500, the
`serve` options checked in one line, and every form field probed with hostile values."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from texture_nets.inference import engine as inference_engine  # noqa: E402  (where the web app stylizes)
from texture_nets.web import WebConfig, create_app  # noqa: E402
from texture_nets.web import app as web_app  # noqa: E402

from .conftest import smooth_image, stripes_image  # noqa: E402
from .test_web import TINY_TRAINING, bomb_png, png, server_files  # noqa: E402,F401  (server_files: a fixture)


def make_config(root: Path, **overrides) -> WebConfig:
    values = dict(checkpoint_dir=str(root / "ck"), shipped=False, data_root=str(root / "data"),
                  vgg_weights="random", max_upload_mb=1, max_pixels=1_000_000, max_size=512, engine="torch",
                  train_defaults=TINY_TRAINING)
    return WebConfig(**{**values, **overrides})


@pytest.fixture
def make_client(server_files):
    """make_client(**WebConfig overrides) → a TestClient on the tiny-model server; closed at the end."""
    clients = []

    def make(**overrides) -> TestClient:
        client = TestClient(create_app(make_config(server_files, **overrides)))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def photo_bytes() -> bytes:
    return png(smooth_image(np.random.default_rng(1), 64, 48))


def stylize(client, photo: bytes, **data):
    return client.post("/api/stylize", files={"file": ("p.png", photo, "image/png")},
                       data={"model": "stripes", **{k: str(v) for k, v in data.items()}})


class Concurrency:
    """`real` wrapped to count how many calls run at once (`running`) and the most seen (`most`);
    each call runs `before()` first (a wait), inside the count."""

    def __init__(self, real, before):
        self.real, self.before = real, before
        self.running, self.most, self.lock = 0, 0, threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.before()
            return self.real(*args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


# --- 3. concurrency and memory ----------------------------------------------------------------------------


def test_a_full_queue_answers_503_with_retry_after_and_at_most_max_concurrent_run(make_client, photo_bytes,
                                                                                    monkeypatch):
    """1 at a time, 1 waiting: a third request while both places are taken is refused at once."""
    release = threading.Event()
    slow = Concurrency(inference_engine.stylize_tensor, lambda: release.wait(20))
    monkeypatch.setattr(inference_engine, "stylize_tensor", slow)
    client = make_client(max_concurrent=1, max_queue=1)
    queue = client.app.state.queue
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(stylize, client, photo_bytes, size=32)
        deadline = time.monotonic() + 20
        while slow.running < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        second = pool.submit(stylize, client, photo_bytes, size=32)
        while queue.waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = stylize(client, photo_bytes, size=32)
        release.set()
        answers = [first.result(60), second.result(60)]
    assert refused.status_code == 503 and "busy" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 600
    assert [a.status_code for a in answers] == [200, 200] and slow.most == 1
    assert stylize(client, photo_bytes, size=32).status_code == 200  # the places are free again


def test_a_full_queue_refuses_an_upload_before_reading_a_byte_of_it(make_client):
    """FastAPI reads a whole form before a route runs: the 503 of a full queue is given from the
    request line alone, for the routes that wait in the queue and for no other."""
    client = make_client(max_concurrent=1, max_queue=0)
    queue = client.app.state.queue
    queue.running = 1  # the one place is held, as by a long request
    try:
        for path in ("/api/stylize", "/api/stylize_video", "/api/train"):
            reads, sent = [], []

            async def receive():
                reads.append(1)
                return {"type": "http.request", "body": b"--x--\r\n", "more_body": False}

            async def send(message):
                sent.append(message)

            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                     "headers": [(b"host", b"testserver"), (b"content-length", b"7"),
                                 (b"content-type", b"multipart/form-data; boundary=x")],
                     "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
            asyncio.run(client.app(scope, receive, send))
            start = sent[0]
            headers = dict(start["headers"])
            assert start["status"] == 503 and not reads, path
            assert int(headers[b"retry-after"]) >= 1 and b"busy" in sent[1]["body"]
        assert client.get("/api/models").status_code == 200  # what does not wait in the queue is served
        assert client.post("/api/train/cancel").status_code != 503
    finally:
        queue.running = 0
    assert client.post("/api/stylize", files={"file": ("p.png", png(smooth_image(np.random.default_rng(1), 32, 32)),
                                                        "image/png")},
                       data={"model": "stripes"}).status_code == 200  # a free place takes uploads again


def test_twenty_parallel_requests_never_run_more_than_max_concurrent(make_client, photo_bytes, monkeypatch):
    counted = Concurrency(inference_engine.stylize_tensor, lambda: time.sleep(0.02))
    monkeypatch.setattr(inference_engine, "stylize_tensor", counted)
    client = make_client(max_concurrent=2, max_queue=30)
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda _: stylize(client, photo_bytes, size=32).status_code, range(20)))
    assert codes == [200] * 20 and counted.most <= 2


def test_a_request_over_the_memory_budget_is_tiled_and_beyond_tiling_refused_before_decoding(
        make_client, photo_bytes, monkeypatch):
    from texture_nets.inference.engine import untiled_bytes
    plain = make_client()
    reference = stylize(plain, photo_bytes, size=512, noise_factor=0)
    assert reference.status_code == 200 and reference.headers["X-Stylize-Tile"] == "none"
    generator = plain.app.state.store.generator("stripes")
    one_pass = untiled_bytes(getattr(generator, "torch_generator", generator), 384, 512)
    tiled = make_client(request_memory_gb=0.8 * one_pass / 2**30)  # one pass does not fit, tiles do
    response = stylize(tiled, photo_bytes, size=512, noise_factor=0)
    assert response.status_code == 200 and response.headers["X-Stylize-Tile"] not in ("none", None)
    a, b = (np.asarray(Image.open(io.BytesIO(r.content)), dtype=np.float32) for r in (reference, response))
    assert a.shape == b.shape and np.abs(a - b).max() <= 2  # the same picture, up to rounding

    decoded = []
    monkeypatch.setattr(web_app, "decode_image", lambda *a, **k: decoded.append(1) or pytest.fail("decoded"))
    tiny = make_client(request_memory_gb=0.01)  # 10 MB: not even 512 px in the smallest tiles
    refused = stylize(tiny, photo_bytes, size=512)
    detail = refused.json()["detail"]
    assert refused.status_code == 413 and "memory" in detail and "size" in detail and not decoded
    monkeypatch.undo()
    fitting = int(detail.split("size ≤ ")[1].split()[0].rstrip(":,;)"))  # the size the message suggests
    assert 16 <= fitting < 512 and stylize(tiny, photo_bytes, size=fitting).status_code == 200


def test_tiled_and_one_pass_requests_at_once_do_not_disturb_each_other(make_client, photo_bytes):
    """Tiling gives the norms whole-image statistics in its own thread only (tiling.py): one-pass
    requests on the shared generator at the same time get their usual picture."""
    from texture_nets.inference.engine import untiled_bytes
    probe = make_client()
    generator = probe.app.state.store.generator("stripes")
    one_pass = untiled_bytes(getattr(generator, "torch_generator", generator), 384, 512)
    client = make_client(request_memory_gb=0.8 * one_pass / 2**30, max_concurrent=4, max_queue=16)
    jobs = [512, 64, 512, 64, 48, 512, 64, 48]
    alone = {size: stylize(client, photo_bytes, size=size, noise_factor=0).content for size in set(jobs)}
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda size: stylize(client, photo_bytes, size=size, noise_factor=0), jobs))
    assert [r.headers["X-Stylize-Tile"] != "none" for r in together] == [size == 512 for size in jobs]
    for size, response in zip(jobs, together):
        a, b = (np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) for data in (alone[size], response.content))
        assert np.abs(a - b).max() <= 1, size


def test_the_work_queue_hands_places_over_in_order_and_drops_clients_that_left():
    from texture_nets.web.limits import UserError, WorkQueue

    async def scenario():
        queue, order = WorkQueue(1, 2), []
        release = asyncio.Event()

        async def job(name, gone=None):
            async with queue.slot(gone):
                order.append(name)
                await release.wait()

        async def left():
            return True

        first = asyncio.create_task(job("first"))
        await asyncio.sleep(0)
        second = asyncio.create_task(job("second"))
        third = asyncio.create_task(job("third", left))  # its client goes away while it waits
        await asyncio.sleep(0.01)
        assert (queue.running, queue.waiting) == (1, 2)
        try:
            await job("refused")
        except UserError as exc:
            assert exc.status == 503 and int(exc.headers["Retry-After"]) >= 1
        else:
            raise AssertionError("a full queue took a request")
        try:
            await asyncio.wait_for(third, 5)
        except UserError as exc:
            assert exc.status == 499
        assert queue.waiting == 1
        release.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert order == ["first", "second"] and (queue.running, queue.waiting) == (0, 0)
        release.clear()
        cancelled = asyncio.create_task(job("cancelled"))  # cancelled while working: the place is freed
        await asyncio.sleep(0.01)
        assert queue.running == 1
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        assert (queue.running, queue.waiting) == (0, 0)

    asyncio.run(scenario())


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("engine", ["torch", "auto"])
def test_memory_returns_near_the_baseline_after_large_requests(tmp_path, engine):
    """Six 768-px stylizations with a shipped style, two at a time: the server's RSS afterwards is
    within 150 MB of what it was before them (ONNX Runtime's arena and glibc's heaps given back)."""
    if engine == "auto":
        pytest.importorskip("onnxruntime")
    from texture_nets.web.limits import release_memory
    config = WebConfig(checkpoint_dir=str(tmp_path), data_root=str(tmp_path), engine=engine, max_concurrent=2,
                       max_queue=8, max_size=1024, max_upload_mb=4)
    photo = png(smooth_image(np.random.default_rng(2), 96, 96))
    with TestClient(create_app(config)) as client:
        assert stylize(client, photo, model="mosaic", size=64).status_code == 200  # loaded, exported, warm
        gc.collect()
        release_memory()
        baseline = rss_bytes()
        with ThreadPoolExecutor(2) as pool:
            codes = list(pool.map(lambda _: stylize(client, photo, model="mosaic", size=768).status_code, range(6)))
        gc.collect()
        after = rss_bytes()
    print(f"RSS {engine}: baseline {baseline / 2**20:.0f} MB, after {after / 2**20:.0f} MB")
    assert codes == [200] * 6
    assert after - baseline < 150 * 2**20, f"RSS grew by {(after - baseline) / 2**20:.0f} MB"


# --- 4. the upload cap while a chunked body streams in -------------------------------------------------------


def temporary_files() -> set[str]:
    """Open file descriptors of this process that point into the temporary folder (spooled uploads)."""
    import tempfile
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(tempfile.gettempdir()) and "pytest" not in target:
            found.add(target)
    return found


def chunked_body(sent: list[int], total: int, chunk: int = 2**20):
    """A multipart body of `total` bytes of file content, produced lazily; `sent` counts what was taken."""
    head = (b'--XYZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nstripes\r\n'
            b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")
    sent[0] += len(head)
    yield head
    block = bytes(chunk)
    for _ in range(total // chunk):
        sent[0] += chunk
        yield block
    yield b"\r\n--XYZ--\r\n"


def call_asgi(app, body, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    """Run one POST /api/stylize through the ASGI app itself, its body pulled chunk by chunk from the
    iterator `body` (as a server hands it over; the TestClient would read it all first)."""
    chunks = iter(body)
    messages = []

    async def receive():
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/stylize", "raw_path": b"/api/stylize", "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


def test_a_chunked_upload_over_the_cap_is_refused_while_it_streams(server_files, photo_bytes):
    """64 MiB without a Content-Length against a 1 MB cap: 413 after about 1 MB, no spooled file left."""
    import json
    app = create_app(make_config(server_files))  # cap: 1 MB
    gc.collect()
    before = temporary_files()
    sent = [0]
    status, headers, body = call_asgi(app, chunked_body(sent, 64 * 2**20, 2**16),
                                      {"Content-Type": "multipart/form-data; boundary=XYZ"})
    assert status == 413 and "1 MB" in json.loads(body)["detail"] and headers["content-type"] == "application/json"
    assert sent[0] < 2 * 2**20, f"{sent[0] / 2**20:.0f} MiB of 64 read before the 413"
    gc.collect()
    assert temporary_files() <= before  # no spooled upload left open (or on disk)
    ok_body = [b'--XYZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nstripes\r\n--XYZ\r\n'
               b'Content-Disposition: form-data; name="size"\r\n\r\n32\r\n--XYZ\r\n'
               b'Content-Disposition: form-data; name="file"; filename="p.png"\r\n\r\n' + photo_bytes
               + b"\r\n--XYZ--\r\n"]
    status, headers, body = call_asgi(app, ok_body, {"Content-Type": "multipart/form-data; boundary=XYZ"})
    assert status == 200 and headers["content-type"] == "image/png"


def test_a_chunked_upload_over_the_cap_is_refused_by_a_real_server(server_files, photo_bytes):
    """The same against uvicorn: a 3,000 MiB chunked body is cut off after a few MiB."""
    import httpx

    from .test_web_browser import LiveServer
    sent = [0]
    with LiveServer(make_config(server_files)) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            try:
                response = client.post("/api/stylize", content=chunked_body(sent, 3000 * 2**20, 2**16),
                                       headers={"Content-Type": "multipart/form-data; boundary=XYZ"})
                assert response.status_code == 413 and "1 MB" in response.json()["detail"]
            except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                print(f"connection closed while sending: {type(exc).__name__}")  # after the 413, as it should
            print(f"{sent[0] / 2**20:.1f} MiB of 3000 sent before the server stopped reading")
            assert sent[0] < 64 * 2**20, f"{sent[0] / 2**20:.0f} MiB sent before the server stopped reading"
            ok = client.post("/api/stylize", files={"file": ("p.png", photo_bytes)},
                             data={"model": "stripes", "size": "32"})
            assert ok.status_code == 200


def test_a_body_announced_over_the_cap_is_refused_before_reading(server_files):
    sent = [0]
    status, _, _ = call_asgi(create_app(make_config(server_files)), chunked_body(sent, 8 * 2**20),
                             {"Content-Type": "multipart/form-data; boundary=XYZ",
                              "Content-Length": str(8 * 2**20 + 300)})
    assert status == 413 and sent[0] == 0


# --- 5. a refused training request decodes and writes nothing --------------------------------------------


def uploads(root: Path) -> list[str]:
    folder = root / "ck" / ".uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("field,value,status,match", [
    ("style_weight", "-1", 400, "style_weight"), ("style_weight", "nan", 400, "style_weight"),
    ("content_weight", "inf", 400, "content_weight"), ("style_weight", "1e300", 400, "style_weight"),
    ("steps", "0", 400, "steps"), ("image_size", "4", 400, "image_size"), ("name", "stripes", 409, "exists"),
    ("data_dir", "../..", 403, "inside"), ("data_dir", "missing", 400, "not found"),
    ("image_size", "1024", 413, "memory"),
])
def test_a_refused_training_request_is_checked_before_its_image_is_decoded_or_saved(
        make_client, server_files, field, value, status, match):
    """A style upload that is not even an image: a bad field is what the answer names (it is checked
    first), and .uploads stays empty."""
    client = make_client(request_memory_gb=1.0)
    before = uploads(server_files)
    data = {"data_dir": "photos", "name": "refused", "steps": "2", "image_size": "32", field: value}
    response = client.post("/api/train", files={"style": ("s.png", b"not an image")}, data=data)
    assert response.status_code == status and match in response.json()["detail"], response.json()
    assert uploads(server_files) == before


def test_a_training_style_is_checked_from_its_header_and_decoded_off_the_event_loop(make_client, server_files,
                                                                                     monkeypatch):
    client = make_client(max_pixels=1_000_000)
    before = uploads(server_files)
    bomb = client.post("/api/train", files={"style": ("bomb.png", bomb_png(2000, 1000))},
                       data={"data_dir": "photos", "name": "bomb", "steps": "2", "image_size": "32"})
    assert bomb.status_code == 413 and "megapixels" in bomb.json()["detail"] and uploads(server_files) == before

    on_loop = []

    def watch(method):
        def wrapped(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                on_loop.append(method.__name__)
            except RuntimeError:
                pass
            return method(*args, **kwargs)
        return wrapped

    for name in ("load", "save", "convert", "resize"):
        monkeypatch.setattr(Image.Image, name, watch(getattr(Image.Image, name)))
    style = png(stripes_image(64))
    response = client.post("/api/train", files={"style": ("mine.png", style)},
                           data={"data_dir": "photos", "name": "offloop", "steps": "2", "image_size": "32"})
    assert response.status_code == 202, response.json()
    job = client.app.state.jobs
    assert job.wait(120) and job.status()["state"] == "done", job.status()
    monkeypatch.undo()
    assert not on_loop, f"image work on the event loop: {on_loop}"
    saved = [name for name in uploads(server_files) if name.startswith("offloop-")]
    assert len(saved) == 1 and (server_files / "ck" / ".uploads" / saved[0]).read_bytes() == style  # as uploaded
    for leftover in ("offloop.pt", "offloop.resume.pt"):
        (server_files / "ck" / leftover).unlink(missing_ok=True)



def test_a_full_disk_while_saving_the_style_is_a_507_that_names_no_server_path(make_client, server_files,
                                                                                 monkeypatch):
    client = make_client()
    before = uploads(server_files)

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("texture_nets.core.files.os.replace", full_disk)
    response = client.post("/api/train", files={"style": ("mine.png", png(stripes_image(64)))},
                           data={"data_dir": "photos", "name": "full", "steps": "2", "image_size": "32"})
    monkeypatch.undo()
    detail = response.json()["detail"]
    assert response.status_code == 507 and detail == "the server cannot save the style image (No space left on device)"
    assert uploads(server_files) == before  # no partial or temporary file
    assert client.get("/api/train").json()["state"] != "running"

# --- damaged checkpoints, symbolic-link loops, serve options ------------------------------------------------


def damaged_checkpoints(folder: Path, source: Path) -> list[str]:
    """Files in the models folder that no loader should trust; returns their names."""
    good = torch.load(source, weights_only=True)
    (folder / "garbage.pt").write_bytes(b"not a checkpoint at all")

    def variant(name, **model):
        checkpoint = dict(good, model={**good["model"], **model})
        torch.save(checkpoint, folder / f"{name}.pt")

    variant("scales1000", num_scales=1000)
    variant("negative", channels=-5)
    variant("text", channels="abc")
    torch.save({k: v for k, v in good.items() if k != "state_dict"}, folder / "noweights.pt")
    torch.save(dict(good, style="not a dict"), folder / "badstyle.pt")
    (folder / "loop.pt").symlink_to(folder / "loop.pt")
    return ["garbage", "scales1000", "negative", "text", "noweights", "badstyle", "loop"]


def test_damaged_checkpoints_are_skipped_with_a_warning_and_never_500(tmp_path, server_files, photo_bytes, caplog):
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "stripes.pt").write_bytes((server_files / "ck" / "stripes.pt").read_bytes())
    names = damaged_checkpoints(folder, folder / "stripes.pt")
    config = make_config(server_files, checkpoint_dir=str(folder))
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        with caplog.at_level("WARNING", logger="texture_nets.web"):
            models = client.get("/api/models")
        assert models.status_code == 200 and [m["name"] for m in models.json()["models"]] == ["stripes"]
        warned = " ".join(record.getMessage() for record in caplog.records)
        assert all(f"{name}.pt" in warned for name in names), warned
        for name in names:
            thumb = client.get(f"/api/models/{name}/thumbnail.png")
            styled = client.post("/api/stylize", files={"file": ("p.png", photo_bytes)}, data={"model": name})
            for response in (thumb, styled):
                assert response.status_code == 404 and isinstance(response.json()["detail"], str), (name, response.text)
        assert client.get("/api/models").status_code == 200  # and again, from the cache


def test_symbolic_link_loops_do_not_500(tmp_path, server_files):
    root = tmp_path / "root"
    (root / "photos").mkdir(parents=True)
    smooth_image(np.random.default_rng(0), 40, 40).save(root / "photos" / "a.png")
    (root / "loop").symlink_to(root / "loop")
    (root / "photos" / "back").symlink_to(root, target_is_directory=True)
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    config = make_config(server_files, data_root=str(root))
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        for path, status in [("loop", 400), ("a", 400), ("loop/x", 400), ("photos", 200), ("photos/back", 200)]:
            response = client.get("/api/data_dir", params={"path": path})
            assert response.status_code == status and response.json(), (path, response.text)
    looped = tmp_path / "looproot"
    looped.symlink_to(looped)
    with TestClient(create_app(make_config(server_files, data_root=str(looped))),
                    raise_server_exceptions=False) as client:
        response = client.get("/api/data_dir", params={"path": "photos"})
        assert 400 <= response.status_code < 500 and isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("option,value", [
    ("--max_upload_mb", "inf"), ("--max_upload_mb", "nan"), ("--max_upload_mb", "-1"), ("--max_upload_mb", "0"),
    ("--max_megapixels", "inf"), ("--max_megapixels", "nan"), ("--max_concurrent", "0"), ("--max_concurrent", "-2"),
    ("--max_queue", "-1"), ("--request_memory_gb", "inf"), ("--request_memory_gb", "nan"),
    ("--request_memory_gb", "0"), ("--request_memory_gb", "-1"), ("--max_upload_mb", "1e300"),
])
def test_serve_refuses_absurd_limits_in_one_line(capsys, monkeypatch, option, value):
    import uvicorn

    from texture_nets.cli import main
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    assert main(["serve", f"{option}={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err and "Traceback" not in err, err


def test_serve_says_which_limits_it_chose(capsys, monkeypatch, tmp_path):
    import uvicorn

    from texture_nets.cli import main
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.append(app))
    assert main(["serve", "--data_root", str(tmp_path), "--checkpoint_dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    config = started[0].state.config
    assert config.max_concurrent >= 1 and config.max_queue >= 0 and config.request_memory_gb > 0
    assert f"{config.max_concurrent} at a time" in out and "GB per request" in out
    assert main(["serve", "--data_root", str(tmp_path), "--max_concurrent", "3", "--max_queue", "5",
                 "--request_memory_gb", "1.5"]) == 0
    config = started[1].state.config
    assert (config.max_concurrent, config.max_queue, config.request_memory_gb) == (3, 5, 1.5)


# --- every field, probed -----------------------------------------------------------------------------------

HUGE = "9" * 5000
STYLIZE_PROBES = [("noise_factor", v) for v in ("nan", "inf", "-inf", "-1", "1e400", "abc", HUGE)] + \
    [("size", v) for v in ("0", "-5", "15", "99999999999999999999", "abc", "nan", "1.5", HUGE)] + \
    [("seed", v) for v in ("-1", "abc", "1.5", HUGE, str(2**63), str(2**64))] + \
    [("preserve_colors", v) for v in ("maybe", "2")] + \
    [("model", v) for v in ("", "x" * 100_000, "../../etc/passwd", "a\x00b", " ")]
TRAIN_PROBES = [("steps", v) for v in ("0", "-1", "1e9", "abc", HUGE, "2000000")] + \
    [("image_size", v) for v in ("nan", "4", "100000", "-32")] + \
    [(f, v) for f in ("style_weight", "content_weight") for v in ("nan", "inf", "-inf", "-1", "1e309", "abc",
                                                                   "1e300")] + \
    [("name", v) for v in ("x" * 1000, "a/b", ".", "..", "a\x00b", "x.resume")] + \
    [("data_dir", v) for v in ("", "\x00", "x" * 100_000, "/", "../../..", " ")]
OPTIMIZE_PROBES = [("steps", v) for v in ("0", "-1", "abc", HUGE, "1e9")] + \
    [("size", v) for v in ("0", "15", "abc", "99999")] + \
    [("style_weight", v) for v in ("nan", "inf", "-1", "abc", "1e300")] + \
    [("style_blend", v) for v in ("nan", "inf", "-1,2", "1," * 10_000, "0", "abc,1")] + \
    [("preserve_colors", "maybe")]


def assert_one_clear_error(response):
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    detail = response.json()["detail"]
    assert isinstance(detail, str) and 0 < len(detail) <= 600, detail


@pytest.fixture(scope="module")
def probe_client(server_files):
    with TestClient(create_app(make_config(server_files)), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("field,value", STYLIZE_PROBES, ids=lambda v: str(v)[:20])
def test_stylize_fields_probed(probe_client, photo_bytes, field, value):
    data = {"model": "stripes", "size": "32", field: value}
    assert_one_clear_error(probe_client.post("/api/stylize", files={"file": ("p.png", photo_bytes)}, data=data))


@pytest.mark.parametrize("field,value", TRAIN_PROBES, ids=lambda v: str(v)[:20])
def test_train_fields_probed(probe_client, server_files, field, value):
    before = uploads(server_files)
    data = {"data_dir": "photos", "name": "probe", "steps": "2", "image_size": "32", field: value}
    response = probe_client.post("/api/train", files={"style": ("s.png", png(stripes_image(48)))}, data=data)
    assert_one_clear_error(response)
    assert uploads(server_files) == before and probe_client.get("/api/train").json()["state"] != "running"


@pytest.mark.parametrize("field,value", OPTIMIZE_PROBES, ids=lambda v: str(v)[:20])
def test_optimize_fields_probed(probe_client, photo_bytes, field, value):
    files = [("file", ("p.png", photo_bytes)), ("style", ("s.png", png(stripes_image(48))))]
    data = {"steps": "2", "size": "32", field: value}
    assert_one_clear_error(probe_client.post("/api/optimize", files=files, data=data))


@pytest.mark.parametrize("case", ["no_file", "no_model", "empty_body", "not_multipart", "two_files", "no_style"])
def test_missing_and_malformed_parts(probe_client, photo_bytes, case):
    if case == "no_file":
        response = probe_client.post("/api/stylize", data={"model": "stripes"})
    elif case == "no_model":
        response = probe_client.post("/api/stylize", files={"file": ("p.png", photo_bytes)})
    elif case == "empty_body":
        response = probe_client.post("/api/stylize", content=b"",
                                     headers={"Content-Type": "multipart/form-data; boundary=x"})
    elif case == "not_multipart":
        response = probe_client.post("/api/stylize", json={"model": "stripes"})
    elif case == "two_files":
        files = [("file", ("a.png", photo_bytes)), ("file", ("b.png", b"x"))]
        response = probe_client.post("/api/stylize", files=files, data={"model": "stripes", "size": "32"})
        if response.status_code == 200:
            return  # the first file is used
    else:
        response = probe_client.post("/api/optimize", files={"file": ("p.png", photo_bytes)}, data={"steps": "2"})
    assert_one_clear_error(response)


def test_empty_optional_fields_mean_their_defaults(probe_client, photo_bytes):
    response = probe_client.post("/api/stylize", files={"file": ("p.png", photo_bytes)},
                                 data={"model": "stripes", "noise_factor": "", "size": "", "seed": ""})
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (64, 48)


@pytest.mark.parametrize("path", ["", "\x00", "x" * 20_000, "%", "photos/../../.."])
def test_data_dir_query_probed(probe_client, path):
    assert_one_clear_error(probe_client.get("/api/data_dir", params={"path": path}))


def test_data_dir_query_missing_and_thumbnail_names(probe_client):
    assert_one_clear_error(probe_client.get("/api/data_dir"))
    for name in ("x" * 5000, "..", "stripes.pt", "%00"):
        assert_one_clear_error(probe_client.get(f"/api/models/{name}/thumbnail.png"))
