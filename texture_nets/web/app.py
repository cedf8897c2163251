"""The web app's HTTP side: a small JSON API (FastAPI) and the one page that uses it.

    GET  /                         the page (static/index.html)
    GET  /api/models               installed checkpoints: name, style, trained steps, noise factor, styles
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
    WS   /api/live                 the page's live view (live.py); GET /api/live its sessions

FastAPI documents all of it at /docs and /openapi.json. Every user error answers 4xx with
{"detail": "..."} (one line); nothing a request sends can stop the server. Its limits (limits.py):
at most `max_concurrent` requests decode and stylize at once and `max_queue` more wait (503 with
Retry-After beyond); each request's memory is estimated before decoding and must fit
`request_memory_gb` (tiled if that helps, else 413); bodies over the upload cap are cut off as they
stream in (413); memory is handed back after large requests.

Here: the config, the app, its error handlers, the page and the stylize routes. Beside it, one module
per concern: models.py (checkpoints by name, generators, thumbnails), uploads.py (image headers and
decoding), train_routes.py, optimize_routes.py, video_routes.py, live.py (the camera, live), jobs.py
(the training job), limits.py.
"""


import time
from dataclasses import dataclass, field, replace

import torch

from texture_nets.core.checkpoint import DEFAULT_CHECKPOINT_DIR
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import photo_batch, resized_dimensions
from texture_nets.core.settings import setting
from texture_nets.core.version import __version__
from texture_nets.inference.engine import Engine
from texture_nets.inference.options import StylizeOptions
from texture_nets.web.jobs import Busy, TrainingJobs
from texture_nets.web.limits import (
    LARGE_REQUEST,
    MAX_CONCURRENT,
    MAX_QUEUE,
    MAX_REQUEST_MEMORY_GB,
    QUEUE_PER_SLOT,
    BodyLimit,
    BusyGate,
    ClientLimit,
    UserError,
    WorkQueue,
    check_memory_now,
    check_number,
    check_stylize_form,
    clip,
    default_limits,
    log,
    plan_stylization,
    release_memory,
)
from texture_nets.web.live import add_live_routes
from texture_nets.web.models import STATIC, ModelStore, png_bytes
from texture_nets.web.optimize_routes import add_optimize_routes
from texture_nets.web.train_routes import add_train_routes
from texture_nets.web.uploads import decode_image, image_header
from texture_nets.web.video_routes import add_video_routes


class Isolated:
    """ASGI middleware: the page (`pages`) and its files (paths under `folders`) are served
    cross-origin isolated, so the in-browser engine (onnxruntime-web) may use SharedArrayBuffer,
    hence several threads; the page loads nothing from other origins."""

    HEADERS = [(b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-embedder-policy", b"require-corp")]

    def __init__(self, app, pages: tuple[str, ...], folders: tuple[str, ...]):
        self.app, self.pages, self.folders = app, pages, folders

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path in self.pages or path.startswith(self.folders)):
            return await self.app(scope, receive, send)

        async def isolated_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.HEADERS]}
            await send(message)
        return await self.app(scope, receive, isolated_send)


@dataclass
class WebConfig:
    """Settings of one server. `texture-nets serve` generates a flag for each field with help text
    (web/serve.py); the others are set from its other flags or by the program."""

    checkpoint_dir: str = setting(DEFAULT_CHECKPOINT_DIR, "your models, listed with the shipped styles; trained "
                                                          "models go here")
    shipped: bool = True  # also list the styles that come with texture_nets
    data_root: str = setting(".", "training folders must lie inside this folder")
    vgg_weights: str = "imagenet"
    device: str = "cpu"
    max_upload_mb: float = setting(20.0, "largest upload, in MB")
    upload_timeout_s: float = setting(30.0, "seconds an upload may stop arriving before it is answered 408 and dropped")
    max_requests_per_client: int = setting(32, "requests one client (address) may have in progress at once; more "
                                               "are answered 429")
    max_pixels: int = 50_000_000  # decoded size cap: refuses decompression bombs before decoding
    max_size: int = 2048  # longest side of a stylized picture
    engine: str = "auto"
    onnx_cache: str = ""  # where exported ONNX models are kept between server starts ("": export each start)
    viz_url: str = setting("", "a running Visdom server (e.g. http://localhost:8097): training jobs report to it and "
                               "the page links to them")
    train_defaults: dict = field(default_factory=dict)  # fixed training settings (e.g. batch_size)
    max_optimize_steps: int = 1000
    max_optimize_size: int = 1024
    max_video_seconds: float = setting(10.0, "longest clip /api/stylize_video takes, in seconds")
    max_video_size: int = setting(640, "longer side a clip's frames are stylized at, at most, in pixels")
    max_stored_mb: float = setting(500.0, "disk the web's training jobs may fill in --checkpoint_dir (their "
                                          "uploaded style images, models and progress files), in MB")
    max_video_megapixels: float = setting(100.0, "work one clip may cost: its frames × their stylized pixels, in "
                                                 "megapixels (10 s at 30 frames/s at 640x480 is 92)")
    max_live_sessions: int = setting(2, "live camera sessions open at once (the page's Live tab, server's way); one "
                                        "more is told so and closed")
    max_live_size: int = setting(640, "longer side of a live camera frame, at most, in pixels")
    live_idle_s: float = setting(30.0, "seconds a live session may send no frame before it is closed")
    max_concurrent: int | None = setting(None, "requests decoded and stylized at once (default: one per CPU core, "
                                               "at most 4)")
    max_queue: int | None = setting(None, "requests waiting for their turn beyond those; more are refused with 503 "
                                          "and Retry-After (default: 8 per concurrent request)")
    request_memory_gb: float | None = setting(None, "memory one request (a stylization, an optimisation, a training "
                                                    "job) may use: larger pictures are tiled or refused (default: "
                                                    "60% of the memory available at start, shared by the concurrent "
                                                    "requests and two jobs)")

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
        check_number("--max_video_megapixels", self.max_video_megapixels, 0, 10**6)
        check_number("--max_stored_mb", self.max_stored_mb, 0, 2**30)
        check_number("--upload_timeout_s", self.upload_timeout_s, 0, 3600)
        check_number("--max_requests_per_client", self.max_requests_per_client, 1, 10**6, integer=True,
                     low_inclusive=True)
        check_number("--max_live_sessions", self.max_live_sessions, 0, 10**4, integer=True, low_inclusive=True)
        check_number("--max_live_size", self.max_live_size, 16, 2**14, integer=True, low_inclusive=True)
        check_number("--live_idle_s", self.live_idle_s, 0, 86400)

    @property
    def memory_budget(self) -> int:
        """Bytes one request may use (request_memory_gb; resolved() fills it in first)."""
        return int(self.request_memory_gb * 2**30)

    def limits_line(self) -> str:
        return (f"{self.max_concurrent} at a time, {self.max_queue} waiting, {self.request_memory_gb:g} GB per "
                f"request, uploads up to {self.max_upload_mb:g} MB")





def create_app(config: WebConfig | None = None):
    """The FastAPI application for `config` (its machine-derived limits filled in: app.state.config)."""
    from fastapi import (  # FastAPI: the optional web extra, imported on first use
        FastAPI,
        File,
        Form,
        Request,
        UploadFile,
    )
    from fastapi.exceptions import RequestValidationError  # FastAPI: the optional web extra, imported on first use
    from fastapi.responses import (  # FastAPI: the optional web extra, imported on first use
        FileResponse,
        JSONResponse,
        Response,
    )
    from fastapi.staticfiles import StaticFiles  # FastAPI: the optional web extra, imported on first use
    from starlette.concurrency import (
        run_in_threadpool,  # FastAPI's Starlette: the optional web extra, imported on first use
    )

    config = (config or WebConfig()).resolved()
    store = ModelStore(config)
    jobs = TrainingJobs()
    work = WorkQueue(config.max_concurrent, config.max_queue)
    max_bytes = int(config.max_upload_mb * 2**20)
    budget = config.memory_budget
    app = FastAPI(title="texture_nets", version=_version(),
                  description="Stylize photos with trained texture networks; train new styles.")
    app.state.store, app.state.jobs, app.state.config, app.state.queue = store, jobs, config, work
    # the whole body: the files and the form's own bytes (a few per field); checked as it streams in
    app.add_middleware(BodyLimit, max_bytes=max_bytes + 64 * 1024, message=f"upload over {config.max_upload_mb:g} MB",
                       timeout=config.upload_timeout_s)
    # the routes that wait in `work`: refused before their upload is read while it is full
    app.add_middleware(BusyGate, queue=work, paths=("/api/stylize", "/api/stylize_video", "/api/train"))
    app.add_middleware(ClientLimit, max_requests=config.max_requests_per_client)  # outermost: before any body
    app.add_middleware(Isolated, pages=("/",), folders=("/static/",))

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
                       preserve_colors: bool, style: str = "", photorealistic: bool = False
                       ) -> tuple[bytes, float, int | None]:
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
            started = time.perf_counter()
            with torch.inference_mode():  # tiled or not, the shared generator is left as it is (tiling.py)
                options = StylizeOptions(noise_factor=noise_factor, seed=seed, tile=tile, style=style,
                                         preserve_colors="luminance" if preserve_colors else None,
                                         photorealistic=photorealistic)
                out = Engine(generator, options).stylize(tensor)
            seconds = time.perf_counter() - started  # the network (and colours), not decoding or PNG
            del tensor
            return png_bytes(out), seconds, tile
        finally:
            if need > LARGE_REQUEST:
                release_memory()

    @app.post("/api/stylize", summary="Stylize an uploaded photo; answers with the PNG", response_class=Response)
    async def stylize(request: Request, file: UploadFile = File(...), model: str = Form(...),
                      noise_factor: float | None = Form(None), size: int | None = Form(None), seed: int = Form(0),
                      preserve_colors: bool = Form(False), style: str = Form(""),
                      photorealistic: bool = Form(False)):
        check_stylize_form(size, config.max_size, noise_factor, seed)
        store.check_style(model, style)  # an unknown model or style costs nothing
        async with work.slot(request.is_disconnected):
            data = await read_upload(file)
            png, seconds, tile = await run_in_threadpool(stylize_upload, data, model, size, noise_factor, seed,
                                                         preserve_colors, style, photorealistic)
        return Response(png, media_type="image/png",
                        headers={"X-Stylize-Seconds": f"{seconds:.3f}", "X-Stylize-Tile": str(tile or "none")})

    add_video_routes(app, store, work, config, read_upload)
    add_train_routes(app, store, jobs, work, config, read_upload)
    add_optimize_routes(app, config, read_upload)
    add_live_routes(app, store, config)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _version() -> str:
    return __version__
