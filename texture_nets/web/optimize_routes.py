"""POST /api/optimize: Gatys et al.'s optimisation from the web page, one at a time (each takes the
whole CPU), its memory estimated from the uploads' headers before any is decoded, its progress
streamed as NDJSON lines (step, losses, previews, the final picture); a client that goes away stops
it. (No `from __future__ import annotations`: FastAPI reads the route's annotations.)"""

import json
import queue
import threading
from pathlib import Path

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import fit_style_image, image_to_tensor, photo_batch, resized_dimensions
from texture_nets.core.losses import PerceptualLoss
from texture_nets.core.memory import decode_bytes, gigabytes, picture_bytes
from texture_nets.core.settings import make_settings
from texture_nets.core.vgg import check_picture_side
from texture_nets.inference.optimize import stylize_optimized
from texture_nets.inference.options import OptimizeConfig
from texture_nets.web.limits import (
    MAX_WEIGHT,
    UserError,
    check_memory_now,
    clip,
    largest_fitting_size,
    release_memory,
    shown,
)
from texture_nets.web.models import data_url
from texture_nets.web.uploads import decode_image, image_header

MAX_STYLES = 8  # style images of one optimisation
VGG_BYTES = 200 * 2**20  # VGG-19's weights and the optimiser's state besides the per-pixel estimate


class _Stopped(Exception):
    """Raised in an optimisation whose client has gone."""


def add_optimize_routes(app, config, read_upload) -> None:
    """Register the optimisation route on `app` (create_app's config and upload reader)."""
    from fastapi import File, Form, UploadFile  # FastAPI: the optional web extra, imported on first use
    from fastapi.responses import StreamingResponse  # FastAPI: the optional web extra, imported on first use
    from starlette.concurrency import (
        run_in_threadpool,  # FastAPI's Starlette: the optional web extra, imported on first use
    )

    budget = config.memory_budget

    optimizing = threading.Lock()  # one optimisation at a time: each takes the whole CPU

    def prepare_optimization(uploads: list[bytes], names: list[str], size: int, settings: OptimizeConfig):
        """The photo and the style images, checked from their headers (against the memory budget,
        and the photo's shape against VGG's poolings) before any is decoded (in a thread): (photo,
        style tensors)."""
        headers = [image_header(data, config.max_pixels) for data in uploads]
        photo = headers[0]
        target = resized_dimensions((photo.width, photo.height), size)
        check_picture_side(*target, settings.style_layers + settings.content_layers, names[0],
                           "use a larger size or crop the photo")
        style_size = settings.style_size
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
            image = fit_style_image(decode_image(data), style_size, name, settings.style_scale)
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
        settings = make_settings(OptimizeConfig, values)  # checks the blend's values too
        if not optimizing.acquire(blocking=False):  # before any decoding: a refused request costs nothing
            raise UserError("an optimisation is running: try again when it has finished", 409)
        try:
            uploads = [await read_upload(file)] + [await read_upload(upload) for upload in style]
            names = [file.filename or "photo"] + [Path(upload.filename or "style").name for upload in style]
            photo, styles = await run_in_threadpool(prepare_optimization, uploads, names, size, settings)
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
