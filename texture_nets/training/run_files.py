"""A training run's files in its checkpoint folder: never start over another run's model or progress,
and never let two runs of one name write the same files at once.

- `check_overwrite`: a new run (no --resume) whose `<name>.pt` or `<name>.resume.pt` already exists, or a
  `<name>.toml` that is not a run's settings record (RECORD_MARK), is refused, naming --resume, --name
  and --overwrite; a resumed run may write over the files of the run it continues (same folder, same
  name as the checkpoint it resumes from), and no others.
- `check_progress_kept`: a run continued from an older checkpoint than its own `<name>.resume.pt` is
  refused (its later steps would be lost), unless --overwrite.
- `run_lock`: `<name>.lock`, held with an exclusive flock and holding the owner's PID, host and process
  start time, is kept while the run trains and removed at its end (also on Ctrl-C or an error), with
  the checkpoint folder if the lock created it and the run left it empty. The kernel drops the flock
  when its process dies, so a lock left by a crash or a killed job is taken over, by one run only:
  judging it stale and writing the new owner happen under the flock (a killed run's forked data workers
  share its flock for the moments they take to exit: waited for). A lock file naming a live owner is
  never taken over even unflocked (a run on another host, where the flock may not reach); on a file
  system without flock the owner written in the file decides alone (an empty lock under 10 s old is
  being written).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from texture_nets.core.checkpoint import load_checkpoint, total_steps
from texture_nets.core.errors import TextureNetsError

RECORD_MARK = "# The resolved settings of training run"  # the first line of a run's <name>.toml
CREATING_GRACE_S = 10.0  # without flock: an empty lock younger than this is being written by its owner
ORPHAN_WAIT_S = 10.0  # a dead run's DataLoader workers (forked, holding its flock) exit within this


def check_overwrite(outputs: Sequence[Path], resumed_from: Path | None = None, overwrite: bool = False) -> None:
    """Refuse to write a run's `outputs` (its model, its resumable checkpoint, its settings) over existing
    files, unless `overwrite`, or they are the files of the run it continues (`resumed_from`: the same
    folder and the same run name; a run resumed under another --name must not replace that name's files)."""
    if overwrite:
        return
    existing = [path for path in outputs if path.exists() and not is_run_record(path)
                and not (resumed_from is not None and _same_run(path, resumed_from))]
    if not existing:
        return
    name = run_name(existing[0])
    resumable = [path for path in existing if path.name.endswith(".resume.pt")]
    if resumable:
        raise TextureNetsError(f"{resumable[0]} holds the progress of a run named {name!r}: continue it with "
                               f"--resume, train under another --name, or start again from step 0 with --overwrite")
    models = [path for path in existing if path.suffix == ".pt"]
    if models:
        raise TextureNetsError(f"{models[0]} holds a trained model named {name!r}: continue training it with "
                               f"--resume {models[0]}, train under another --name, or replace it with --overwrite")
    raise TextureNetsError(f"{existing[0]} is not the settings record a run writes there (a recipe of yours?): "
                           f"train under another --name, or replace it with --overwrite")


def check_progress_kept(resume_file: Path, start_steps: int, resumed_from: Path | None, overwrite: bool) -> None:
    """Refuse to continue a run from an older checkpoint (say its `<name>.pt`, written at the last periodic
    checkpoint) over its `<name>.resume.pt` when that holds later progress (an interrupt saves only the
    resume file): the newer steps would be lost. `start_steps`: the steps behind the resumed weights."""
    if overwrite or resumed_from is None or not resume_file.is_file() or resume_file.samefile(resumed_from):
        return
    later = total_steps(load_checkpoint(resume_file))
    if later > start_steps:
        raise TextureNetsError(f"{resume_file} holds later progress of this run ({later:,} steps against "
                               f"{start_steps:,} in {resumed_from}): continue from it with --resume {resume_file}, "
                               f"or add --overwrite to go on from {resumed_from} and lose those steps")


def is_run_record(path: Path) -> bool:
    """Whether `path` is the settings record an earlier run wrote (free to replace: the run's model and
    resume file, checked beside it, are what hold its work), not a file of the user's."""
    if path.suffix != ".toml":
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().startswith(RECORD_MARK)
    except OSError:
        return False


def run_name(path: Path) -> str:
    """The run a file belongs to: mosaic.pt, mosaic.resume.pt and mosaic.toml are run "mosaic"'s."""
    return path.name.removesuffix(".pt").removesuffix(".resume").removesuffix(".toml")


def _same_run(path: Path, other: Path) -> bool:
    """Whether two files belong to one run: the same folder (after resolving links) and run name."""
    return path.parent.resolve() == other.parent.resolve() and run_name(path) == run_name(other)


@contextmanager
def run_lock(folder: str | os.PathLike, name: str) -> Iterator[Path]:
    """Hold `<folder>/<name>.lock` for the duration of the block (see the module docstring)."""
    path = Path(folder) / f"{name}.lock"
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # removed again if left empty
    fd = _acquire(path, name)
    try:
        yield path
    finally:
        _release(path, fd)
        for folder_made in created:  # deepest first; a folder the run wrote into stays
            try:
                folder_made.rmdir()
            except OSError:
                break


def _acquire(path: Path, name: str) -> int:
    """Open `path`, flock it and write this process's token into it, taking over a stale lock; return
    the descriptor, which keeps the flock until `_release` closes it."""
    token = f"{os.getpid()} {socket.gethostname()} {process_start(os.getpid())}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TextureNetsError(f"cannot create the checkpoint folder {path.parent} ({exc.strerror})") from exc
    for _ in range(3):  # the holder may release (unlink) the file between our open and our flock
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TextureNetsError(f"cannot create the lock file {path} ({exc.strerror})") from exc
        try:
            found = _locked_owner(fd, path, name)
            if found is None:
                os.close(fd)
                continue
            owner, locked = found
            if owner and owner_alive(owner):  # an unflocked lock of a live run (another host, an older version)
                raise _running(path, name, owner)
            if not owner and not locked and time.time() - os.fstat(fd).st_mtime < CREATING_GRACE_S:
                raise _running(path, name, owner)  # no flock here: an empty new lock is being written
            os.ftruncate(fd, 0)
            os.pwrite(fd, token.encode("ascii"), 0)
            return fd
        except BaseException:
            os.close(fd)
            raise
    raise TextureNetsError(f"{path}: another run keeps taking the name {name!r}: choose another --name")


def _locked_owner(fd: int, path: Path, name: str) -> tuple[list[str], bool] | None:
    """Flock `fd` (the open `path`) and read the owner written in it ([] when none), with whether the
    flock was taken (False on a file system without flock); None when `path` was removed or replaced
    meanwhile (open it again). A flock held elsewhere: the run is refused, unless the owner written in
    the file is gone, when the flock is only held by its forked workers for the moments they take to
    exit (waited for, up to ORPHAN_WAIT_S)."""
    deadline = time.monotonic() + ORPHAN_WAIT_S
    locked = True
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            owner = _read_owner(fd)
            if not owner or owner_alive(owner) or time.monotonic() > deadline:
                raise _running(path, name, owner) from None
            time.sleep(0.1)
        except OSError as exc:  # a file system without flock: the owner written in the file decides alone
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise TextureNetsError(f"cannot lock {path} ({exc.strerror})") from exc
            locked = False
            break
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        same = False
    return (_read_owner(fd), locked) if same else None


def _read_owner(fd: int) -> list[str]:
    """The PID, host and start time written in an open lock file (empty while its creator writes it)."""
    return os.pread(fd, 256, 0).decode("ascii", errors="replace").split()


def _running(path: Path, name: str, owner: list[str]) -> TextureNetsError:
    """The refusal of a run whose name is held by `owner` (as read from the lock file)."""
    who = f"process {owner[0]}" + (f" on {owner[1]}" if len(owner) > 1 else "") if owner else "another process"
    return TextureNetsError(f"a training run named {name!r} is already running ({who}, lock {path}): wait for it "
                            f"to finish or choose another --name (if it is not running, delete the lock file)")


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


def _release(path: Path, fd: int) -> None:
    """Remove the lock file (while still flocked, so that no other run takes the file being removed;
    one that opened it meanwhile sees it gone and opens a new one), then drop the flock."""
    try:
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            path.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)
