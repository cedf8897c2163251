"""A training run's files in its checkpoint folder: never start over another run's model or progress,
and never let two runs of one name write the same files at once.

- `check_overwrite`: a new run (no --resume) whose `<name>.pt` or `<name>.resume.pt` already exists is
  refused, naming --resume, --name and --overwrite; a resumed run may write over the files of the run it
  continues (those next to the checkpoint it resumes from).
- `run_lock`: `<name>.lock`, created atomically (O_EXCL) and holding the owner's PID, host and process
  start time, is kept while the run trains and removed at its end (also on Ctrl-C or an error), with
  the checkpoint folder if the lock created it and the run left it empty. A lock whose process is gone
  (a crash, a killed job) is stale and taken over.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from .errors import TextureNetsError

CREATING_GRACE_S = 10.0  # an empty lock younger than this is being written by its owner, not stale


def check_overwrite(outputs: Sequence[Path], resumed_from: Path | None = None, overwrite: bool = False) -> None:
    """Refuse to write a run's `outputs` (its model, then its resumable checkpoint) over existing files,
    unless `overwrite`, or the run continues (`resumed_from`) the checkpoint in the same folder."""
    if overwrite:
        return
    existing = [path for path in outputs
                if path.exists() and not (resumed_from is not None and _same_folder(path, resumed_from))]
    if not existing:
        return
    name = existing[0].name.removesuffix(".pt").removesuffix(".resume")
    resumable = [path for path in existing if path.name.endswith(".resume.pt")]
    if resumable:
        raise TextureNetsError(f"{resumable[0]} holds the progress of a run named {name!r}: continue it with "
                               f"--resume, train under another --name, or start again from step 0 with --overwrite")
    raise TextureNetsError(f"{existing[0]} holds a trained model named {name!r}: continue training it with --resume "
                           f"{existing[0]}, train under another --name, or replace it with --overwrite")


def _same_folder(path: Path, other: Path) -> bool:
    """Whether two paths lie in the same folder (after resolving links)."""
    return path.parent.resolve() == other.parent.resolve()


@contextmanager
def run_lock(folder: str | os.PathLike, name: str) -> Iterator[Path]:
    """Hold `<folder>/<name>.lock` for the duration of the block (see the module docstring)."""
    path = Path(folder) / f"{name}.lock"
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # removed again if left empty
    token = _acquire(path, name)
    try:
        yield path
    finally:
        _release(path, token)
        for folder_made in created:  # deepest first; a folder the run wrote into stays
            try:
                folder_made.rmdir()
            except OSError:
                break


def _acquire(path: Path, name: str) -> str:
    """Create the lock file holding this process's token, taking over a stale one; return the token."""
    token = f"{os.getpid()} {socket.gethostname()} {process_start(os.getpid())}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TextureNetsError(f"cannot create the checkpoint folder {path.parent} ({exc.strerror})") from exc
    for _ in range(3):  # a stale lock is removed, then created afresh; another run may win that race
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            _refuse_or_clear(path, name)
            continue
        except OSError as exc:
            raise TextureNetsError(f"cannot create the lock file {path} ({exc.strerror})") from exc
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token)
        return token
    raise TextureNetsError(f"{path}: another run keeps taking the name {name!r}: choose another --name")


def _refuse_or_clear(path: Path, name: str) -> None:
    """An existing lock: refused if its owner may be alive, removed if stale."""
    try:
        text, age = path.read_text(encoding="ascii", errors="replace"), time.time() - path.stat().st_mtime
    except FileNotFoundError:  # released meanwhile
        return
    owner = text.split()
    if (not owner and age < CREATING_GRACE_S) or (owner and owner_alive(owner)):
        who = f"process {owner[0]}" + (f" on {owner[1]}" if len(owner) > 1 else "") if owner else "another process"
        raise TextureNetsError(f"a training run named {name!r} is already running ({who}, lock {path}): wait for it "
                               f"to finish or choose another --name (if it is not running, delete the lock file)")
    path.unlink(missing_ok=True)


def owner_alive(owner: list[str]) -> bool:
    """Whether the lock's owner (pid, host, start time) may still run: always on another host (it
    cannot be checked from here); on this one, if that PID exists and started at the same time."""
    if len(owner) < 3 or not owner[0].isdigit():
        return False  # not a lock this module wrote: damaged
    pid, host, started = int(owner[0]), owner[1], owner[2]
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return started == "-" or process_start(pid) in (started, "-")


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux /proc), so that a PID reused by
    another process is told apart from the lock's owner; '-' where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return "-"


def _release(path: Path, token: str) -> None:
    """Remove the lock if it is still this process's (a taken-over lock is left to its new owner)."""
    try:
        if path.read_text(encoding="ascii", errors="replace") == token:
            path.unlink()
    except OSError:
        pass
