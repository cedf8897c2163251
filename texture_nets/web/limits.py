"""What keeps `texture-nets serve` up whatever its clients send: a bounded work queue, a request-body
cap enforced while the body streams in, a memory estimate of every picture before it is decoded,
and memory handed back to the system after large requests.

- `WorkQueue`: at most `max_concurrent` requests decode and stylize at once and at most `max_queue`
  more wait (first come, first served; a waiting request whose client has gone leaves the queue);
  beyond that a request is refused at once with 503 and a Retry-After.
- `BodyLimit`: an ASGI middleware counting the bytes of every request body as they arrive: over the
  cap it answers 413 at once, whether or not a Content-Length was sent (a chunked upload is cut off
  after the cap, not read to its end and spooled to disk).
- `plan_stylization`: the memory a stylization needs (the decoded upload, the network's activations,
  the output and its PNG) against the per-request budget: one pass, else the largest tile that
  fits, else 413 naming the largest size that would fit, all before anything is decoded.
- `release_memory`: glibc keeps freed memory in its heaps (one per thread) and ONNX Runtime in
  its arena; after a large request both are given back (malloc_trim, arena shrinkage).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import json
import logging
import math
import os
import time
from contextvars import ContextVar

import numpy as np

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import MIN_SIZE
from texture_nets.core.memory import available_memory, decode_bytes, gigabytes
from texture_nets.inference.engine import untiled_bytes
from texture_nets.inference.options import SEED_LIMIT
from texture_nets.inference.tiling import tileable, tiled_bytes

log = logging.getLogger("texture_nets.web")

# After the network: the output and its colour-kept copy (float32), the 8-bit picture and the PNG.
OUTPUT_BYTES_PER_PIXEL = 40
TILES = (1024, 512, 256, 128)  # tile sizes tried, largest first, when one pass does not fit
LARGE_REQUEST = 64 * 2**20  # after a request estimated above this, memory is handed back (malloc_trim)
# ONNX Runtime's arena is shrunk after runs over this many pixels; smaller runs (thumbnails, small
# pictures) reuse it. Shrinking costs ~12 % at 512²; not shrinking left +0.35 GB after 512² runs.
SHRINK_PIXELS = 256 * 256
MAX_CONCURRENT = 64
MAX_QUEUE = 10_000
QUEUE_PER_SLOT = 8  # default requests waiting per one being worked on
MAX_REQUEST_MEMORY_GB = 2**20  # above a petabyte: a typo


class UserError(TextureNetsError):
    """A bad request: answered with `status`, the message as {"detail": ...}, and `headers`."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def shown(value: object, limit: int = 60) -> str:
    """repr(value) cut to about `limit` characters, for echoing what a client sent in a message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…' ({len(str(value))} characters)"


def clip(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters (a message quoting something huge stays one readable line)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


# --- defaults ---------------------------------------------------------------------------------------------


def machine_memory() -> int:
    """Bytes of memory this server may count on: available now (Linux), else the total, else 8 GB."""
    available = available_memory()
    if available:
        return available
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_limits(cpus: int | None = None, memory: int | None = None) -> tuple[int, int, float]:
    """(max_concurrent, max_queue, request_memory_gb) for this machine: one request per core, at
    most 4 (each uses every core already); 8 waiting per running one; and 60 % of the memory
    available at start shared by the running requests plus one optimisation and one training job,
    in quarter gigabytes, at least 0.25 GB."""
    cpus = cpus or cpu_count()
    memory = memory or machine_memory()
    concurrent = max(1, min(4, cpus))
    budget = math.floor(memory * 0.6 / (concurrent + 2) / 2**30 * 4) / 4
    return concurrent, QUEUE_PER_SLOT * concurrent, max(0.25, budget)


def check_number(option: str, value, low: float, high: float, *, integer: bool = False,
                 low_inclusive: bool = False) -> None:
    """Refuse a setting that is not a finite number (an integer if `integer`) in (low, high]
    ([low, high] if `low_inclusive`): TextureNetsError naming the option, in one line."""
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value) and value <= high and (
        value >= low if low_inclusive else value > low)
    if not ok:
        interval = f"{'[' if low_inclusive else '('}{low:g}, {high:g}]"
        raise TextureNetsError(f"{option} must be {'an integer' if integer else 'a number'} in {interval}, "
                               f"got {shown(value)}")


MAX_WEIGHT = 1e6  # loss weights: the losses are relative (about 1); more is a typo


def check_stylize_form(size: int | None, max_size: int, noise_factor: float | None, seed: int) -> None:
    """Refuse the form fields every stylize route shares (size, noise_factor, seed) before any work:
    UserError in one line. NaN fails the range tests too."""
    if size is not None and not MIN_SIZE <= size <= max_size:
        raise UserError(f"size must be in {MIN_SIZE}..{max_size}, got {clip(str(size), 40)}")
    if noise_factor is not None and not 0 <= noise_factor <= 10:
        raise UserError(f"noise_factor must be in 0..10, got {noise_factor}")
    if not 0 <= seed < SEED_LIMIT:
        raise UserError(f"seed must be in [0, 2**{SEED_LIMIT.bit_length() - 1}), got {clip(str(seed), 40)}")


# --- the work queue ---------------------------------------------------------------------------------------


class WorkQueue:
    """At most `slots` holders at once, at most `waiting` more in line (FIFO); anyone else is refused
    with 503 and a Retry-After estimated from recent work. Used from the event loop only (no locks):
    the work itself runs in threads while its holder awaits it, so a slot is held until it ends."""

    def __init__(self, slots: int, waiting: int):
        self.slots, self.max_waiting = slots, waiting
        self.running = 0
        self._line: collections.deque[asyncio.Future] = collections.deque()
        self._seconds = 2.0  # moving average of a slot's hold time

    @property
    def waiting(self) -> int:
        return len(self._line)

    @property
    def full(self) -> bool:
        """Every place held and the line at its limit: a newcomer would be refused."""
        return self.running >= self.slots and self.waiting >= self.max_waiting

    def busy(self) -> UserError:
        """The 503 for a newcomer to a full queue, with its Retry-After."""
        seconds = self.retry_after()
        return UserError(f"the server is busy ({self.running} requests being worked on, {self.waiting} waiting): "
                         f"try again in {seconds} s", 503, {"Retry-After": str(seconds)})

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the line ahead, worked off `slots` at a time."""
        return max(1, min(600, math.ceil(self._seconds * (self.waiting + 1) / self.slots)))

    @contextlib.asynccontextmanager
    async def slot(self, gone=None):
        """Hold a place while the block runs. `gone`: an async callable telling whether the client
        has disconnected, checked while waiting (a request nobody waits for leaves the line)."""
        if self.running >= self.slots or self._line:
            if self.full:
                raise self.busy()
            turn = asyncio.get_running_loop().create_future()
            self._line.append(turn)
            try:
                while not turn.done():
                    await asyncio.wait([turn], timeout=0.5)
                    if not turn.done() and gone is not None and await gone():
                        raise UserError("the client went away while waiting", 499)
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self._release()  # handed a place just now: pass it on
                else:
                    turn.cancel()
                    with contextlib.suppress(ValueError):
                        self._line.remove(turn)
                raise
        else:
            self.running += 1
        started = time.monotonic()
        try:
            yield
        finally:
            self._seconds = 0.7 * self._seconds + 0.3 * (time.monotonic() - started)
            self._release()

    def _release(self) -> None:
        """Hand the place to the first in line, or free it."""
        while self._line:
            turn = self._line.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1


class BusyGate:
    """ASGI middleware: a POST to one of `paths` (the routes that wait in `queue`) while the queue is
    full is answered with the queue's 503 before a byte of its body is read, so a busy server does
    not take in uploads it will refuse (FastAPI reads a whole form before the route runs). A request
    let in can still find the queue full once its upload is in: the route refuses it then."""

    def __init__(self, app, queue: WorkQueue, paths: tuple[str, ...]):
        self.app, self.queue, self.paths = app, queue, paths

    async def __call__(self, scope, receive, send):
        if (scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path") in self.paths
                and self.queue.full):
            busy = self.queue.busy()
            return await send_refusal(send, busy.status, str(busy), busy.headers)
        return await self.app(scope, receive, send)


async def send_refusal(send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    """Answer {"detail": detail} with `status` and close the connection (the body was not read)."""
    body = json.dumps({"detail": detail}).encode()
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": body})


# --- requests per client ---------------------------------------------------------------------------------


class ClientLimit:
    """ASGI middleware: at most `max_requests` requests of one client (its address) in progress at
    once; more are answered 429 with Retry-After before their body is read. Slow or stalled uploads
    cannot pile up from one machine (BodyLimit's timeout ends each of them)."""

    def __init__(self, app, max_requests: int):
        self.app, self.max_requests = app, max_requests
        self.open: dict[str, int] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown",))[0]
        if self.open.get(client, 0) >= self.max_requests:
            return await send_refusal(send, 429, f"too many requests of yours in progress (at most "
                                                 f"{self.max_requests}): wait for them to finish",
                                      {"Retry-After": "2"})
        self.open[client] = self.open.get(client, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open[client] -= 1
            if not self.open[client]:
                del self.open[client]


# --- the request-body cap ---------------------------------------------------------------------------------


class BodyTooLarge(Exception):
    """Raised by the counting receive() when a body passes the cap."""


class BodyStalled(Exception):
    """Raised by the counting receive() when a body stops arriving for longer than the timeout."""


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 {"detail": message} as soon
    as that is known: from Content-Length before reading anything, else while the body streams in
    (the app's next read of the body fails; whatever it answers then is replaced by the 413). A body
    that stops arriving for `timeout` seconds is answered 408 the same way: a stalled upload holds no
    connection and no memory for long."""

    def __init__(self, app, max_bytes: int, message: str, timeout: float = 30.0):
        self.app, self.max_bytes, self.message, self.timeout = app, max_bytes, message, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send)
        received, over, started, replaced, complete = 0, None, False, False, False

        async def counting_receive():
            nonlocal received, over, complete
            if over:
                raise BodyTooLarge()
            if complete:  # after the body: the server's wait for a disconnect, not bounded
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                over = (408, f"the upload stalled: no data for {self.timeout:g} s")
                raise BodyStalled() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    over = (413, self.message)
                    raise BodyTooLarge()
            return message

        async def guarded_send(message):
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if over and message["status"] != over[0]:  # e.g. a 400 "error parsing the body"
                    replaced = started = True
                    return await send_refusal(send, *over)
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over or started:
                raise
            await send_refusal(send, *over)

    async def _refuse(self, send) -> None:
        await send_refusal(send, 413, self.message)


# --- memory -------------------------------------------------------------------------------------------------


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """413 for a picture over `max_pixels` (`what`: "image is", "the clip's frames are"), told from
    its header, before anything is decoded: a small file can declare a huge picture."""
    if width * height > max_pixels:
        raise UserError(f"{what} {width}x{height} pixels, over the limit of {max_pixels / 1e6:g} megapixels", 413)


def stylization_bytes(generator, width: int, height: int, tile: int | None) -> int:
    """The network (one pass, or in tiles) and what follows it, for a width × height picture."""
    module = getattr(generator, "torch_generator", generator)
    network = untiled_bytes(module, height, width) if tile is None else tiled_bytes(module, height, width, tile)
    return network + OUTPUT_BYTES_PER_PIXEL * width * height


def plan_stylization(generator, upload: tuple[int, int, str], target: tuple[int, int],
                     budget: int) -> tuple[int | None, int]:
    """(tile, bytes): how to stylize an upload (width, height, mode) at `target` (width, height)
    within `budget` bytes: in one pass (tile None) if it fits, else in the largest tile of TILES
    that does; else UserError 413 naming the largest size that would fit."""
    module = getattr(generator, "torch_generator", generator)
    decode = decode_bytes(*upload)
    width, height = target
    options = [None] + ([t for t in TILES if t < max(width, height)] if tileable(module) else [])
    for tile in options:
        need = max(decode, stylization_bytes(generator, width, height, tile))
        if need <= budget:
            return tile, need
    if decode > budget:
        raise UserError(f"the image is {upload[0]}x{upload[1]} pixels: decoding it needs about {gigabytes(decode)}, "
                        f"over this server's memory budget of {gigabytes(budget)} per request; send a smaller "
                        f"image", 413)
    smallest = min(stylization_bytes(generator, width, height, t) for t in options)
    fitting = largest_fitting_size(lambda w, h: min(stylization_bytes(generator, w, h, t) for t in
                                                    [None] + [t for t in TILES if t < max(w, h)]),
                                   target, budget)
    fix = f"use size ≤ {fitting}" if fitting >= 16 else "this server cannot stylize with this model"
    raise UserError(f"stylizing {width}x{height} pixels needs about {gigabytes(smallest)} of memory even in tiles, "
                    f"over this server's memory budget of {gigabytes(budget)} per request: {fix}", 413)


def largest_fitting_size(need, target: tuple[int, int], budget: int) -> int:
    """The largest longer side s ≤ max(target) (same aspect ratio) with need(width, height) ≤ budget;
    0 if not even 16 pixels fit."""
    longest = max(target)
    def dims(s):
        return max(1, round(target[0] * s / longest)), max(1, round(target[1] * s / longest))
    low, high = 15, longest  # need(low) fits (or 15: nothing does), need(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if need(*dims(middle)) <= budget:
            low = middle
        else:
            high = middle
    return low if low >= 16 and need(*dims(low)) <= budget else 0


def check_memory_now(need: int) -> None:
    """503 when the machine has less memory available right now than a request needs (other
    processes may have taken what the budget assumed)."""
    available = available_memory()
    if available is not None and need > available:
        raise UserError(f"the server is short of memory right now ({gigabytes(available)} available, this "
                        f"request needs about {gigabytes(need)}): try again later, or a smaller size", 503,
                        {"Retry-After": "30"})


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to trim
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc's malloc_trim over all its arenas)."""
    if _TRIM is not None:
        _TRIM(0)


_arena_kept: ContextVar[bool] = ContextVar("texture_nets_arena_kept", default=False)


@contextlib.contextmanager
def arena_kept():
    """Runs in this block (this thread) reuse ONNX Runtime's arena whatever their size: a live
    session's frames, all of one size and at most --max_live_size, would otherwise each pay for a
    shrink and a regrowth (measured: 35 → 50 ms a 320x240 frame). The next large run elsewhere
    shrinks the arena again."""
    token = _arena_kept.set(True)
    try:
        yield
    finally:
        _arena_kept.reset(token)


class _ShrinkingSession:
    """An ONNX Runtime session that gives its CPU arena back after large runs. Its arena otherwise
    keeps the largest run's activations for good (measured: +0.6 GB after one 1024² picture). Two
    things do it: the arena is shrunk at the end of each run (a run option), and the picture is
    written into a buffer of ours (an I/O binding), because an output allocated in the arena would
    pin the region it lies in (measured: up to +0.4 GB left after two concurrent 768² runs).
    Runs over SHRINK_PIXELS are shrunk; smaller ones reuse the arena (it stays small)."""

    def __init__(self, session):
        import onnxruntime as ort  # ONNX Runtime: loaded only for the ONNX engine
        self._session = session
        self._options = ort.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._bind = True

    def run(self, output_names, input_feed, run_options=None):
        photo = input_feed.get("photo")
        large = photo is not None and photo.size > 3 * SHRINK_PIXELS and not _arena_kept.get()
        options = run_options or (self._options if large else None)
        if self._bind and photo is not None and list(output_names) == ["picture"]:
            try:
                binding = self._session.io_binding()
                for name, value in input_feed.items():
                    binding.bind_cpu_input(name, np.ascontiguousarray(value))
                picture = np.empty(photo.shape, dtype=np.float32)  # the padded picture: the photo's shape
                binding.bind_output("picture", "cpu", 0, np.float32, list(picture.shape), picture.ctypes.data)
                self._session.run_with_iobinding(binding, options)  # (None: the default options)
                return [picture]
            except Exception as exc:  # noqa: BLE001 — a graph of another shape: plain runs from now on
                log.warning("ONNX Runtime: running without an output binding (%s: %s)", type(exc).__name__, exc)
                self._bind = False
        return self._session.run(output_names, input_feed, options)

    def __getattr__(self, name):
        return getattr(self._session, name)


def shrink_onnx_arena(generator):
    """`generator` with its ONNX Runtime session (if it has one) shrinking its arena after each run."""
    session = getattr(generator, "session", None)
    if session is not None and not isinstance(session, _ShrinkingSession):
        try:
            generator.session = _ShrinkingSession(session)
        except (ImportError, AttributeError, RuntimeError) as exc:  # an onnxruntime without the option
            log.warning("ONNX Runtime's arena cannot be shrunk after runs (%s): memory stays at its peak", exc)
    return generator
