"""The web app's JSON API: stylize, models, thumbnails, training jobs, and every bad input the issue
names, with the server still answering afterwards."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from texture_nets.training.config import make_config  # noqa: E402
from texture_nets.training.run import run_training  # noqa: E402
from texture_nets.web import WebConfig, create_app  # noqa: E402

from .conftest import smooth_image, stripes_image, tiny_overrides  # noqa: E402

TINY_TRAINING = dict(batch_size=2, num_scales=3, channels=4, style_layers=["relu1_1", "relu2_1"],
                     content_layers=["relu2_1"], style_size=48, num_val=2)


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server_files(tmp_path_factory):
    """A checkpoint folder with one tiny trained model, and a data root holding a photo folder."""
    root = tmp_path_factory.mktemp("web")
    photos = root / "data" / "photos"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        smooth_image(rng, 48, 40).save(photos / f"p{i}.png")
    style = root / "stripes.png"
    stripes_image(48).save(style)
    config = make_config({}, tiny_overrides(photos, style, root / "ck", name="stripes", num_iterations=3))
    run_training(config, log=lambda *_: None)
    (root / "ck" / "stripes.resume.pt").unlink()
    return root


@pytest.fixture
def client(server_files):
    config = WebConfig(checkpoint_dir=str(server_files / "ck"), shipped=False, data_root=str(server_files / "data"),
                       vgg_weights="random", max_upload_mb=1, max_pixels=1_000_000, max_size=512, engine="torch",
                       train_defaults=TINY_TRAINING, max_concurrent=2, max_queue=32)  # the 20 parallel requests wait
    with TestClient(create_app(config)) as test_client:
        yield test_client


@pytest.fixture
def photo_bytes() -> bytes:
    return png(smooth_image(np.random.default_rng(1), 64, 48))


def test_models_and_thumbnails(client):
    models = client.get("/api/models").json()["models"]
    assert [m["name"] for m in models] == ["stripes"] and models[0]["steps"] == 3 and not models[0]["shipped"]
    response = client.get(models[0]["thumbnail"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (144, 96)
    assert client.get("/api/models/nothing/thumbnail.png").status_code == 404


def test_stylize_answers_a_png_of_the_requested_size(client, photo_bytes):
    response = client.post("/api/stylize", files={"file": ("p.png", photo_bytes, "image/png")},
                           data={"model": "stripes", "noise_factor": "0.5", "size": "32"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (32, 24) and float(response.headers["X-Stylize-Seconds"]) >= 0
    same = client.post("/api/stylize", files={"file": ("p.png", photo_bytes)},
                       data={"model": "stripes", "noise_factor": "0.5", "size": "32"})
    other = client.post("/api/stylize", files={"file": ("p.png", photo_bytes)},
                        data={"model": "stripes", "noise_factor": "0", "size": "32"})
    assert same.content == response.content and other.content != response.content  # seeded; the slider matters
    kept = client.post("/api/stylize", files={"file": ("p.png", photo_bytes)},
                       data={"model": "stripes", "size": "32", "preserve_colors": "true"})
    assert kept.status_code == 200 and kept.content != response.content


def test_twenty_parallel_requests_all_answered_correctly(client, photo_bytes):
    sizes = [24 + 4 * (i % 5) for i in range(20)]

    def call(size):
        r = client.post("/api/stylize", files={"file": ("p.png", photo_bytes)},
                        data={"model": "stripes", "size": str(size), "noise_factor": "0"})
        return r.status_code, Image.open(io.BytesIO(r.content)).size[0], r.content

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(call, sizes))
    assert [(code, width) for code, width, _ in results] == [(200, s) for s in sizes]
    by_size = {}
    for size, (_, _, content) in zip(sizes, results):
        by_size.setdefault(size, set()).add(content)
    assert all(len(contents) == 1 for contents in by_size.values())  # same request, same picture


def bomb_png(width: int, height: int) -> bytes:
    """A tiny file that decodes to a huge image (a decompression bomb): one colour, PNG compressed."""
    return png(Image.new("L", (width, height)))


@pytest.mark.parametrize("case,status,match", [
    ("too_big", 413, "over 1 MB"), ("not_an_image", 415, "not a readable image"),
    ("corrupt", 415, "not a readable image"), ("bomb", 413, "megapixels"), ("empty", 400, "empty"),
    ("unknown_model", 404, "unknown model"), ("path_model", 404, "unknown model"),
    ("negative_noise", 400, "noise_factor"), ("huge_size", 400, "size"),
])
def test_bad_stylize_requests_are_refused_and_the_server_stays_up(client, photo_bytes, case, status, match):
    data, files = {"model": "stripes"}, {"file": ("p.png", photo_bytes)}
    if case == "too_big":
        files = {"file": ("big.png", b"\x89PNG" + bytes(2 * 2**20))}
    elif case == "not_an_image":
        files = {"file": ("notes.txt", b"hello, not a picture")}
    elif case == "corrupt":
        files = {"file": ("p.png", photo_bytes[:200])}
    elif case == "bomb":
        files = {"file": ("bomb.png", bomb_png(2000, 1000))}  # 2 MP against a 1 MP cap, 8 KB on disk
    elif case == "empty":
        files = {"file": ("p.png", b"")}
    elif case == "unknown_model":
        data["model"] = "mosaic"  # shipped, but this server lists only its own folder
    elif case == "path_model":
        data["model"] = "../ck/stripes"
    elif case == "negative_noise":
        data["noise_factor"] = "-1"
    elif case == "huge_size":
        data["size"] = "100000"
    response = client.post("/api/stylize", files=files, data=data)
    assert response.status_code == status and match in response.json()["detail"]
    assert client.post("/api/stylize", files={"file": ("p.png", photo_bytes)},
                       data={"model": "stripes", "size": "32"}).status_code == 200


# A minimal EPS: Pillow's EPS plugin reads its header, and would decode it by running Ghostscript
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 24\n%%EndComments\n"
       b"newpath 0 0 moveto 32 24 lineto stroke\nshowpage\n%%EOF\n")


def eps_request(route: str, photo_bytes: bytes) -> tuple[str, list, dict]:
    """(url, files, form) posting EPS as the photo (stylize) or as the style image (optimize, train)."""
    eps = ("drawing.eps", EPS, "application/postscript")
    if route == "stylize":
        return "/api/stylize", [("file", eps)], {"model": "stripes"}
    if route == "optimize":
        return "/api/optimize", [("file", ("p.png", photo_bytes)), ("style", eps)], {"steps": "2", "size": "32"}
    return "/api/train", [("style", eps)], {"data_dir": "photos", "name": "epsstyle", "steps": "2",
                                            "image_size": "32"}


@pytest.mark.parametrize("route", ["stylize", "optimize", "train"])
def test_an_eps_upload_is_refused_without_ghostscript_or_the_eps_plugin(client, photo_bytes, monkeypatch, route):
    """Uploads are decoded only as the formats the page needs (uploads.UPLOAD_FORMATS): EPS would run
    Ghostscript on the client's bytes, wherever `gs` is installed."""
    from PIL import EpsImagePlugin
    with Image.open(io.BytesIO(EPS)) as image:
        assert image.format == "EPS"  # Pillow, unrestricted, reads this file as EPS
    used = []
    original = EpsImagePlugin.EpsImageFile._open

    def ghostscript(*args, **kwargs):  # stands in for `gs` installed; fails as Pillow does without it
        used.append("ghostscript")
        raise OSError("Ghostscript ran on an upload")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: used.append("plugin") or original(self))
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    url, files, data = eps_request(route, photo_bytes)
    response = client.post(url, files=files, data=data)
    assert response.status_code == 415, response.text
    detail = response.json()["detail"]
    assert "not a readable image" in detail and "JPEG" in detail and "PNG" in detail
    assert used == []
    assert client.get("/api/train").json()["state"] in ("idle", "done", "cancelled")  # no job started


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM"])
def test_photos_in_every_accepted_format_are_stylized(client, fmt):
    photo = png(smooth_image(np.random.default_rng(1), 64, 48), fmt)
    response = client.post("/api/stylize", files={"file": (f"p.{fmt.lower()}", photo)},
                           data={"model": "stripes", "size": "32"})
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (32, 24)


@pytest.mark.parametrize("path,status", [("photos", 200), ("../", 403), ("/etc", 403), ("missing", 400), (".", 200),
                                         ("photos\x00", 400)])
def test_data_dir_is_resolved_inside_the_root(client, path, status):
    response = client.get("/api/data_dir", params={"path": path})
    assert response.status_code == status, response.json()
    if status == 200:
        assert response.json()["images"] == 6


def test_a_link_out_of_the_root_is_refused(client, server_files, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    smooth_image(np.random.default_rng(0), 40, 40).save(outside / "a.png")
    link = server_files / "data" / "escape"
    link.symlink_to(outside, target_is_directory=True)
    try:
        assert client.get("/api/data_dir", params={"path": "escape"}).status_code == 403
    finally:
        link.unlink()


def start_training(client, name="webstyle", steps=6, data_dir="photos"):
    return client.post("/api/train", files={"style": ("s.png", png(stripes_image(48)))},
                       data={"data_dir": data_dir, "name": name, "steps": str(steps), "image_size": "32",
                             "style_weight": "1", "content_weight": "1"})


def wait_for(client, states, timeout=120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get("/api/train").json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job did not reach {states}: {job}")


def test_training_job_runs_shows_progress_and_its_model_appears(client, server_files):
    response = start_training(client, steps=6)
    assert response.status_code == 202 and response.json()["state"] == "starting"
    busy = start_training(client, name="second")
    assert busy.status_code == 409 and "running" in busy.json()["detail"]
    job = wait_for(client, {"done", "failed"})
    assert job["state"] == "done", job
    assert job["step"] == 6 and job["losses"]["total"] > 0 and job["val_losses"]
    sample = client.get("/api/train/sample.png")
    assert sample.status_code == 200 and Image.open(io.BytesIO(sample.content)).size == (64, 32)  # photo | output
    assert "webstyle" in [m["name"] for m in client.get("/api/models").json()["models"]]
    assert client.post("/api/stylize", files={"file": ("p.png", png(stripes_image(40)))},
                       data={"model": "webstyle"}).status_code == 200
    (server_files / "ck" / "webstyle.pt").unlink()


def test_training_job_can_be_cancelled(client, server_files):
    assert start_training(client, name="cancelme", steps=100_000).status_code == 202
    wait_for(client, {"running"})
    assert client.post("/api/train/cancel").status_code == 200
    job = wait_for(client, {"cancelled", "failed", "done"})
    assert job["state"] == "cancelled" and 0 < job["step"] < 100_000
    resume, final = server_files / "ck" / "cancelme.resume.pt", server_files / "ck" / "cancelme.pt"
    try:
        assert resume.is_file()  # resumable, as after Ctrl-C
        # <name>.pt is written at each periodic checkpoint (every 100 steps here): if the job got that
        # far it holds the weights of then, never those of a step after the cancel
        from texture_nets.core.checkpoint import load_checkpoint
        assert not final.exists() or load_checkpoint(final)["step"] <= job["step"]
    finally:
        resume.unlink(missing_ok=True)
        final.unlink(missing_ok=True)


@pytest.mark.parametrize("field,value,status,match", [
    ("data_dir", "../..", 403, "inside"), ("data_dir", "missing", 400, "not found"),
    ("name", "../evil", 400, "name"), ("steps", "0", 400, "steps"), ("image_size", "4", 400, "image_size"),
    ("style_weight", "-1", 400, "style_weight"), ("image_size", "5000", 400, "image_size"),
    ("name", "stripes", 409, "exists"),
])
def test_bad_training_requests(client, field, value, status, match):
    data = {"data_dir": "photos", "name": "x", "steps": "2", "image_size": "32", field: value}
    response = client.post("/api/train", files={"style": ("s.png", png(stripes_image(48)))}, data=data)
    assert response.status_code == status and match in response.json()["detail"]
    bad_style = client.post("/api/train", files={"style": ("s.png", b"nope")}, data={"data_dir": "photos"})
    assert bad_style.status_code == 415
    assert client.get("/api/train").json()["state"] in ("idle", "done", "cancelled")  # nothing started


def test_page_and_api_documentation(client):
    page = client.get("/")
    assert page.status_code == 200 and "texture_nets" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/stylize", "/api/models", "/api/train", "/api/train/cancel"} <= set(paths)


def test_serve_command_refuses_bad_options(capsys, tmp_path):
    from texture_nets.cli import main
    assert main(["serve", "--port", "70000"]) == 2 and "--port" in capsys.readouterr().err
    assert main(["serve", "--viz_url", "localhost:8097/x"]) == 2 and "viz_url" in capsys.readouterr().err
    assert main(["serve", "--data_root", str(tmp_path / "nope")]) == 2 and "not a folder" in capsys.readouterr().err


def test_optimisation_streams_progress_previews_and_the_picture(client, photo_bytes):
    styles = [("style", ("a.png", png(stripes_image(48)))), ("style", ("b.png", photo_bytes))]
    response = client.post("/api/optimize", files=[("file", ("p.png", photo_bytes))] + styles,
                           data={"steps": "4", "size": "40", "style_blend": "0.7,0.3"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    import json
    lines = [json.loads(line) for line in response.text.splitlines()]
    steps = [line["step"] for line in lines if "step" in line]
    assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) <= 4 and lines[-1]["done"]
    assert any("preview" in line for line in lines)
    picture = Image.open(io.BytesIO(__import__("base64").b64decode(lines[-1]["image"].split(",", 1)[1])))
    assert picture.size == (40, 30)


@pytest.mark.parametrize("data,match", [({"steps": "0"}, "steps"), ({"size": "5000"}, "size"),
                                        ({"style_blend": "1,2,3"}, "style_blend"), ({"style_blend": "x"}, "style_blend"),
                                        ({"styles": 9}, "at most 8")])
def test_bad_optimisation_requests(client, photo_bytes, data, match):
    styles = [("style", (f"{i}.png", png(stripes_image(48)))) for i in range(data.pop("styles", 1))]
    response = client.post("/api/optimize", files=[("file", ("p.png", photo_bytes))] + styles, data=data)
    assert response.status_code == 400 and match in response.json()["detail"]


def test_a_photo_too_thin_for_vgg_is_refused_by_the_optimisation(client):
    """Before any decoding or VGG work, as a 400 (not an error line in a 200 stream)."""
    thin = png(smooth_image(np.random.default_rng(1), 400, 6))
    response = client.post("/api/optimize", files=[("file", ("thin.png", thin)),
                                                   ("style", ("s.png", png(stripes_image(48))))],
                           data={"steps": "2", "size": "64"})
    assert response.status_code == 400
    assert response.json()["detail"] == ("thin.png is 64x1 pixels: VGG-19 needs at least 16 pixels on each side to "
                                         "reach relu5_1; use a larger size or crop the photo")


def test_a_tiny_style_image_is_refused_by_the_optimisation(client, photo_bytes):
    response = client.post("/api/optimize", files=[("file", ("p.png", photo_bytes)),
                                                   ("style", ("tiny.png", png(stripes_image(16))))])
    assert response.status_code == 400 and "tiny.png: style image is 16x16 pixels" in response.json()["detail"]
