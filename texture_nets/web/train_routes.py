"""Training from the web page: GET /api/data_dir (is this a usable folder inside the data root?),
POST /api/train (a style upload and settings → a background job, one at a time), GET /api/train,
GET /api/train/sample.png and POST /api/train/cancel. Every field is checked, and the job's memory
estimated, before the style upload is decoded or written. (No `from __future__ import annotations`:
FastAPI reads the routes' annotations, and its names are imported inside `add_train_routes`.)"""

import os
import re
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import torch

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output
from texture_nets.core.images import find_images, fit_style_image
from texture_nets.core.memory import decode_bytes, device_memory, gigabytes, training_bytes
from texture_nets.training.config import make_config
from texture_nets.web.jobs import UPLOADS, Busy
from texture_nets.web.limits import (
    LARGE_REQUEST,
    MAX_WEIGHT,
    UserError,
    check_memory_now,
    clip,
    largest_fitting_size,
    release_memory,
    shown,
)
from texture_nets.web.uploads import decode_image, image_header

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TRAIN_SIZE = 1024  # training crops: larger ones would need tens of GB
SAVED_FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif",
                 "GIF": ".gif", "PPM": ".ppm"}  # a style upload in these is kept as sent


def split_viz_url(url: str) -> tuple[str, int]:
    """'http://host:8097' → ('http://host', 8097); Visdom's default port where none is given."""
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


def add_train_routes(app, store, jobs, work, config, read_upload) -> None:
    """Register the training routes on `app` (create_app's model store, job runner, work queue,
    config and upload reader)."""
    from fastapi import File, Form, Query, Request, UploadFile  # FastAPI: the optional web extra, imported on first use
    from fastapi.responses import Response  # FastAPI: the optional web extra, imported on first use
    from starlette.concurrency import (
        run_in_threadpool,  # FastAPI's Starlette: the optional web extra, imported on first use
    )

    upload_dir = Path(config.checkpoint_dir) / UPLOADS
    budget = config.memory_budget

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

    def check_storage(incoming: int) -> None:
        """507 when the checkpoint folder (models, progress files, uploaded style images) would pass
        max_stored_mb with `incoming` more bytes: cancelled and finished jobs cannot fill the disk."""
        used = folder_bytes(Path(config.checkpoint_dir))
        if used + incoming > config.max_stored_mb * 2**20:
            raise UserError(f"the server's storage for training jobs is full ({used / 2**20:.1f} MB of "
                            f"{config.max_stored_mb:g} MB): its operator can clear {Path(config.checkpoint_dir).name}/",
                            507)

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
            try:
                with atomic_output(path) as tmp:
                    if suffix:
                        tmp.write_bytes(data)
                    else:
                        image.save(tmp, format="PNG")
            except TextureNetsError as exc:  # its message names the server's path: the client gets the reason
                reason = getattr(exc.__cause__, "strerror", None) or exc.__cause__
                raise UserError(f"the server cannot save the style image ({reason})", 507) from exc
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
        check_storage(0)  # a full folder costs the client nothing more
        async with work.slot(request.is_disconnected):
            data = await read_upload(style)
            check_storage(len(data))
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


def folder_bytes(folder: Path) -> int:
    """The bytes of the files in `folder` and its sub-folders (0 if it does not exist)."""
    if not folder.is_dir():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
