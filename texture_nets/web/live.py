"""The page's live view: a camera stylized frame by frame, two ways.

    WS  /api/live?model=&style=&noise_factor=&preserve_colors=&photorealistic=
        the server's way: the page sends camera frames (4 bytes of frame id, then a JPEG or PNG) and
        gets each back stylized (the same 4 bytes, then a JPEG) with a JSON line of its timings;
        a JSON text message changes the settings mid-session ({"model": ..., "style": ...}).
    GET /api/models/{name}/model.onnx   the browser's way: the network for onnxruntime-web
    GET /api/live                       open sessions, their limit, the frame-size limit

The server's way keeps latency bounded: a session stylizes one frame at a time and keeps only the
newest frame that arrived meanwhile (the others are dropped and counted), so a slow server shows
fewer frames, never older ones. At most `max_live_sessions` sessions are open (one more is told so
and closed); a frame over `max_live_size` pixels on its longer side is refused with a message (the
session goes on); a session that sends nothing for `live_idle_s` seconds is closed; a closed tab or
a dead socket frees its session at once. The noise is one fixed field per frame size (seed 0), so
a still camera gives a still picture: no flicker from fresh noise. (No `from __future__ import
annotations` here: FastAPI reads the socket route's annotation, and WebSocket is imported inside
`add_live_routes`.)
"""

import asyncio
import contextlib
import io
import json
import struct
import time
from dataclasses import dataclass, field

import torch

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import image_to_tensor, tensor_to_image
from texture_nets.core.settings import coerce_text, field_types
from texture_nets.inference.engine import Engine
from texture_nets.inference.options import StylizeOptions
from texture_nets.web.limits import UserError, arena_kept, check_stylize_form, clip, log, shown
from texture_nets.web.models import STATIC
from texture_nets.web.uploads import decode_image, image_header

FRAME_ID_BYTES = 4  # each frame starts with its id (uint32, little-endian): the page matches answers to frames
MAX_FRAME_BYTES = 4 * 2**20  # a camera frame of 640x480 is ~50 KB as JPEG, ~600 KB as PNG
JPEG_QUALITY = 85
VENDOR = "vendor/onnxruntime-web"  # under the page's static folder: scripts/provision_web_static.py fills it


class LiveSessions:
    """The open live sessions, at most `limit` (used from the event loop only)."""

    def __init__(self, limit: int):
        self.limit, self.open = limit, 0

    @contextlib.contextmanager
    def session(self):
        """Hold one session while the block runs; UserError (1013: try again later) when all are taken."""
        if self.open >= self.limit:
            raise UserError(f"all {self.limit} live sessions of this server are in use: close another tab or try "
                            f"again later", 1013)
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1


@dataclass
class LiveSettings:
    """What a live session stylizes with: the model, its style or blend, the noise factor, colours."""

    model: str
    style: str = ""
    noise_factor: float | None = None
    preserve_colors: bool = False
    photorealistic: bool = False

    @classmethod
    def parse(cls, values: dict, current: "LiveSettings | None" = None) -> "LiveSettings":
        """Settings from query parameters or a JSON message (missing keys keep `current`'s),
        refused (UserError, one line) before any frame is stylized."""
        kinds = field_types(cls)
        unknown = sorted(set(values) - set(kinds))
        if unknown:
            raise UserError(f"unknown live setting {shown(unknown[0])}: the settings are {', '.join(sorted(kinds))}")
        merged = {} if current is None else dict(current.__dict__)
        merged.update(values)
        if not isinstance(merged.get("model"), str) or not merged["model"]:
            raise UserError("model: the name of a model (GET /api/models lists them)")
        if not isinstance(merged.get("style", ""), str):
            raise UserError("style: a style name or a blend such as mosaic=0.7,candy=0.3")
        try:
            merged = {key: coerce_text(key, value, kinds[key]) for key, value in merged.items()}
        except TextureNetsError as exc:
            raise UserError(clip(str(exc))) from None
        check_stylize_form(None, 1, merged.get("noise_factor"), 0)
        return cls(**merged)


@dataclass
class LiveStylizer:
    """One session's network and options, and the fixed noise of each frame size it has seen."""

    engine: Engine
    max_size: int
    max_pixels: int
    noise: dict[tuple[int, int], list] = field(default_factory=dict)

    def frame_noise(self, height: int, width: int) -> list[torch.Tensor] | None:
        """The unit noise for frames of this size (seed 0), made once: the same for every frame."""
        module = self.engine.module
        if not module.config.noise_channels:
            return None
        if (height, width) not in self.noise:
            if len(self.noise) > 8:  # a client changing sizes all the time keeps few fields
                self.noise.clear()
            padded = module.padded_size(height, width)
            self.noise[(height, width)] = module.make_noise(1, *padded, generator=torch.Generator().manual_seed(0),
                                                            device="cpu")
        return self.noise[(height, width)]

    def stylize_frame(self, message: bytes) -> tuple[bytes, float]:
        """A frame message (id + picture) → (id + stylized JPEG, the network's milliseconds).
        UserError, one line, for a message that is not a frame or a frame over the size limit; the
        picture's size is read from its header before it is decoded."""
        if len(message) <= FRAME_ID_BYTES:
            raise UserError("a frame is 4 bytes of frame id, then a JPEG or PNG picture")
        if len(message) > MAX_FRAME_BYTES:
            raise UserError(f"a frame of {len(message) / 2**20:.1f} MB: frames up to {MAX_FRAME_BYTES // 2**20} MB")
        ident, data = message[:FRAME_ID_BYTES], message[FRAME_ID_BYTES:]
        header = image_header(data, self.max_pixels)
        if max(header.width, header.height) > self.max_size:
            raise UserError(f"a frame of {header.width}x{header.height}: this server takes live frames up to "
                            f"{self.max_size} px on the longer side (ask the camera for less)", 413)
        photo = image_to_tensor(decode_image(data)).unsqueeze(0)
        started = time.perf_counter()
        with torch.inference_mode(), arena_kept():
            out = self.engine.stylize(photo, noise=self.frame_noise(*photo.shape[2:]))
        milliseconds = (time.perf_counter() - started) * 1000
        buffer = io.BytesIO()
        tensor_to_image(out).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return ident + buffer.getvalue(), milliseconds


def add_live_routes(app, store, config) -> None:
    """Register the live routes on `app` (create_app's model store and config)."""
    from fastapi import WebSocket  # FastAPI: the optional web extra, imported on first use
    from fastapi.responses import Response  # FastAPI: the optional web extra, imported on first use
    from starlette.concurrency import (
        run_in_threadpool,  # FastAPI's Starlette: the optional web extra, imported on first use
    )
    from starlette.websockets import WebSocketDisconnect  # FastAPI's Starlette: the optional web extra
    sessions = app.state.live = LiveSessions(config.max_live_sessions)

    @app.get("/api/live", summary="Live sessions open, their limit, and the largest frame a session takes")
    def live_state():
        return {"sessions": sessions.open, "max_sessions": sessions.limit, "max_frame_size": config.max_live_size,
                "browser_engine": browser_engine_installed()}

    @app.get("/api/models/{name}/model.onnx", summary="A model as ONNX, for onnxruntime-web (the page's "
                                                      "in-browser way)", response_class=Response)
    def model_onnx(name: str):
        return Response(store.onnx_model(name), media_type="application/octet-stream",
                        headers={"Cache-Control": "no-cache"})

    def stylizer(settings: LiveSettings) -> LiveStylizer:
        """The session's stylizer for `settings` (the model's shared prepared generator)."""
        store.check_style(settings.model, settings.style)
        options = StylizeOptions(noise_factor=settings.noise_factor, seed=0, style=settings.style,
                                 preserve_colors="luminance" if settings.preserve_colors else None,
                                 photorealistic=settings.photorealistic)
        generator = store.generator(settings.model, live=True)
        return LiveStylizer(Engine(generator, options), config.max_live_size, config.max_pixels)

    @app.websocket("/api/live")
    async def live_socket(socket: WebSocket):
        await socket.accept()
        try:
            with sessions.session():
                settings = LiveSettings.parse(dict(socket.query_params))
                current = await run_in_threadpool(stylizer, settings)
                await socket.send_json({"ready": True, "max_frame_size": config.max_live_size})
                await run_session(socket, current, settings)
        except UserError as exc:
            with contextlib.suppress(Exception):  # the socket may be gone already
                await socket.send_json({"error": clip(str(exc), 600)})
                await socket.close(code=1013 if exc.status == 1013 else 1008, reason=clip(str(exc), 100))
        except WebSocketDisconnect:
            pass

    async def run_session(socket, current: LiveStylizer, settings: LiveSettings) -> None:
        """Receive frames and settings until the socket closes or idles; stylize the newest frame
        whenever the last one is done (older ones are dropped)."""
        pending: list[bytes] = []
        arrived = asyncio.Event()
        sending = asyncio.Lock()
        counts = {"dropped": 0, "frames": 0}
        state = {"stylizer": current, "settings": settings}

        async def send_json(payload: dict) -> None:
            async with sending:
                await socket.send_json(payload)

        async def work() -> None:
            while True:
                await arrived.wait()
                arrived.clear()
                message = pending.pop()
                try:
                    reply, milliseconds = await run_in_threadpool(state["stylizer"].stylize_frame, message)
                except UserError as exc:
                    await send_json({"error": clip(str(exc), 600), "frame_error": True})
                    continue
                except Exception as exc:  # noqa: BLE001 — a frame that breaks the network: said, the session goes on
                    log.error("live frame failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
                    await send_json({"error": f"internal error ({type(exc).__name__}); the session goes on",
                                     "frame_error": True})
                    continue
                counts["frames"] += 1
                async with sending:
                    await socket.send_bytes(reply)
                    await socket.send_json({"id": struct.unpack("<I", reply[:FRAME_ID_BYTES])[0],
                                            "server_ms": round(milliseconds, 1), **counts})

        worker = asyncio.create_task(work())
        try:
            while not worker.done():
                try:
                    message = await asyncio.wait_for(socket.receive(), config.live_idle_s)
                except asyncio.TimeoutError:
                    await send_json({"error": f"no frame for {config.live_idle_s:g} s: the live session is closed"})
                    await socket.close(code=1000)
                    return
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    if pending:
                        counts["dropped"] += 1
                    pending[:] = [message["bytes"]]
                    arrived.set()
                elif message.get("text") is not None:
                    await change_settings(message["text"], state, send_json)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
            if worker.done() and not worker.cancelled() and worker.exception() is not None:
                log.warning("live session ended by %s", worker.exception())

    async def change_settings(text: str, state: dict, send_json) -> None:
        """Apply a JSON settings message; a bad one is answered with its error and changes nothing."""
        try:
            try:
                values = json.loads(text)
            except ValueError as exc:
                raise UserError("a text message is a JSON object of settings, e.g. {\"style\": \"candy\"}") from exc
            if not isinstance(values, dict):
                raise UserError("a text message is a JSON object of settings, e.g. {\"style\": \"candy\"}")
            settings = LiveSettings.parse(values, state["settings"])
            state["stylizer"] = await run_in_threadpool(stylizer, settings)
            state["settings"] = settings
            await send_json({"settings": settings.__dict__})
        except UserError as exc:
            await send_json({"error": clip(str(exc), 600)})


def browser_engine_installed() -> bool:
    """Whether onnxruntime-web's files are in the page's static folder (scripts/provision_web_static.py)."""
    return all((STATIC / VENDOR / name).is_file() for name in ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm"))
