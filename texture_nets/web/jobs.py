"""One background training job at a time, for the web app: start, watch, cancel.

The job runs `run_training` in a thread and keeps what the page shows: state, step, losses, the
latest validation sample (photo | stylized, as PNG). Cancelling raises `Cancelled` (a
KeyboardInterrupt, so the trainer saves its resumable checkpoint as it does on Ctrl-C) from the
next progress event; events come every step (log_every 1).
"""

from __future__ import annotations

import io
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import tensor_to_image
from texture_nets.training.config import TrainConfig
from texture_nets.training.launch import claim_run
from texture_nets.training.run import run_training
from texture_nets.web.limits import release_memory

UPLOADS = ".uploads"  # where the style images of web jobs are kept, in the checkpoint folder


class Cancelled(KeyboardInterrupt):
    """Raised inside the training thread when the user cancels: the trainer saves and stops."""


class Busy(TextureNetsError):
    """A job is already running."""


@dataclass
class JobState:
    """What the page shows about the current (or last) job."""

    state: str = "idle"  # idle, starting, running, done, failed, cancelled
    name: str = ""
    step: int = 0
    total: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    val_losses: dict[str, float] = field(default_factory=dict)
    error: str = ""
    checkpoint: str = ""
    started: float = 0.0
    finished: float = 0.0
    sample_version: int = 0  # bumps with each new sample, so the page knows to reload it

    def as_dict(self) -> dict:
        elapsed = (self.finished or time.time()) - self.started if self.started else 0.0
        return {**self.__dict__, "elapsed_s": round(elapsed, 1)}


def samples_png(samples: dict[str, torch.Tensor]) -> bytes:
    """The first validation photo and its stylized versions side by side, as PNG bytes."""
    row = torch.cat([images[:1].float().clamp(0, 1) for images in samples.values()], dim=3)
    buffer = io.BytesIO()
    tensor_to_image(row[0]).save(buffer, format="PNG")
    return buffer.getvalue()


class TrainingJobs:
    """Runs at most one training job; every method is safe to call from request threads."""

    def __init__(self, on_finished=lambda state: None):
        self._lock = threading.Lock()
        self._state = JobState()
        self._sample: bytes | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_finished = on_finished

    def start(self, config: TrainConfig) -> dict:
        """Start training `config` in the background; Busy if a job is running, or if the run's name is
        held or taken: the job claims `<name>.lock` as train.py does (training/launch.py) before it
        starts, and holds it until it ends, so a command-line run and a job never share a name's files."""
        config = replace(config, log_every=1).validate()
        with self._lock:
            if self._state.state in ("starting", "running"):
                raise Busy(f"a training job ({self._state.name}) is running: wait for it or cancel it")
            try:
                claim = claim_run(config)
            except TextureNetsError as exc:
                raise Busy(str(exc)) from exc
            self._state = JobState(state="starting", name=config.style_name, total=config.last_step,
                                   started=time.time())
            self._sample = None
            self._cancel.clear()
            self._thread = threading.Thread(target=self._run, args=(config, claim), name="texture-nets-training",
                                            daemon=True)
            self._thread.start()
            return self._state.as_dict()

    def cancel(self) -> dict:
        """Ask the running job to stop (it saves a resumable checkpoint first)."""
        with self._lock:
            if self._state.state in ("starting", "running"):
                self._cancel.set()
            return self._state.as_dict()

    def status(self) -> dict:
        with self._lock:
            return self._state.as_dict()

    def sample(self) -> bytes | None:
        with self._lock:
            return self._sample

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job's thread to end; True if it has (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _on_event(self, event) -> None:
        sample = samples_png(event.samples) if event.samples else None
        with self._lock:
            state = self._state
            state.state, state.step, state.total = "running", event.step, event.total_steps
            state.losses = {k: round(v, 5) for k, v in event.losses.items() if "/" not in k}
            if event.val_losses:
                state.val_losses = {k: round(v, 5) for k, v in event.val_losses.items() if "/" not in k}
            if sample is not None:
                self._sample, state.sample_version = sample, state.sample_version + 1
        if self._cancel.is_set():
            raise Cancelled()

    def _run(self, config: TrainConfig, claim: ExitStack) -> None:
        outcome: dict = {}
        try:
            result = run_training(config, on_event=self._on_event, log=lambda line: None, samples=True)
            outcome = {"state": "done", "checkpoint": str(result.checkpoint)}
        except Cancelled:
            outcome = {"state": "cancelled"}
        except Exception as exc:  # noqa: BLE001 — the page shows any failure; the server stays up
            outcome = {"state": "failed", "error": str(exc) if isinstance(exc, TextureNetsError)
                       else f"{type(exc).__name__}: {exc}"}
        finally:
            if outcome.get("state") != "done":  # a cancelled or failed job's upload is nobody's to keep
                remove_uploads(config)
            claim.close()  # the name is free again once its files are written
        release_memory()  # the run's VGG, batches and activations are freed: give the memory back
        with self._lock:
            for key, value in outcome.items():
                setattr(self._state, key, value)
            self._state.finished = time.time()
            final = JobState(**self._state.__dict__)
        self._on_finished(final)


def remove_uploads(config: TrainConfig) -> None:
    """Delete the style images a job was uploaded with (they live in `<checkpoint_dir>/.uploads/`)."""
    uploads = Path(config.checkpoint_dir) / UPLOADS
    for texture in config.texture:
        path = Path(texture)
        if path.parent.resolve() == uploads.resolve():
            path.unlink(missing_ok=True)
