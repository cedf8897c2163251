"""The web app's HTTP side: a small JSON API (FastAPI) and the one page that uses it.

    GET  /                         the page (static/index.html)
    GET  /api/models               installed checkpoints: name, style, trained steps, noise factor
    GET  /api/models/{name}/thumbnail.png   the model applied to a built-in photo
    POST /api/stylize              multipart: file, model, noise_factor, size, seed, preserve_colors → PNG
                                   (X-Stylize-Seconds: the network's time; X-Stylize-Tile: none or the tile size)
    GET  /api/data_dir?path=...    is this a usable training folder (inside the data root)?
    POST /api/train                multipart: style (image), data_dir, name, steps, image_size,
                                   style_weight, content_weight → 202 and the job's state; 409 if busy
    GET  /api/train                the job's state; GET /api/train/sample.png its latest sample
    POST /api/train/cancel         stop the job (it keeps a resumable checkpoint)
    POST /api/optimize             multipart: file, style (repeatable), style_blend, steps, size,
                                   preserve_colors → NDJSON progress lines, previews, the final PNG

FastAPI documents all of it at /docs and /openapi.json. Every user error answers 4xx with
{"detail": "..."} (one line); nothing a request sends can stop the server. Its limits (limits.py):
at most `max_concurrent` requests decode and stylize at once and `max_queue` more wait (503 with
Retry-After beyond); each request's memory is estimated before decoding and must fit
`request_memory_gb` (tiled if that helps, else 413); bodies over the upload cap are cut off as they
stream in (413); memory is handed back after large requests.
"""


import base64
import copy
import io
import json
import os
import queue
import re
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image

from ..checkpoint import generator_from_checkpoint, load_checkpoint, load_generator
from ..config import OptimizeConfig, make_config
from ..data import find_images, fit_style_image, image_to_tensor, tensor_to_image, to_rgb
from ..errors import TextureNetsError
from ..losses import PerceptualLoss
from ..memory import device_memory, gigabytes, picture_bytes, training_bytes
from ..optimize import stylize_optimized
from ..stylize import (SHIPPED_DIR, keep_photo_colors, photo_batch, prepare_generator, resized_dimensions,
                       stylize_tensor)
from .jobs import Busy, TrainingJobs
from .video_routes import add_video_routes
from .limits import (LARGE_REQUEST, MAX_CONCURRENT, MAX_QUEUE, MAX_REQUEST_MEMORY_GB, QUEUE_PER_SLOT, BodyLimit,
                     UserError, WorkQueue, check_memory_now, check_number, check_stylize_form, clip, decode_bytes,
                     default_limits, largest_fitting_size, log, plan_stylization, release_memory, shown,
                     shrink_onnx_arena)

STATIC = Path(__file__).resolve().parent / "static"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TRAIN_SIZE = 1024  # training crops: larger ones would need tens of GB
MAX_STYLES = 8  # style images of one optimisation
MAX_WEIGHT = 1e6  # loss weights: the losses are relative (about 1); more is a typo
MAX_CHECKPOINT_BYTES = 2**30  # a checkpoint file larger than this is not one of ours (they are < 10 MB)
VGG_BYTES = 200 * 2**20  # VGG-19's weights and the optimiser's state besides the per-pixel estimate
SAVED_FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif",
                 "GIF": ".gif", "PPM": ".ppm"}  # a style upload in these is kept as sent


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
    max_video_seconds: float = 10.0  # longest clip /api/stylize_video takes
    max_video_size: int = 640  # longest side its frames are stylized at
    max_concurrent: int | None = None  # requests decoded and stylized at once (None: one per core, at most 4)
    max_queue: int | None = None  # requests waiting their turn beyond those (None: 8 per concurrent one)
    request_memory_gb: float | None = None  # memory one request may use (None: from the machine's, limits.py)

    def resolved(self) -> "WebConfig":
        """A copy with the machine-derived defaults (limits.default_limits) filled in, checked
        (TextureNetsError naming the setting)."""
        config = self
        if None in (self.max_concurrent, self.max_queue, self.request_memory_gb):
            concurrent, _, memory = default_limits()
            config = replace(self, max_concurrent=concurrent if self.max_concurrent is None else self.max_concurrent,
                             request_memory_gb=memory if self.request_memory_gb is None else self.request_memory_gb)
            if config.max_queue is None:
                per_slot = config.max_concurrent if isinstance(config.max_concurrent, int) else concurrent
                config = replace(config, max_queue=QUEUE_PER_SLOT * per_slot)
        config.check()
        return config

    def check(self) -> None:
        check_number("--max_upload_mb", self.max_upload_mb, 0, 2**20)
        check_number("max_pixels", self.max_pixels, 1, 10**12, integer=True, low_inclusive=True)
        check_number("max_size", self.max_size, 16, 2**16, integer=True, low_inclusive=True)
        check_number("--max_concurrent", self.max_concurrent, 1, MAX_CONCURRENT, integer=True, low_inclusive=True)
        check_number("--max_queue", self.max_queue, 0, MAX_QUEUE, integer=True, low_inclusive=True)
        check_number("--request_memory_gb", self.request_memory_gb, 0, MAX_REQUEST_MEMORY_GB)
        check_number("max_optimize_steps", self.max_optimize_steps, 1, 10**6, integer=True, low_inclusive=True)
        check_number("max_optimize_size", self.max_optimize_size, 16, 2**16, integer=True, low_inclusive=True)
        check_number("--max_video_seconds", self.max_video_seconds, 0, 3600)
        check_number("--max_video_size", self.max_video_size, 16, 2**16, integer=True, low_inclusive=True)

    def limits_line(self) -> str:
        return (f"{self.max_concurrent} at a time, {self.max_queue} waiting, {self.request_memory_gb:g} GB per "
                f"request, uploads up to {self.max_upload_mb:g} MB")


class _Stopped(Exception):
    """Raised in an optimisation whose client has gone."""


class ModelStore:
    """Checkpoints by name (the user's folder first, then the shipped styles), prepared generators
    and thumbnails cached per file (a new version of a file replaces the old entries). A file that
    cannot be used (unreadable, damaged, absurd, a link loop) is left out of the gallery with one
    logged warning per version, and answers 404 by name."""

    def __init__(self, config: WebConfig):
        self.config = config
        self._lock = threading.Lock()
        self._generators: dict[str, tuple[tuple, object]] = {}
        self._thumbnails: dict[str, tuple[tuple, bytes]] = {}
        self._info: dict[str, tuple[tuple, dict | None]] = {}

    def folders(self) -> list[Path]:
        folders = [Path(self.config.checkpoint_dir)]
        if not self.config.shipped:
            return folders
        try:
            same = SHIPPED_DIR.resolve() == folders[0].resolve()
        except (OSError, RuntimeError):  # e.g. a symbolic-link loop
            same = False
        return folders if same else folders + [SHIPPED_DIR]

    def paths(self) -> dict[str, Path]:
        """name → checkpoint file; a name in the user's folder hides a shipped one."""
        found: dict[str, Path] = {}
        for folder in self.folders():
            try:
                files = sorted(folder.glob("*.pt")) if folder.is_dir() else []
            except OSError as exc:
                log.warning("cannot list the models in %s (%s)", folder, exc)
                continue
            for path in files:
                if not path.name.endswith(".resume.pt"):
                    found.setdefault(path.stem, path)
        return found

    def path(self, name: str) -> Path:
        """The checkpoint of a listed model; names never reach the file system otherwise."""
        path = self.paths().get(name)
        if path is None:
            raise UserError(f"unknown model {shown(name)}: GET /api/models lists them", 404)
        return path

    @staticmethod
    def _version(path: Path) -> tuple:
        """What identifies a file's version (OSError if it cannot be read, TextureNetsError if too large)."""
        stat = path.stat()
        if stat.st_size > MAX_CHECKPOINT_BYTES:
            raise TextureNetsError(f"{path}: {stat.st_size / 2**30:.1f} GB, too large to be a texture_nets checkpoint")
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def info(self, name: str, path: Path) -> dict | None:
        """What the gallery shows of a checkpoint, or None for one that cannot stylize photos."""
        try:
            version = self._version(path)
        except (OSError, TextureNetsError) as exc:  # unreadable, a link loop, removed since listed, huge
            self._skip(path, exc, ("unreadable", str(exc)))
            return None
        cached = self._info.get(str(path))
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            info = self._describe(name, path)
        except Exception as exc:  # noqa: BLE001 — any damaged file: left out, said once per version
            log.warning("models: skipping %s: %s", path, exc if isinstance(exc, TextureNetsError)
                        else f"{type(exc).__name__}: {exc}")
            info = None
        self._info[str(path)] = (version, info)
        return info

    def _skip(self, path: Path, exc: Exception, version: tuple) -> None:
        cached = self._info.get(str(path))
        if cached is None or cached[0] != version:
            log.warning("models: skipping %s: %s", path, exc)
            self._info[str(path)] = (version, None)

    def _describe(self, name: str, path: Path) -> dict | None:
        checkpoint = load_checkpoint(path)
        generator_from_checkpoint(checkpoint, str(path))  # the weights fit the generator it describes
        model, style = checkpoint["model"], checkpoint.get("style") or {}
        return None if model.get("texture_only") else {
            "name": name, "style": str(style.get("name", name)), "steps": checkpoint.get("step"),
            "noise_factor": model.get("noise_factor"), "shipped": _same_folder(path.parent, SHIPPED_DIR),
            "thumbnail": f"/api/models/{name}/thumbnail.png"}

    def models(self) -> list[dict]:
        return [info for name, path in self.paths().items() if (info := self.info(name, path)) is not None]

    def generator(self, name: str):
        """The prepared generator of a model (ONNX Runtime on the CPU where installed); 404 for a
        file that cannot be used."""
        path = self.path(name)
        with self._lock:
            try:
                version = self._version(path)
                cached = self._generators.get(str(path))
                if cached is not None and cached[0] == version:
                    return cached[1]
                generator = load_generator(path)
            except Exception as exc:  # noqa: BLE001 — damaged, absurd, unreadable: not a usable model
                reason = exc if isinstance(exc, TextureNetsError) else f"{type(exc).__name__}: {exc}"
                log.warning("models: %s cannot be used: %s", path, reason)
                raise UserError(f"model {shown(name)} cannot be used (a damaged checkpoint): GET /api/models lists "
                                f"the usable ones", 404) from exc
            if generator.config.texture_only:
                raise UserError(f"{name} is a texture-synthesis model: it takes no photo")
            prepared = shrink_onnx_arena(prepare_generator(generator, self.config.device, engine=self.config.engine,
                                                           onnx_cache=self.config.onnx_cache or None))
            self._generators[str(path)] = (version, prepared)
            return prepared

    def thumbnail(self, name: str) -> bytes:
        generator = self.generator(name)
        path = self.path(name)
        version = self._generators[str(path)][0]
        cached = self._thumbnails.get(str(path))
        if cached is None or cached[0] != version:
            with torch.inference_mode():
                out = stylize_tensor(generator, photo_batch(STATIC / "sample.jpg"), seed=0)
            cached = self._thumbnails[str(path)] = (version, png_bytes(out))
        return cached[1]


def data_url(images: torch.Tensor) -> str:
    """An image tensor as a data: URL (PNG), for JSON."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(images)).decode("ascii")


def png_bytes(images: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    tensor_to_image(images).save(buffer, format="PNG")
    return buffer.getvalue()


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


class Header(NamedTuple):
    """What an image file's header says, before any pixel is decoded."""

    width: int
    height: int
    mode: str
    format: str | None


def image_header(data: bytes, max_pixels: int) -> Header:
    """The header of an uploaded image, refusing non-images (415) and pictures over `max_pixels`
    (413: decompression bombs) without decoding anything."""
    if not data:
        raise UserError("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                header = Header(image.width, image.height, image.mode, image.format)
    except Image.DecompressionBombError as exc:
        raise UserError(f"image refused: {exc}", 413) from exc
    except Exception as exc:  # noqa: BLE001 — Pillow's plugins raise more than OSError on damaged files
        raise UserError(f"not a readable image ({type(exc).__name__}: {clip(str(exc), 200)})", 415) from exc
    if header.width * header.height > max_pixels:
        raise UserError(f"image is {header.width}x{header.height} pixels, over the limit of "
                        f"{max_pixels / 1e6:g} megapixels", 413)
    return header


def decode_image(data: bytes) -> Image.Image:
    """An uploaded image (its header already checked by `image_header`) decoded to RGB."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return to_rgb(image)
    except MemoryError as exc:
        raise UserError("the image is too large to decode on this server", 413) from exc
    except Image.DecompressionBombError as exc:
        raise UserError(f"image refused: {exc}", 413) from exc
    except Exception as exc:  # noqa: BLE001 — truncated or damaged data, in any of Pillow's plugins
        raise UserError(f"not a readable image ({type(exc).__name__}: {clip(str(exc), 200)})", 415) from exc


def decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    """An uploaded image as RGB, refusing non-images, corrupt files and decompression bombs (the
    pixel count is read from the header, before any decoding)."""
    image_header(data, max_pixels)
    return decode_image(data)


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
    and '..' included) and required to lie inside `root` and hold images: (folder, image count).
    Blocking (it walks the folder): call it from a thread."""
    if not requested.strip():
        raise UserError("choose a data folder")
    try:
        base = Path(root).resolve(strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise UserError(f"the server's data root {root} cannot be used ({exc}): ask its administrator") from exc
    try:
        folder = (base / requested.strip()).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symbolic-link loop, a name too long
        raise UserError(f"not a usable folder name: {shown(requested)} ({type(exc).__name__})") from exc
    if folder != base and base not in folder.parents:
        raise UserError(f"data folder must be inside {base}", 403)
    try:
        return folder, len(find_images(folder))
    except TextureNetsError as exc:
        raise UserError(clip(str(exc))) from exc
    except (OSError, RuntimeError, ValueError) as exc:  # a folder we may not read, a name too long
        raise UserError(f"data folder {shown(requested)} cannot be read ({type(exc).__name__}: "
                        f"{clip(getattr(exc, 'strerror', None) or str(exc), 100)})") from exc



def create_app(config: WebConfig | None = None):
    """The FastAPI application for `config` (its machine-derived limits filled in: app.state.config)."""
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    config = (config or WebConfig()).resolved()
    store = ModelStore(config)
    jobs = TrainingJobs()
    work = WorkQueue(config.max_concurrent, config.max_queue)
    upload_dir = Path(config.checkpoint_dir) / ".uploads"
    max_bytes = int(config.max_upload_mb * 2**20)
    budget = int(config.request_memory_gb * 2**30)
    app = FastAPI(title="texture_nets", version=_version(),
                  description="Stylize photos with trained texture networks; train new styles.")
    app.state.store, app.state.jobs, app.state.config, app.state.queue = store, jobs, config, work
    # the whole body: the files and the form's own bytes (a few per field); checked as it streams in
    app.add_middleware(BodyLimit, max_bytes=max_bytes + 64 * 1024, message=f"upload over {config.max_upload_mb:g} MB")

    @app.exception_handler(TextureNetsError)
    async def user_error(_request: Request, exc: TextureNetsError):
        status = getattr(exc, "status", 409 if isinstance(exc, Busy) else 400)
        return JSONResponse({"detail": clip(str(exc), 600)}, status_code=status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_field(_request: Request, exc: RequestValidationError):
        """FastAPI's list of errors as one line: 'seed: Input should be a valid integer'."""
        problems = []
        for error in exc.errors():
            loc = list(error.get("loc", ()))
            where = ".".join(str(part) for part in (loc[1:] if loc[:1] in (["body"], ["query"], ["path"]) else loc))
            problems.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
        return JSONResponse({"detail": clip("; ".join(problems) or "invalid request", 600)}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(_request: Request, exc: Exception):
        log.error("internal error: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server keeps running"},
                            status_code=500)

    async def read_upload(upload: UploadFile) -> bytes:
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UserError(f"upload over {config.max_upload_mb:g} MB", 413)
        return data

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/models", summary="Installed checkpoints, and the sizes and clip length this server takes")
    def models():
        return {"models": store.models(),
                "limits": {"max_size": config.max_size, "max_video_size": config.max_video_size,
                           "max_video_seconds": config.max_video_seconds, "max_upload_mb": config.max_upload_mb}}

    @app.get("/api/models/{name}/thumbnail.png", summary="A model applied to a built-in photo",
             response_class=Response)
    def thumbnail(name: str):
        return Response(store.thumbnail(name), media_type="image/png",
                        headers={"Cache-Control": "max-age=60"})

    def stylize_upload(data: bytes, model: str, size: int | None, noise_factor: float | None, seed: int,
                       preserve_colors: bool) -> tuple[bytes, float, int | None]:
        """Header, memory plan, decoding, the network, PNG: (png, network seconds, tile or None).
        Runs in a worker thread, in a place of the work queue."""
        generator = store.generator(model)
        header = image_header(data, config.max_pixels)
        longest = size or min(max(header.width, header.height), config.max_size)
        target = resized_dimensions((header.width, header.height), longest)
        tile, need = plan_stylization(generator, header[:3], target, budget)
        check_memory_now(need)
        try:
            tensor = photo_batch(decode_image(data), longest)
            # tiling switches the modules' norms to whole-image statistics: on a private copy, so
            # that requests running the shared generator at the same time are not affected
            runner = generator if tile is None else copy.deepcopy(getattr(generator, "torch_generator", generator))
            started = time.perf_counter()
            with torch.inference_mode():
                out = stylize_tensor(runner, tensor, noise_factor=noise_factor, seed=seed, tile=tile)
                out = keep_photo_colors(out, tensor, "luminance" if preserve_colors else None)
            seconds = time.perf_counter() - started  # the network (and colours), not decoding or PNG
            del tensor, runner
            return png_bytes(out), seconds, tile
        finally:
            if need > LARGE_REQUEST:
                release_memory()

    @app.post("/api/stylize", summary="Stylize an uploaded photo; answers with the PNG", response_class=Response)
    async def stylize(request: Request, file: UploadFile = File(...), model: str = Form(...),
                      noise_factor: float | None = Form(None), size: int | None = Form(None), seed: int = Form(0),
                      preserve_colors: bool = Form(False)):
        check_stylize_form(size, config.max_size, noise_factor, seed)
        store.path(model)  # an unknown model costs nothing
        async with work.slot(request.is_disconnected):
            data = await read_upload(file)
            png, seconds, tile = await run_in_threadpool(stylize_upload, data, model, size, noise_factor, seed,
                                                         preserve_colors)
        return Response(png, media_type="image/png",
                        headers={"X-Stylize-Seconds": f"{seconds:.3f}", "X-Stylize-Tile": str(tile or "none")})

    add_video_routes(app, store, work, config, read_upload)

    @app.get("/api/data_dir", summary="Check a training folder")
    def data_dir(path: str = Query(...)):
        folder, count = check_data_dir(config.data_root, path)
        return {"path": str(folder), "images": count}

    def check_training_memory(settings) -> None:
        """413 for training crops that cannot fit this server's budget (the GPU's free memory on CUDA)."""
        def need(size: int) -> int:
            return training_bytes(size, settings.batch_size, max(settings.photo_size, size), settings.num_val,
                                  settings.num_workers)
        device = torch.device(config.device)
        allowed = (device_memory(device) or budget) if device.type == "cuda" else budget
        if need(settings.image_size) > allowed:
            fitting = largest_fitting_size(lambda w, h: need(max(w, h)), (settings.image_size,) * 2, allowed)
            fix = f"use image_size ≤ {fitting}" if fitting >= 16 else "this server cannot train"
            raise UserError(f"training on batches of {settings.batch_size} crops of {settings.image_size} pixels needs "
                            f"about {gigabytes(need(settings.image_size))} of memory, over this server's "
                            f"{gigabytes(allowed)} per job: {fix}", 413)

    def save_style(data: bytes, stem: Path, style_size: int, filename: str) -> Path:
        """Check and decode a style upload (in a thread), then keep it as sent (re-encoded as PNG only
        in a format training could not read back): the file the job trains on."""
        header = image_header(data, config.max_pixels)
        need = decode_bytes(*header[:3])
        if need > budget:
            raise UserError(f"the style image is {header.width}x{header.height} pixels: decoding it needs about "
                            f"{gigabytes(need)}, over this server's {gigabytes(budget)} per request", 413)
        check_memory_now(need)
        try:
            image = fit_style_image(decode_image(data), style_size, filename)  # too small: refused now
            suffix = SAVED_FORMATS.get(header.format or "")
            path = stem.with_name(stem.name + (suffix or ".png"))
            tmp = stem.with_name(f".{stem.name}.tmp")
            try:
                upload_dir.mkdir(parents=True, exist_ok=True)
                if suffix:
                    tmp.write_bytes(data)
                else:
                    image.save(tmp, format="PNG")
                os.replace(tmp, path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise UserError(f"the server cannot save the style image ({exc.strerror or exc})", 507) from exc
            return path
        finally:
            if need > LARGE_REQUEST:
                release_memory()

    @app.post("/api/train", status_code=202, summary="Start training a style in the background")
    async def train(request: Request, style: UploadFile = File(...), data_dir: str = Form(...), name: str = Form(""),
                    steps: int = Form(500), image_size: int = Form(256), style_weight: float = Form(1.0),
                    content_weight: float = Form(1.0)):
        # every field first: a refused request decodes nothing and writes nothing
        if jobs.status()["state"] in ("starting", "running"):  # told before any work (start() checks again)
            raise Busy(f"a training job ({jobs.status()['name']}) is running: wait for it or cancel it")
        name = name.strip() or Path(style.filename or "style").stem
        if not NAME.match(name) or name.endswith(".resume"):
            raise UserError("name: letters, digits, '_', '-' and '.', up to 64 characters")
        if not 1 <= steps <= 1_000_000:
            raise UserError(f"steps must be in 1..1000000, got {clip(str(steps), 40)}")
        if not 16 <= image_size <= MAX_TRAIN_SIZE:
            raise UserError(f"image_size must be in 16..{MAX_TRAIN_SIZE}, got {clip(str(image_size), 40)}")
        for label, weight in (("style_weight", style_weight), ("content_weight", content_weight)):
            if not 0 <= weight <= MAX_WEIGHT:  # NaN fails too
                raise UserError(f"{label} must be a number in [0, {MAX_WEIGHT:g}], got {weight}")
        taken = [p.name for p in (Path(config.checkpoint_dir) / f"{name}.pt", Path(config.checkpoint_dir) / f"{name}.resume.pt")
                 if p.exists()]
        if taken or name in store.paths():
            raise UserError(f"a model named {name!r} exists ({', '.join(taken) or 'a shipped style'}): "
                            f"choose another name", 409)
        folder, _ = await run_in_threadpool(check_data_dir, config.data_root, data_dir)
        stem = upload_dir / f"{name}-{uuid.uuid4().hex[:8]}"  # never another job's file
        values = {"num_workers": 0, "checkpoint_every": 100, "val_every": max(1, min(100, steps // 5)),
                  **config.train_defaults,
                  "data_dir": str(folder), "texture": [f"{stem}.png"], "name": name, "num_iterations": steps,
                  "image_size": image_size, "style_weight": style_weight, "content_weight": content_weight,
                  "checkpoint_dir": config.checkpoint_dir, "vgg_weights": config.vgg_weights,
                  "device": config.device}
        if config.viz_url:
            server, port = split_viz_url(config.viz_url)
            values.update(viz=True, viz_server=server, viz_port=port)
        settings = make_config({}, values)  # every setting checked before the upload is looked at
        check_training_memory(settings)
        async with work.slot(request.is_disconnected):
            data = await read_upload(style)
            style_path = await run_in_threadpool(save_style, data, stem, settings.style_size,
                                                 Path(style.filename or "style").name)
        try:
            return jobs.start(replace(settings, texture=[str(style_path)]))
        except BaseException:  # refused after all (e.g. another job started meanwhile): nothing left behind
            style_path.unlink(missing_ok=True)
            raise

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

    def prepare_optimization(uploads: list[bytes], names: list[str], size: int, style_size: int):
        """The photo and the style images, checked from their headers against the memory budget
        before any is decoded (in a thread): (photo, style tensors)."""
        headers = [image_header(data, config.max_pixels) for data in uploads]
        photo = headers[0]
        target = resized_dimensions((photo.width, photo.height), size)
        kept = len(uploads[1:]) * style_size * style_size * 12
        decode = max(decode_bytes(*header[:3]) for header in headers)

        def need(width, height):
            return picture_bytes(width, height) + VGG_BYTES + kept + decode

        if need(*target) > budget:
            fitting = largest_fitting_size(need, target, budget)
            fix = f"use size ≤ {fitting}" if fitting >= 16 else "send smaller images"
            raise UserError(f"optimising {target[0]}x{target[1]} pixels needs about {gigabytes(need(*target))} of "
                            f"memory, over this server's {gigabytes(budget)} per request: {fix}", 413)
        check_memory_now(need(*target))
        styles = []
        for data, name in zip(uploads[1:], names[1:]):  # each shrunk to style_size at once
            image = fit_style_image(decode_image(data), style_size, name)
            styles.append(image_to_tensor(image).unsqueeze(0))
        return decode_image(uploads[0]), styles

    @app.post("/api/optimize", summary="Gatys et al.'s optimisation, streamed as NDJSON progress lines")
    async def optimize(file: UploadFile = File(...), style: list[UploadFile] = File(...), style_blend: str = Form(""),
                       steps: int = Form(100), size: int = Form(384), style_weight: float = Form(1.0),
                       preserve_colors: bool = Form(False)):
        if not 1 <= steps <= config.max_optimize_steps:
            raise UserError(f"steps must be in 1..{config.max_optimize_steps}, got {clip(str(steps), 40)}")
        if not 16 <= size <= config.max_optimize_size:
            raise UserError(f"size must be in 16..{config.max_optimize_size}, got {clip(str(size), 40)}")
        if len(style) > MAX_STYLES:
            raise UserError(f"at most {MAX_STYLES} style images, got {len(style)}")
        if not 0 <= style_weight <= MAX_WEIGHT:  # NaN fails too
            raise UserError(f"style_weight must be a number in [0, {MAX_WEIGHT:g}], got {style_weight}")
        try:
            blend = [float(w) for w in style_blend.split(",") if w.strip()] or None
        except ValueError as exc:
            raise UserError(f"style_blend: comma-separated numbers, got {shown(style_blend)}") from exc
        if blend is not None and len(blend) != len(style):
            raise UserError(f"style_blend: {len(blend)} weights for {len(style)} style images: give one per image")
        values = {"style": [f"upload{i}" for i in range(len(style))], "steps": steps, "style_weight": style_weight,
                  "style_blend": blend or [], "vgg_weights": config.vgg_weights}
        settings = make_config({}, values, cls=OptimizeConfig)  # checks the blend's values too
        if not optimizing.acquire(blocking=False):  # before any decoding: a refused request costs nothing
            raise UserError("an optimisation is running: try again when it has finished", 409)
        try:
            uploads = [await read_upload(file)] + [await read_upload(upload) for upload in style]
            names = [file.filename or "photo"] + [Path(upload.filename or "style").name for upload in style]
            photo, styles = await run_in_threadpool(prepare_optimization, uploads, names, size, settings.style_size)
            del uploads
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
                release_memory()
                lock.release()

        threading.Thread(target=work, name="texture-nets-optimize", daemon=True).start()
        return events

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _version() -> str:
    from .. import __version__
    return __version__
