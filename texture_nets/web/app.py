"""The web app's HTTP side: a small JSON API (FastAPI) and the one page that uses it.

    GET  /                         the page (static/index.html)
    GET  /api/models               installed checkpoints: name, style, trained steps, noise factor
    GET  /api/models/{name}/thumbnail.png   the model applied to a built-in photo
    POST /api/stylize              multipart: file, model, noise_factor, size, seed, preserve_colors → PNG
    GET  /api/data_dir?path=...    is this a usable training folder (inside the data root)?
    POST /api/train                multipart: style (image), data_dir, name, steps, image_size,
                                   style_weight, content_weight → 202 and the job's state; 409 if busy
    GET  /api/train                the job's state; GET /api/train/sample.png its latest sample
    POST /api/train/cancel         stop the job (it keeps a resumable checkpoint)
    POST /api/optimize             multipart: file, style (repeatable), style_blend, steps, size,
                                   preserve_colors → NDJSON progress lines, previews, the final PNG

FastAPI documents all of it at /docs and /openapi.json. Every user error answers 4xx with
{"detail": "..."}; nothing a request sends can stop the server.
"""


import base64
import io
import json
import os
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ..checkpoint import load_checkpoint, load_generator
from ..config import OptimizeConfig, make_config
from ..data import find_images, fit_style_image, image_to_tensor, tensor_to_image, to_rgb
from ..errors import TextureNetsError
from ..losses import PerceptualLoss
from ..optimize import stylize_optimized
from ..stylize import SHIPPED_DIR, keep_photo_colors, photo_batch, prepare_generator, stylize_tensor
from .jobs import Busy, TrainingJobs

STATIC = Path(__file__).resolve().parent / "static"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TRAIN_SIZE = 1024  # training crops: larger ones would need tens of GB
MAX_STYLES = 8  # style images of one optimisation


@dataclass
class WebConfig:
    """Settings of one server (parsed by `texture-nets serve`)."""

    checkpoint_dir: str = "checkpoints"  # models listed (and new ones written) here; shipped styles too
    shipped: bool = True  # also list the styles that come with texture_nets
    data_root: str = "."  # training folders must lie inside it
    vgg_weights: str = "imagenet"
    device: str = "cpu"
    max_upload_mb: float = 20.0
    max_pixels: int = 50_000_000  # decoded size cap: refuses decompression bombs before decoding
    max_size: int = 2048  # longest side of a stylized picture
    engine: str = "auto"
    onnx_cache: str = ""  # where exported ONNX models are kept between server starts ("": export each start)
    viz_url: str = ""  # a Visdom server to link to (and to train with), e.g. http://localhost:8097
    train_defaults: dict = field(default_factory=dict)  # fixed training settings (e.g. batch_size)
    max_optimize_steps: int = 1000
    max_optimize_size: int = 1024


class UserError(TextureNetsError):
    """A bad request: answered with `status` and the message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class _Stopped(Exception):
    """Raised in an optimisation whose client has gone."""


class ModelStore:
    """Checkpoints by name (the user's folder first, then the shipped styles), prepared generators
    and thumbnails cached by file and modification time."""

    def __init__(self, config: WebConfig):
        self.config = config
        self._lock = threading.Lock()
        self._generators: dict[tuple[str, float], object] = {}
        self._thumbnails: dict[tuple[str, float], bytes] = {}
        self._info: dict[tuple[str, float], dict] = {}

    def folders(self) -> list[Path]:
        folders = [Path(self.config.checkpoint_dir)]
        return folders + [SHIPPED_DIR] if self.config.shipped and SHIPPED_DIR.resolve() != folders[0].resolve() else folders

    def paths(self) -> dict[str, Path]:
        """name → checkpoint file; a name in the user's folder hides a shipped one."""
        found: dict[str, Path] = {}
        for folder in self.folders():
            if folder.is_dir():
                for path in sorted(folder.glob("*.pt")):
                    if not path.name.endswith(".resume.pt"):
                        found.setdefault(path.stem, path)
        return found

    def path(self, name: str) -> Path:
        """The checkpoint of a listed model; names never reach the file system otherwise."""
        path = self.paths().get(name)
        if path is None:
            raise UserError(f"unknown model {name!r}: GET /api/models lists them", 404)
        return path

    def info(self, name: str, path: Path) -> dict | None:
        """What the gallery shows of a checkpoint, or None for one that cannot stylize photos."""
        try:
            key = (str(path), path.stat().st_mtime)
            if key not in self._info:
                self._info[key] = self._describe(name, path)
        except (TextureNetsError, OSError):  # unreadable, or removed since the folder was listed
            return None
        return self._info[key]

    def _describe(self, name: str, path: Path) -> dict | None:
        checkpoint = load_checkpoint(path)
        model = checkpoint["model"]
        return None if model.get("texture_only") else {
            "name": name, "style": checkpoint["style"].get("name", name), "steps": checkpoint.get("step"),
            "noise_factor": model.get("noise_factor"), "shipped": path.parent.resolve() == SHIPPED_DIR.resolve(),
            "thumbnail": f"/api/models/{name}/thumbnail.png"}

    def models(self) -> list[dict]:
        return [info for name, path in self.paths().items() if (info := self.info(name, path)) is not None]

    def generator(self, name: str):
        """The prepared generator of a model (ONNX Runtime on the CPU where installed)."""
        path = self.path(name)
        key = (str(path), path.stat().st_mtime)
        with self._lock:
            if key not in self._generators:
                generator = load_generator(path)
                if generator.config.texture_only:
                    raise UserError(f"{name} is a texture-synthesis model: it takes no photo")
                self._generators[key] = prepare_generator(generator, self.config.device, engine=self.config.engine,
                                                          onnx_cache=self.config.onnx_cache or None)
            return self._generators[key]

    def thumbnail(self, name: str) -> bytes:
        path = self.path(name)
        key = (str(path), path.stat().st_mtime)
        if key not in self._thumbnails:
            out = stylize_tensor(self.generator(name), photo_batch(STATIC / "sample.jpg"), seed=0)
            self._thumbnails[key] = png_bytes(out)
        return self._thumbnails[key]


def data_url(images: torch.Tensor) -> str:
    """An image tensor as a data: URL (PNG), for JSON."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(images)).decode("ascii")


def png_bytes(images: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    tensor_to_image(images).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    """An uploaded image as RGB, refusing non-images, corrupt files and decompression bombs (the
    pixel count is read from the header, before any decoding)."""
    if not data:
        raise UserError("the uploaded file is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise UserError(f"image is {image.width}x{image.height} pixels, over the limit of "
                                f"{max_pixels / 1e6:g} megapixels", 413)
            image.load()
            return to_rgb(image)
    except UserError:
        raise
    except Image.DecompressionBombError as exc:
        raise UserError(f"image refused: {exc}", 413) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"not a readable image ({exc})", 415) from exc


def split_viz_url(url: str) -> tuple[str, int]:
    """'http://host:8097' → ('http://host', 8097); Visdom's default port where none is given."""
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(url)
        port = parts.port or 8097
    except ValueError as exc:
        raise TextureNetsError(f"viz_url: not a URL with a valid port: {url!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise TextureNetsError(f"viz_url must look like http://host:port, got {url!r}")
    return f"{parts.scheme}://{parts.hostname}", port


def check_data_dir(root: str | os.PathLike, requested: str) -> tuple[Path, int]:
    """The training folder `requested` (relative to `root`, or absolute), resolved (symbolic links
    and '..' included) and required to lie inside `root` and hold images: (folder, image count)."""
    if not requested.strip():
        raise UserError("choose a data folder")
    base = Path(root).resolve()
    try:
        folder = (base / requested.strip()).resolve()
    except (OSError, ValueError) as exc:  # e.g. a NUL byte, a symbolic-link loop
        raise UserError(f"not a usable folder name: {requested!r} ({exc})") from exc
    if folder != base and base not in folder.parents:
        raise UserError(f"data folder must be inside {base}", 403)
    try:
        return folder, len(find_images(folder))
    except (TextureNetsError, OSError) as exc:  # OSError: e.g. a folder we may not read
        raise UserError(str(exc)) from exc


def create_app(config: WebConfig | None = None):
    """The FastAPI application for `config`."""
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    config = config or WebConfig()
    store = ModelStore(config)
    jobs = TrainingJobs()
    upload_dir = Path(config.checkpoint_dir) / ".uploads"
    max_bytes = int(config.max_upload_mb * 2**20)
    app = FastAPI(title="texture_nets", version=_version(),
                  description="Stylize photos with trained texture networks; train new styles.")
    app.state.store, app.state.jobs, app.state.config = store, jobs, config

    @app.exception_handler(TextureNetsError)
    async def user_error(_request: Request, exc: TextureNetsError):
        status = getattr(exc, "status", 409 if isinstance(exc, Busy) else 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        """Refuse a body announced as over the cap before reading it (uploads are checked again as read)."""
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_bytes + 64 * 1024:
            return JSONResponse({"detail": f"upload over {config.max_upload_mb:g} MB"}, status_code=413)
        return await call_next(request)

    async def read_upload(upload: UploadFile) -> bytes:
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UserError(f"upload over {config.max_upload_mb:g} MB", 413)
        return data

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/models", summary="Installed checkpoints")
    def models():
        return {"models": store.models()}

    @app.get("/api/models/{name}/thumbnail.png", summary="A model applied to a built-in photo",
             response_class=Response)
    def thumbnail(name: str):
        return Response(store.thumbnail(name), media_type="image/png",
                        headers={"Cache-Control": "max-age=60"})

    @app.post("/api/stylize", summary="Stylize an uploaded photo; answers with the PNG", response_class=Response)
    async def stylize(file: UploadFile = File(...), model: str = Form(...), noise_factor: float | None = Form(None),
                      size: int | None = Form(None), seed: int = Form(0), preserve_colors: bool = Form(False)):
        data = await read_upload(file)
        if noise_factor is not None and not 0 <= noise_factor <= 10:
            raise UserError(f"noise_factor must be in 0..10, got {noise_factor}")
        if size is not None and not 16 <= size <= config.max_size:
            raise UserError(f"size must be in 16..{config.max_size}, got {size}")
        if not 0 <= seed < 2**63:
            raise UserError(f"seed must be in [0, 2**63), got {seed}")

        def work() -> tuple[bytes, float]:
            generator = store.generator(model)
            photo = decode_upload(data, config.max_pixels)
            tensor = photo_batch(photo, size or min(max(photo.size), config.max_size))
            started = time.perf_counter()
            out = stylize_tensor(generator, tensor, noise_factor=noise_factor, seed=seed)
            out = keep_photo_colors(out, tensor, "luminance" if preserve_colors else None)
            seconds = time.perf_counter() - started  # the network (and colours), not decoding or PNG
            return png_bytes(out), seconds

        png, seconds = await run_in_threadpool(work)
        return Response(png, media_type="image/png", headers={"X-Stylize-Seconds": f"{seconds:.3f}"})

    @app.get("/api/data_dir", summary="Check a training folder")
    def data_dir(path: str = Query(...)):
        folder, count = check_data_dir(config.data_root, path)
        return {"path": str(folder), "images": count}

    @app.post("/api/train", status_code=202, summary="Start training a style in the background")
    async def train(style: UploadFile = File(...), data_dir: str = Form(...), name: str = Form(""),
                    steps: int = Form(500), image_size: int = Form(256), style_weight: float = Form(1.0),
                    content_weight: float = Form(1.0)):
        if jobs.status()["state"] in ("starting", "running"):  # told before any work (start() checks again)
            raise Busy(f"a training job ({jobs.status()['name']}) is running: wait for it or cancel it")
        data = await read_upload(style)
        style_image = await run_in_threadpool(decode_upload, data, config.max_pixels)
        name = name.strip() or Path(style.filename or "style").stem
        if not NAME.match(name) or name.endswith(".resume"):
            raise UserError("name: letters, digits, '_', '-' and '.', up to 64 characters")
        if not 1 <= steps <= 1_000_000:
            raise UserError(f"steps must be in 1..1000000, got {steps}")
        if not 16 <= image_size <= MAX_TRAIN_SIZE:
            raise UserError(f"image_size must be in 16..{MAX_TRAIN_SIZE}, got {image_size}")
        taken = [p.name for p in (Path(config.checkpoint_dir) / f"{name}.pt", Path(config.checkpoint_dir) / f"{name}.resume.pt")
                 if p.exists()]
        if taken or name in store.paths():
            raise UserError(f"a model named {name!r} exists ({', '.join(taken) or 'a shipped style'}): "
                            f"choose another name", 409)
        folder, _ = check_data_dir(config.data_root, data_dir)
        upload_dir.mkdir(parents=True, exist_ok=True)
        style_path = upload_dir / f"{name}-{uuid.uuid4().hex[:8]}.png"  # never another job's file
        style_image.save(style_path)
        values = {"num_workers": 0, "checkpoint_every": 100, "val_every": max(1, min(100, steps // 5)),
                  **config.train_defaults,
                  "data_dir": str(folder), "texture": [str(style_path)], "name": name, "num_iterations": steps,
                  "image_size": image_size, "style_weight": style_weight, "content_weight": content_weight,
                  "checkpoint_dir": config.checkpoint_dir, "vgg_weights": config.vgg_weights,
                  "device": config.device}
        if config.viz_url:
            server, port = split_viz_url(config.viz_url)
            values.update(viz=True, viz_server=server, viz_port=port)
        return jobs.start(make_config({}, values))

    @app.get("/api/train", summary="The training job's state")
    def train_status():
        return {**jobs.status(), "viz_url": config.viz_url}

    @app.get("/api/train/sample.png", summary="The job's latest validation sample", response_class=Response)
    def train_sample():
        sample = jobs.sample()
        if sample is None:
            raise UserError("no sample yet", 404)
        return Response(sample, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.post("/api/train/cancel", summary="Stop the training job (a resumable checkpoint is kept)")
    def train_cancel():
        return jobs.cancel()

    optimizing = threading.Lock()  # one optimisation at a time: each takes the whole CPU

    @app.post("/api/optimize", summary="Gatys et al.'s optimisation, streamed as NDJSON progress lines")
    async def optimize(file: UploadFile = File(...), style: list[UploadFile] = File(...), style_blend: str = Form(""),
                       steps: int = Form(100), size: int = Form(384), style_weight: float = Form(1.0),
                       preserve_colors: bool = Form(False)):
        if not 1 <= steps <= config.max_optimize_steps:
            raise UserError(f"steps must be in 1..{config.max_optimize_steps}, got {steps}")
        if not 16 <= size <= config.max_optimize_size:
            raise UserError(f"size must be in 16..{config.max_optimize_size}, got {size}")
        if len(style) > MAX_STYLES:
            raise UserError(f"at most {MAX_STYLES} style images, got {len(style)}")
        try:
            blend = [float(w) for w in style_blend.split(",") if w.strip()] or None
        except ValueError as exc:
            raise UserError(f"style_blend: comma-separated numbers, got {style_blend!r}") from exc
        values = {"style": [f"upload{i}" for i in range(len(style))], "steps": steps, "style_weight": style_weight,
                  "style_blend": blend or [], "vgg_weights": config.vgg_weights}
        settings = make_config({}, values, cls=OptimizeConfig)  # checks the blend against the styles
        if not optimizing.acquire(blocking=False):  # before any decoding: a refused request costs nothing
            raise UserError("an optimisation is running: try again when it has finished", 409)
        try:
            photo = await run_in_threadpool(decode_upload, await read_upload(file), config.max_pixels)
            styles = []
            for upload in style:  # each shrunk to style_size at once: at most 8 small images are kept
                image = await run_in_threadpool(decode_upload, await read_upload(upload), config.max_pixels)
                image = fit_style_image(image, settings.style_size, upload.filename or "style")
                styles.append(image_to_tensor(image).unsqueeze(0))
        except BaseException:
            optimizing.release()
            raise
        stop = threading.Event()
        events = _start_optimization(settings, photo, styles, size, preserve_colors, optimizing, stop)

        def lines():
            try:
                while (line := events.get()) is not None:
                    yield json.dumps(line) + "\n"
            finally:  # the client went away (or the run ended): stop the optimisation, free the lock
                stop.set()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    def _start_optimization(settings, photo, styles, size, preserve_colors, lock, stop) -> queue.Queue:
        """Run the optimisation in a thread (it releases `lock` when done, or soon after `stop` is
        set); its progress comes as dicts on the returned queue, then None."""
        events: queue.Queue = queue.Queue()
        preview_every = max(1, settings.steps // 10)

        def on_step(step, terms, image):
            if stop.is_set():
                raise _Stopped()
            line = {"step": step, "total": settings.steps, "style": round(float(terms.style), 5),
                    "content": round(float(terms.content), 5)}
            if step % preview_every == 0 and step < settings.steps:
                line["preview"] = data_url(image)
            events.put(line)

        def work():
            try:
                content = photo_batch(photo, size).to(config.device)
                criterion = PerceptualLoss.from_config(settings).to(config.device)
                targets = [image.to(config.device) for image in styles]
                result = stylize_optimized(criterion, content, targets, settings.style_blend or None,
                                           preserve_colors="luminance" if preserve_colors else None,
                                           steps=settings.steps, on_step=on_step)
                events.put({"done": True, "image": data_url(result)})
            except _Stopped:
                pass
            except Exception as exc:  # noqa: BLE001 — reported in the stream; the server stays up
                events.put({"error": str(exc) if isinstance(exc, TextureNetsError) else f"{type(exc).__name__}: {exc}"})
            finally:
                events.put(None)
                lock.release()

        threading.Thread(target=work, name="texture-nets-optimize", daemon=True).start()
        return events

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _version() -> str:
    from .. import __version__
    return __version__
