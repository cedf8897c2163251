"""The training loop. It takes objects (generator, loss, batches, optimizer) and reports through
callbacks; it knows nothing of VGG, files, progress bars or dashboards.

Reproducibility: the noise of step s comes from a generator seeded with (seed, s), the batches from
a sampler that can start anywhere, and the learning rate is a function of the step, so a run resumed
from the optimizer state at step s continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

from .config import TrainConfig
from .data import Batch
from .errors import TextureNetsError
from .losses import PerceptualLoss


@dataclass
class StepEvent:
    """What the loop reports every `log_every` and `viz_every` steps (and at validation / the end)."""

    step: int  # steps completed
    total_steps: int
    losses: dict[str, float]  # last training batch: total, content, style, tv, style/<layer>
    learning_rate: float
    images_per_sec: float
    val_losses: dict[str, float] | None = None  # set on validation steps
    skipped: tuple[str, ...] = ()  # files found unreadable since the previous event
    cuda_memory_mb: float | None = None  # CUDA only: peak memory allocated since the previous event
    samples: dict[str, torch.Tensor] | None = None  # validation steps, if asked for: column → N,3,H,W on CPU


@dataclass
class Callbacks:
    """Where the loop's reports go. `on_checkpoint(step, reason, resume_state)`: reason is
    'periodic', 'interrupt' or 'final'; resume_state holds optimizer (and scaler) state."""

    on_event: Callable[[StepEvent], None] = lambda event: None
    on_checkpoint: Callable[[int, str, dict, dict], None] = lambda step, reason, state, losses: None


def learning_rate_at(step: int, config: TrainConfig) -> float:
    """The schedule: constant, cosine from learning_rate to 1% of it, or step decay."""
    if config.lr_schedule == "cosine":
        progress = min(step / max(config.num_iterations, 1), 1.0)
        return config.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
    if config.lr_schedule == "step":
        return config.learning_rate * config.lr_decay ** (step // config.lr_decay_every)
    return config.learning_rate


def noise_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """A fresh RNG for the noise of one step, so noise depends only on (seed, step)."""
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + step * 7919 + 1) % 2**63)


def autocast_for(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA where supported (fp16 otherwise); nothing on CPU."""
    if device.type != "cuda" or not enabled:
        return nullcontext(), None
    dtype = torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16  # native bf16: Ampere+
    return torch.autocast("cuda", dtype=dtype), dtype


@dataclass
class Trainer:
    """Runs `config.num_iterations` steps of Adam on the generator against the perceptual loss."""

    generator: nn.Module
    criterion: PerceptualLoss
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    device: torch.device
    callbacks: Callbacks = field(default_factory=Callbacks)
    val_images: torch.Tensor | None = None  # fixed validation photos (None: none; unused in texture mode)
    sample_noise_factors: tuple[float, ...] | None = None  # stylize the validation photos at these, for display

    def __post_init__(self) -> None:
        self.autocast, self.amp_dtype = autocast_for(self.device, self.config.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.texture_mode = self.config.mode == "texture"

    def resume_state(self) -> dict:
        """Optimizer and grad-scaler state (everything else is a function of seed and step)."""
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_resume_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def step(self, step: int, images: torch.Tensor | None):
        """One optimisation step; returns the LossTerms (tensors, not synced to the host)."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(step, self.config)
        with self.autocast:
            output = self._generate(images, self.config.batch_size, noise_generator(self.config.seed, step, self.device))
            terms = self.criterion(output, images)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return terms

    def _generate(self, images: torch.Tensor | None, batch: int, noise: torch.Generator,
                  noise_factor: float | None = None) -> torch.Tensor:
        """The generator's output for photos, or (texture mode, images None) for `batch` noise samples,
        at `noise_factor` (default: the training one)."""
        factor = self.config.noise_factor if noise_factor is None else noise_factor
        if images is None:
            return self.generator(size=(self.config.image_size,) * 2, batch_size=batch, generator=noise,
                                  noise_factor=factor)
        return self.generator(images, generator=noise, noise_factor=factor)

    @torch.no_grad()
    def validate(self) -> tuple[dict[str, float], torch.Tensor] | None:
        """Losses on the fixed validation photos (texture mode: num_val samples) with the fixed
        validation noise, and the output they were computed on; None without validation photos."""
        if not self.texture_mode and (self.val_images is None or len(self.val_images) == 0):
            return None
        images = None if self.texture_mode else self.val_images.to(self.device)
        self.generator.eval()
        with self.autocast:
            output = self._generate(images, max(self.config.num_val, 1), noise_generator(self.config.seed, -1, self.device))
            terms = self.criterion(output, images)
        self.generator.train()
        return terms.as_floats(), output

    @torch.no_grad()
    def samples(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """Labelled N,3,H,W batches on the CPU for display: the validation photos (not in texture
        mode), `output` (validate()'s, at the training noise factor), and the same photos and noise
        at each other factor of `sample_noise_factors`."""
        trained = self.config.noise_factor
        columns = {} if self.texture_mode else {"photo": self.val_images.cpu()}
        columns[f"noise {trained:g} (training)"] = output.float().clamp(0, 1).cpu()
        images = None if self.texture_mode else self.val_images.to(self.device)
        self.generator.eval()
        for factor in dict.fromkeys(self.sample_noise_factors or ()):
            if factor != trained:
                other = self._generate(images, len(output), noise_generator(self.config.seed, -1, self.device), factor)
                columns[f"noise {factor:g}"] = other.float().clamp(0, 1).cpu()
        self.generator.train()
        return columns

    def _memory_mb(self) -> float | None:
        """Peak CUDA memory allocated since the previous call, in MiB (None on the CPU)."""
        if self.device.type != "cuda":
            return None
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        torch.cuda.reset_peak_memory_stats(self.device)
        return peak

    def fit(self, batches: Iterator[Batch], start_step: int = 0) -> dict[str, float]:
        """Train from `start_step` to num_iterations; Ctrl-C saves a resumable checkpoint and re-raises."""
        config, total = self.config, self.config.num_iterations
        self.generator.train()
        losses: dict[str, float] = {}
        step, skipped, tick, images_seen = start_step, [], time.perf_counter(), 0
        try:
            while step < total:
                batch = next(batches)
                skipped.extend(batch.skipped)
                images = None if self.texture_mode else batch.images.to(self.device, non_blocking=True)
                terms = self.step(step, images)
                step += 1
                images_seen += config.batch_size
                is_val = bool(config.val_every and step % config.val_every == 0) or step == total
                if (step % config.log_every == 0 or step % config.viz_every == 0 or is_val
                        or step == start_step + 1):
                    losses = terms.as_floats()
                    if not math.isfinite(losses["total"]):
                        raise TextureNetsError(f"the loss became {losses['total']} at step {step}: lower "
                                               f"--learning_rate or the loss weights")
                    now = time.perf_counter()
                    validation = self.validate() if is_val else None
                    event = StepEvent(step, total, losses, learning_rate_at(step - 1, config),
                                      images_seen / max(now - tick, 1e-9), validation and validation[0],
                                      tuple(skipped), self._memory_mb(),
                                      self.samples(validation[1]) if validation and self.sample_noise_factors else None)
                    tick, images_seen, skipped = time.perf_counter(), 0, []
                    self.callbacks.on_event(event)
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total:
                    self.callbacks.on_checkpoint(step, "periodic", self.resume_state(), losses)
        except KeyboardInterrupt:
            self.callbacks.on_checkpoint(step, "interrupt", self.resume_state(), losses)
            raise
        self.callbacks.on_checkpoint(step, "final", self.resume_state(), losses)
        return losses
