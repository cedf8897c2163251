"""What the command lines share: flags generated from a config dataclass, errors and warnings printed
as one line, the memory checks of a picture (its decode; VGG-19 taking it whole), Pillow's bomb guard
lifted for the user's own files."""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from texture_nets.core.images import decodable_dimensions, resized_dimensions
from texture_nets.core.memory import available_memory, check_fits, device_memory, picture_bytes


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    tqdm.write(f"warning: {message}", file=sys.stderr)


@contextmanager
def one_line_warnings():
    """While the block runs, each warning is one 'warning: ...' line on stderr (above a progress bar);
    the caller's warning display is restored after. Python 3.12's note that a DataLoader worker is
    forked from a multi-threaded process is not the user's to act on (PyTorch forks its workers by
    design, with its thread pools reset in the child), so it is not shown even where deprecation
    warnings are (python -W default, pytest)."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        warnings.filterwarnings("ignore", r".*multi-threaded, use of fork\(\) may lead to deadlocks",
                                DeprecationWarning)
        yield


def fail(prog: str, exc: BaseException | str, dist=None, *, shared: bool = False) -> int:
    """One line on stderr, exit status 2. Several processes (`dist`): an error every rank meets alike
    (`shared`: a user error, with the same config and files everywhere) is told by rank 0 alone;
    any other by each rank that meets it, naming the rank."""
    message = " ".join(str(exc).split())  # one line, whatever the message holds
    if dist is None or not dist.is_distributed:
        print(f"{prog}: error: {message}", file=sys.stderr)
    elif dist.is_main or not shared:
        print(f"{prog}: error{'' if shared else f' (rank {dist.rank})'}: {message}", file=sys.stderr)
    return 2


def check_vgg_memory(path: Path, size: int, device: torch.device, doing: str = "optimising") -> tuple[int, int]:
    """Refuse, before decoding it, a picture (resized to `size`) that VGG-19 cannot take in the
    device's memory (optimisation; activation maps); its (width, height) at `size` otherwise."""
    width, height = resized_dimensions(decodable_dimensions(path), size)
    check_fits(picture_bytes(width, height), device_memory(device),
               f"{path}: {doing} {width}x{height} pixels", "pass a smaller --size")
    return width, height


@contextmanager
def pictures_judged_by_memory():
    """While inside, Pillow's guard against decompression bombs is lifted (it warns over 89 megapixels
    and refuses over 179, whatever the memory): a command line decodes its user's own files, and
    refuses each one from its header against the memory it needs (data.decodable_dimensions, then the
    stylizing or VGG estimate). Kept where the available memory cannot be read (no such check then).
    The web server keeps its own limit (--max_megapixels)."""
    if available_memory() is None:
        yield
        return
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


@contextmanager
def stop_signals_interrupt():
    """While inside, SIGTERM (and SIGINT where it is ignored, as in a background `cmd &` job) raise
    KeyboardInterrupt, so `kill PID` stops a run the way Ctrl-C does: a resumable checkpoint is saved
    and nothing is lost. The previous handlers come back on exit (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt)}
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
