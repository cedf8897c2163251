"""Writing a file so that nobody ever sees half of it: the one way the project writes its outputs
(checkpoints, pictures, videos, exports, caches, downloads).

`atomic_output(path)` hands the caller a temporary name in `path`'s folder; when the block succeeds the
temporary file is renamed over `path` (one atomic step on POSIX and Windows), and when it fails or is
interrupted (Ctrl-C included) the temporary file is removed. A reader sees the old file or the new one,
never a partial one, and a crash leaves no half-written file under the user's name.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from texture_nets.core.errors import TextureNetsError


def temporary_name(path: Path, keep_suffix: bool = False) -> Path:
    """A hidden, unique name next to `path`. It ends in `.tmp` so that no listing of `*.pt`, `*.onnx`
    or image files picks it up, or, with `keep_suffix`, in `path`'s own extension (for writers that
    choose the format from the name, such as FFmpeg)."""
    ending = f".tmp{path.suffix}" if keep_suffix else ".tmp"
    return path.parent / f".{path.name}.{uuid.uuid4().hex}{ending}"


@contextmanager
def atomic_output(path: str | os.PathLike, *, keep_suffix: bool = False, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to `path` when the block succeeds, remove it otherwise.

    durable: fsync the file before the rename, so that a power cut cannot leave an empty file under
    `path` (worth it for a training run's checkpoints, not for caches). An OSError (the block's, the
    rename's or the cleanup's) becomes a TextureNetsError naming `path`, not the temporary name the
    user never chose. A file replaced keeps its permission bits (a hard link to it keeps the old
    content: the new file is a new inode)."""
    path = Path(path)
    tmp = temporary_name(path, keep_suffix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if durable:
            _fsync(tmp)
        keep_mode(path, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise TextureNetsError(f"cannot write {path} ({exc.strerror or exc})") from exc
    finally:
        with contextlib.suppress(OSError):  # e.g. the folder is a file: the error above says so, in the user's words
            tmp.unlink(missing_ok=True)


def keep_mode(path: Path, tmp: Path) -> None:
    """Give the new file `tmp` the permission bits of the file it replaces at `path`, if any."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)


def _fsync(path: Path) -> None:
    """Flush a closed file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_outputs_spare_inputs(pairs: Sequence[tuple[Path, Path]], protected: Sequence[str | os.PathLike] = ()) -> None:
    """Refuse any output file that is an input (or one of the `protected` files, e.g. style images):
    the same file however it is named (links, `./`, case-insensitive file systems), so that
    stylizing never replaces a user's picture."""
    originals = {}
    for path in [*(src for src, _ in pairs), *map(Path, protected)]:
        if (key := _file_identity(path)) is not None:
            originals.setdefault(key, path)
    clashes = [(dst, originals[key]) for _, dst in pairs if (key := _file_identity(dst)) in originals]
    if clashes:
        dst, original = clashes[0]
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise TextureNetsError(f"--output {dst} would overwrite the input {original}{more}: choose another "
                               f"--output (a file or folder that holds none of the inputs)")


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, None for a path that does not exist."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
