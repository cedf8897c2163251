"""The training loop. It takes objects (generator, loss, batches, optimizer) and reports through
callbacks; it knows nothing of VGG, files, progress bars or dashboards.

Reproducibility: the noise of step s comes from a generator seeded with (seed, s), the batches from
a sampler that can start anywhere, and the learning rate is a function of the step, so a run resumed
from the optimizer state at step s continues exactly as the uninterrupted run would have.

Several processes (`dist`, generator wrapped in DDP): each trains on its slice of the global batch
with its slice of the global batch's noise, so together they compute what one process would; events
and checkpoints come from rank 0 only, with the losses averaged over the global batch.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from texture_nets.core.checkpoint import unwrap
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.losses import PerceptualLoss
from texture_nets.core.precision import autocast, autocast_dtype
from texture_nets.training.config import TrainConfig
from texture_nets.training.data import Batch
from texture_nets.training.distributed import DistributedContext


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
    """Where the loop's reports go. `on_checkpoint(step, reason, resume_state, losses)`: reason is
    'periodic', 'interrupt' or 'final'; resume_state holds optimizer (and scaler) state; losses are the
    last reported training losses."""

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


@contextmanager
def interrupts_held():
    """Hold Ctrl-C and SIGTERM until the block ends, then deliver them (main thread only; elsewhere signals
    cannot arrive anyway). Around an optimizer step and its step count, so that an interrupt never lands
    between Adam's updates of the weights, or between them and the count the checkpoint is labelled with:
    the saved step and the saved optimizer state always agree, and the resumed run stays exact."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])  # now, to the handler in force (Ctrl-C: KeyboardInterrupt)


@dataclass
class Trainer:
    """Runs `config.last_step` steps of Adam on the generator against the perceptual loss."""

    generator: nn.Module
    criterion: PerceptualLoss
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    device: torch.device
    callbacks: Callbacks = field(default_factory=Callbacks)
    val_images: torch.Tensor | None = None  # fixed validation photos (None: none; unused in texture mode)
    sample_noise_factors: tuple[float, ...] | None = None  # stylize the validation photos at these, for display
    dist: DistributedContext = field(default_factory=DistributedContext)  # this process's rank among several

    def __post_init__(self) -> None:
        self.amp_dtype = autocast_dtype(self.config.precision, self.device)
        self.autocast = autocast(self.device, self.amp_dtype)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.texture_mode = self.config.mode == "texture"
        self.num_styles = unwrap(self.generator).num_styles
        self.fixed_style = self.num_styles - 1 if self.config.new_style else None  # the style a run adds

    def resume_state(self) -> dict:
        """Optimizer and grad-scaler state (everything else is a function of seed and step)."""
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_resume_state(self, state: dict) -> None:
        """Restore the optimizer (and scaler) state; an empty state (a plain checkpoint) keeps a fresh one."""
        if not state:
            return
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:  # another network's, or damaged
            raise TextureNetsError(f"the resume checkpoint's optimizer state does not fit this generator "
                                   f"({exc}): a damaged or foreign file") from exc
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def step(self, step: int, images: torch.Tensor | None):
        """One optimisation step; returns the LossTerms (tensors, not synced to the host)."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(step, self.config)
        noise = self._step_noise(step)
        style = step % self.num_styles if self.fixed_style is None else self.fixed_style  # several: in turn
        with self.autocast:
            output = self._generate(images, len(noise[0]), noise, style=style)
            terms = self.criterion(output, images, batch_mean=self.dist.mean if self.dist.is_distributed else None,
                                   **self._style_of_step(noise, style))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return terms

    def _step_noise(self, step: int) -> list[torch.Tensor]:
        """This process's slice of the unit noise of step `step`'s global batch, per scale: drawn
        whole, as one process would, so every sample gets the same noise whatever the process count."""
        model, size = unwrap(self.generator), self.config.image_size
        noise = model.make_noise(self.config.batch_size, *model.padded_size(size, size),
                                 generator=noise_generator(self.config.seed, step, self.device), device=self.device)
        part = self.dist.shard(self.config.batch_size)
        return [scale[part] for scale in noise]

    def _style_of_step(self, noise: list[torch.Tensor], style: int) -> dict:
        """What a distillation's criterion needs besides the pictures: the step's noise and style."""
        return {"noise": noise, "style": style} if self.config.teachers else {}

    def _generate(self, images: torch.Tensor | None, batch: int, noise: torch.Generator | list[torch.Tensor],
                  noise_factor: float | None = None, model: nn.Module | None = None, style: int = 0) -> torch.Tensor:
        """The output of `model` (default: the generator) for photos, or (texture mode, images None) for
        `batch` noise samples, at `noise_factor` (default: the training one). `noise` seeds the noise,
        or is the unit noise itself (from `make_noise`); `style`: which style of a network of several."""
        model = self.generator if model is None else model
        factor = self.config.noise_factor if noise_factor is None else noise_factor
        source = {"noise": noise} if isinstance(noise, list) else {"generator": noise}
        if self.num_styles > 1:
            source["style"] = F.one_hot(torch.tensor(style), self.num_styles).float()
        if images is None:
            return model(size=(self.config.image_size,) * 2, batch_size=batch, noise_factor=factor, **source)
        return model(images, noise_factor=factor, **source)

    @torch.no_grad()
    def validate(self) -> tuple[dict[str, float], torch.Tensor] | None:
        """Losses on the fixed validation photos (texture mode: num_val samples) with the fixed
        validation noise, and the output they were computed on; None without validation photos."""
        if not self.texture_mode and (self.val_images is None or len(self.val_images) == 0):
            return None
        images = None if self.texture_mode else self.val_images.to(self.device)
        if self.config.teachers:
            return self._validate_styles(images)
        with self._evaluating() as model, self.autocast:
            output = self._generate(images, max(self.config.num_val, 1),
                                    noise_generator(self.config.seed, -1, self.device), model=model,
                                    style=self.fixed_style or 0)
            terms = self.criterion(output, images)
        return terms.as_floats(), output

    def _validate_styles(self, images: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
        """validate() of a distillation: the losses averaged over the styles (each with the fixed
        validation noise), and the first style's output."""
        totals: dict[str, float] = {}
        first: torch.Tensor | None = None
        with self._evaluating() as model, self.autocast:
            noise = model.make_noise(len(images), *model.padded_size(*images.shape[2:]),
                                     generator=noise_generator(self.config.seed, -1, self.device), device=self.device)
            for style in range(self.num_styles):
                output = self._generate(images, len(images), noise, model=model, style=style)
                first = output if first is None else first
                for name, value in self.criterion(output, images, noise=noise, style=style).as_floats().items():
                    totals[name] = totals.get(name, 0.0) + value / self.num_styles
        return totals, first

    @torch.no_grad()
    def samples(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """Labelled N,3,H,W batches on the CPU for display: the validation photos (not in texture
        mode), `output` (validate()'s, at the training noise factor), and the same photos and noise
        at each other factor of `sample_noise_factors`."""
        trained = self.config.noise_factor
        columns = {} if self.texture_mode else {"photo": self.val_images.cpu()}
        columns[f"noise {trained:g} (training)"] = output.float().clamp(0, 1).cpu()
        images = None if self.texture_mode else self.val_images.to(self.device)
        with self._evaluating() as model, self.autocast:  # as validate() made `output`: columns comparable
            for factor in dict.fromkeys(self.sample_noise_factors or ()):
                if factor != trained:
                    other = self._generate(images, len(output), noise_generator(self.config.seed, -1, self.device),
                                           factor, model=model, style=self.fixed_style or 0)
                    columns[f"noise {factor:g}"] = other.float().clamp(0, 1).cpu()
        return columns

    @contextmanager
    def _evaluating(self) -> Iterator[nn.Module]:
        """The plain generator in eval mode for the block, back in training mode after it (an error too)."""
        model = self._plain_model
        model.eval()
        try:
            yield model
        finally:
            model.train()

    @property
    def _plain_model(self) -> nn.Module:
        """The generator without its DDP (or compile) wrapper: validation and samples run on rank 0
        alone, and a forward through DDP can take part in collectives (it broadcasts buffers, for
        one) that the other ranks, not validating, would never join."""
        return unwrap(self.generator)

    def _memory_mb(self) -> float | None:
        """Peak CUDA memory allocated since the previous call, in MiB (None on the CPU)."""
        if self.device.type != "cuda":
            return None
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        torch.cuda.reset_peak_memory_stats(self.device)
        return peak

    def _reported(self, terms, skipped: list[str]) -> tuple[dict[str, float], list[str]]:
        """The step's losses as numbers, averaged over the global batch, and the files skipped by any
        process since the last report. Several processes: collectives (every rank calls this on the
        same steps), on reporting steps only, so training steps never wait on the host."""
        losses = terms.as_floats()
        if not self.dist.is_distributed:
            return losses, skipped
        *sums, count = self.dist.sum_floats([*losses.values(), len(skipped)], self.device)
        losses = {name: value / self.dist.world_size for name, value in zip(losses, sums)}
        return losses, (self.dist.gather_lists(skipped) if count else [])

    def fit(self, batches: Iterator[Batch], start_step: int = 0) -> dict[str, float]:
        """Train from `start_step` to last_step (num_iterations, or stop_at within its schedule); Ctrl-C
        saves a resumable checkpoint and re-raises.
        Several processes: only rank 0 validates and calls the callbacks (events and checkpoints)."""
        config, total, main = self.config, self.config.last_step, self.dist.is_main
        self.generator.train()
        losses: dict[str, float] = {}
        step, skipped, tick, images_seen = start_step, [], time.perf_counter(), 0
        try:
            while step < total:
                batch = next(batches)
                skipped.extend(batch.skipped)
                images = None if self.texture_mode else batch.images.to(self.device, non_blocking=True)
                with interrupts_held():  # the weights, Adam and the count move together (exact resume)
                    terms = self.step(step, images)
                    step += 1
                images_seen += config.batch_size
                is_val = bool(config.val_every and step % config.val_every == 0) or step == total
                if (step % config.log_every == 0 or step % config.viz_every == 0 or is_val
                        or step == start_step + 1):
                    losses, skipped = self._reported(terms, skipped)
                    if not math.isfinite(losses["total"]):  # the global mean: every rank stops here
                        raise TextureNetsError(f"the loss became {losses['total']} at step {step}: lower "
                                               f"--learning_rate or the loss weights")
                    if main:
                        now = time.perf_counter()
                        validation = self.validate() if is_val else None
                        event = StepEvent(step, total, losses, learning_rate_at(step - 1, config),
                                          images_seen / max(now - tick, 1e-9), validation and validation[0],
                                          tuple(skipped), self._memory_mb(),
                                          self.samples(validation[1]) if validation and self.sample_noise_factors
                                          else None)
                    tick, images_seen, skipped = time.perf_counter(), 0, []
                    if main:
                        self.callbacks.on_event(event)
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total:
                    self._check_finite(step)  # on every rank (they hold the same weights): all stop together
                    if main:
                        self.callbacks.on_checkpoint(step, "periodic", self.resume_state(), losses)
        except KeyboardInterrupt:
            if main:  # every rank holds the same weights and optimizer state: rank 0's are the run's
                self._check_finite(step)
                self.callbacks.on_checkpoint(step, "interrupt", self.resume_state(), losses)
            raise
        self._check_finite(step)
        if main:
            self.callbacks.on_checkpoint(step, "final", self.resume_state(), losses)
        return losses

    def _check_finite(self, step: int) -> None:
        """Refuse to save weights that are no longer numbers. The loss reaches the host on reporting steps
        only (no sync on the others), so a NaN between them would otherwise be saved over the run's last
        good checkpoints, which loading then refuses: the run would be lost."""
        tensors = [t for t in unwrap(self.generator).state_dict().values() if t.is_floating_point()]
        if not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            raise TextureNetsError(f"the weights became NaN or infinite by step {step}: not saved (the last "
                                   f"checkpoint is kept); lower --learning_rate or the loss weights")
