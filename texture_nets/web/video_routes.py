"""POST /api/stylize_video: a short clip in, the stylized clip out (texture_nets.video), within the
server's limits: the upload cap, a length cap (--max_video_seconds, checked from the header and again
while decoding), a size cap (--max_video_size, the longer side frames are stylized at), the frames'
pixels (max_pixels, from the header before a frame is decoded), the per-request memory budget (as
for photos) and a place in the work queue like every stylization. (No `from __future__ import
annotations` here: FastAPI reads the route's annotations, and UploadFile is imported inside
`add_video_routes`.)"""


import asyncio
import base64
import json
import math
import tempfile
import threading
import time
from pathlib import Path

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import resized_dimensions
from texture_nets.inference.options import VideoOptions
from texture_nets.inference.temporal import DEFAULT_TEMPORAL_WEIGHT, TEMPORAL_MODES
from texture_nets.inference.video import ENCODERS, ClipInfo, clip_seconds, probe, stylize_clip
from texture_nets.web.limits import (
    LARGE_REQUEST,
    UserError,
    check_memory_now,
    check_pixels,
    check_stylize_form,
    clip,
    log,
    plan_stylization,
    release_memory,
)

VIDEO_FORMATS = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}
VIDEO_BATCH = 2  # frames per forward pass of a request: a small batch keeps a request's memory small
MAX_FPS = 120  # a clip's frames are capped at its length × this, whatever its header says


def add_video_routes(app, store, work, config, read_upload) -> None:
    """Register the video route on `app` (the model store, work queue, config and upload reader of
    create_app)."""
    import anyio  # FastAPI's Starlette runs on it: the optional web extra, imported on first use
    from fastapi import File, Form, Request, UploadFile  # FastAPI: the optional web extra, imported on first use
    from fastapi.responses import (  # FastAPI: the optional web extra, imported on first use
        Response,
        StreamingResponse,
    )
    from starlette.concurrency import (
        run_in_threadpool,  # FastAPI's Starlette: the optional web extra, imported on first use
    )
    budget = config.memory_budget

    def check_frames(width: int, height: int) -> None:
        """413 for frames over max_pixels, from the header: FFmpeg decodes them at full size."""
        check_pixels(width, height, config.max_pixels, "the clip's frames are")

    def plan_memory(generator, info: ClipInfo, options: VideoOptions) -> int:
        """Fit the clip into the per-request budget as the photo route does (limits.plan_stylization:
        a frame decoded at full size, stylized at options.size in one pass or tiles, else 413), and
        set the tile and the batch's memory limit (the pipeline shrinks its batch to fit); the bytes
        the request may take, for the check of memory available now."""
        target = resized_dimensions((info.width, info.height), options.size)
        options.tile, need = plan_stylization(generator, (info.width, info.height, "RGB"), target, budget)
        options.memory_limit = budget
        return min(budget, need * options.batch_size)

    def check_clip_work(info: ClipInfo, seconds: float, size: tuple[int, int], max_frames: int) -> None:
        """413 before any frame is stylized for a clip whose header says it has more frames than the
        server takes, or whose frames × stylized pixels exceed max_video_megapixels (the count is
        checked again while decoding: a header may lie)."""
        frames = info.frames or math.ceil(seconds * float(info.fps))
        if frames > max_frames:
            raise UserError(f"the clip has {frames} frames: this server takes up to {max_frames}", 413)
        work = frames * size[0] * size[1] / 1e6
        if work > config.max_video_megapixels:
            raise UserError(f"the clip would stylize {frames} frames of {size[0]}x{size[1]} ({work:.0f} megapixels): "
                            f"this server takes up to {config.max_video_megapixels:g}; send a shorter clip or "
                            f"a smaller size", 413)

    def stylize_upload(data: bytes, suffix: str, model: str, fmt: str, options: VideoOptions,
                       filename: str = "the upload", cancel: threading.Event | None = None,
                       on_progress=None) -> tuple[bytes, dict]:
        """Probe, check the limits, stylize; (the clip's bytes, report headers). In a worker thread.
        Errors name the clip as the client sent it, never the server's temporary files.
        `on_progress(frames done, frames expected)` is called after each batch of frames."""
        generator = store.generator(model)
        with tempfile.TemporaryDirectory(prefix="texture_nets_video_") as folder:
            src, dst = Path(folder) / f"upload{suffix}", Path(folder) / f"stylized.{fmt}"
            try:
                return transcode_upload(generator, data, src, dst, options, cancel or threading.Event(), on_progress)
            except TextureNetsError as exc:
                raise in_client_words(exc, {str(src): filename, str(dst): "the stylized clip",
                                            folder: "the upload"}) from exc

    def transcode_upload(generator, data: bytes, src: Path, dst: Path, options: VideoOptions,
                         cancel: threading.Event, on_progress=None) -> tuple[bytes, dict]:
        """stylize_upload's work, on the server's temporary files `src` and `dst`; it stops after the
        batch of frames during which `cancel` is set (the client has gone, or cancelled)."""
        src.write_bytes(data)
        info = probe(src, check_size=check_frames)
        seconds = max(clip_seconds(info), info.file_seconds or 0.0)  # every stream: audio may outlast the video
        expected = info.frames or max(1, math.ceil(clip_seconds(info) * float(info.fps or 0)))

        done = 0

        def progress(frames: int) -> None:  # after each batch of `frames` frames
            nonlocal done
            if cancel.is_set():
                raise UserError("the client disconnected: stylization stopped", 499)
            done += frames
            if on_progress is not None:
                on_progress(done, max(done, expected))
        if seconds > config.max_video_seconds:
            raise UserError(f"the clip lasts {'an unknown time' if seconds == float('inf') else f'{seconds:.1f} s'}: "
                            f"this server takes clips up to {config.max_video_seconds:g} s", 413)
        longest = min(options.size or max(info.width, info.height), config.max_video_size)
        options.size, options.max_frames = longest, int(config.max_video_seconds * MAX_FPS)
        check_clip_work(info, seconds, resized_dimensions((info.width, info.height), longest), options.max_frames)
        need = plan_memory(generator, info, options)
        check_memory_now(need)
        try:
            started = time.perf_counter()
            report = stylize_clip(generator, src, dst, options, progress=progress, info=info)
            elapsed = time.perf_counter() - started
        finally:
            if need > LARGE_REQUEST:
                release_memory()
        headers = {"X-Video-Frames": str(report.frames), "X-Video-Size": f"{report.width}x{report.height}",
                   "X-Video-Audio": report.audio or "none", "X-Stylize-Seconds": f"{elapsed:.3f}"}
        return dst.read_bytes(), headers

    @app.post("/api/stylize_video", summary="Stylize a short uploaded clip; answers with the clip",
              response_class=Response)
    async def stylize_video_route(request: Request, file: UploadFile = File(...), model: str = Form(...),
                                  format: str = Form("mp4"), size: int | None = Form(None), seed: int = Form(0),
                                  noise_factor: float | None = Form(None), temporal: str = Form("flow"),
                                  temporal_weight: float = Form(DEFAULT_TEMPORAL_WEIGHT),
                                  preserve_colors: bool = Form(False), style: str = Form(""),
                                  photorealistic: bool = Form(False), progress: bool = Form(False)):
        if format not in VIDEO_FORMATS:
            raise UserError(f"format must be one of {', '.join(VIDEO_FORMATS)}, got {clip(format, 40)}")
        if temporal not in TEMPORAL_MODES:
            raise UserError(f"temporal must be one of {', '.join(TEMPORAL_MODES)}, got {clip(temporal, 40)}")
        check_stylize_form(size, config.max_video_size, noise_factor, seed)
        if not 0 <= temporal_weight < 1:
            raise UserError(f"temporal_weight must be in [0, 1), got {temporal_weight}")
        store.check_style(model, style)  # an unknown model or style costs nothing
        suffix = Path(file.filename or "").suffix.lower()
        suffix = suffix if suffix in ENCODERS or suffix in (".ts", ".mpg", ".mpeg", ".flv", ".3gp") else ".bin"
        options = VideoOptions(size=size, noise_factor=noise_factor, seed=seed, temporal=temporal,
                               temporal_weight=temporal_weight, preserve_colors="luminance" if preserve_colors else None,
                               batch_size=VIDEO_BATCH, style=style, photorealistic=photorealistic)
        name = clip(Path(file.filename or "the upload").name, 60)
        if progress:
            return StreamingResponse(progress_lines(file, suffix, model, format, options, name),
                                     media_type="application/x-ndjson")
        cancel = threading.Event()
        async with work.slot(request.is_disconnected):
            data = await read_upload(file)
            watcher = asyncio.create_task(watch_disconnect(request, cancel))
            try:
                body, headers = await run_in_threadpool(stylize_upload, data, suffix, model, format, options, name,
                                                        cancel)
            finally:
                watcher.cancel()
        return Response(body, media_type=VIDEO_FORMATS[format], headers=headers)

    async def progress_lines(file, suffix: str, model: str, fmt: str, options: VideoOptions, name: str):
        """The clip's stylization as NDJSON lines: {"frames", "total", "seconds_left"} after each
        batch of frames, then {"done": true, "clip": data URL, "headers": {...}} or {"error", "status"}.
        A client that goes away (the page's Cancel) stops the work after the current batch; the
        place in the work queue is held until the work has stopped."""
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue = asyncio.Queue()
        cancel, finished = threading.Event(), asyncio.Event()
        started, first = None, []  # first: (time, frames) of the first batch's report

        def on_progress(frames: int, total: int) -> None:
            """Seconds left from the frame rate since the first batch (opening and probing the clip
            and loading the network are behind by then); from the start for the first batch alone."""
            now = time.monotonic()
            since, before = first[0] if first else (started, 0)
            if not first:
                first.append((now, frames))
            rate = (frames - before) / (now - since) if frames > before and now > since else None
            left = (total - frames) / rate if rate else None
            loop.call_soon_threadsafe(lines.put_nowait, {"frames": frames, "total": total, "seconds_left":
                                                         None if left is None else round(left, 1)})

        def run(data: bytes) -> None:
            try:
                body, headers = stylize_upload(data, suffix, model, fmt, options, name, cancel, on_progress)
                line = {"done": True, "headers": headers,
                        "clip": f"data:{VIDEO_FORMATS[fmt]};base64,{base64.b64encode(body).decode('ascii')}"}
            except TextureNetsError as exc:
                line = {"error": clip(str(exc), 600), "status": getattr(exc, "status", 400)}
            except Exception as exc:  # noqa: BLE001 — reported in the stream; the server stays up
                log.error("clip failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
                line = {"error": f"internal error ({type(exc).__name__}); the server keeps running", "status": 500}
            loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(finished.set)

        try:
            async with work.slot():  # a client gone while waiting: the stream is cancelled, the place given up
                data = await read_upload(file)
                started = time.monotonic()
                threading.Thread(target=run, args=(data,), name="texture-nets-clip", daemon=True).start()
                del data
                yield json.dumps({"frames": 0, "total": None, "seconds_left": None}) + "\n"
                while True:
                    line = await lines.get()
                    yield json.dumps(line) + "\n"
                    if "done" in line or "error" in line:
                        break
        except UserError as exc:  # busy, or an upload over the cap
            yield json.dumps({"error": clip(str(exc), 600), "status": exc.status}) + "\n"
        finally:
            cancel.set()
            if started is not None:
                with anyio.CancelScope(shield=True):  # the work stops after its batch: keep the place till then
                    await finished.wait()


def in_client_words(exc: TextureNetsError, names: dict[str, str]) -> UserError:
    """`exc` as a UserError (its status kept) whose message names files as the client knows them:
    each server-side path in `names` replaced by the client's name for it."""
    message = str(exc)
    for path, name in sorted(names.items(), key=lambda item: -len(item[0])):  # longest first: files before folders
        message = message.replace(path, name)
    return UserError(message, getattr(exc, "status", 400), getattr(exc, "headers", None))


async def watch_disconnect(request, cancel: threading.Event, every: float = 0.25) -> None:
    """Set `cancel` once the client of `request` has gone (polled every `every` seconds): work that
    nobody waits for stops instead of holding a place of the queue."""
    while not await request.is_disconnected():
        await asyncio.sleep(every)
    cancel.set()
