"""Assemble a training run from a `TrainConfig`: device, style targets, data, generator, loss,
trainer, checkpoint files. This is the only module that knows all the others; each of them knows
only its own concern.
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader

from texture_nets.core.checkpoint import (
    generator_from_checkpoint,
    load_checkpoint,
    make_checkpoint,
    migrate,
    save_checkpoint,
    total_steps,
)
from texture_nets.core.device import describe_device, resolve_device
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output
from texture_nets.core.images import find_images, load_style_image
from texture_nets.core.losses import PerceptualLoss
from texture_nets.core.networks import build_generator
from texture_nets.core.precision import autocast_dtype, channels_last_for
from texture_nets.core.pyramid import GeneratorConfig, TextureNetwork
from texture_nets.core.settings import config_to_toml
from texture_nets.training.config import TrainConfig
from texture_nets.training.dashboard import History, make_dashboard
from texture_nets.training.data import (
    EPOCH_ORDER,
    Batch,
    EpochSampler,
    PhotoDataset,
    ShardedSampler,
    collate,
    load_validation_batch,
    select_with_annotations,
    split_validation,
)
from texture_nets.training.distill import DistillationLoss, load_teachers
from texture_nets.training.distributed import DistributedContext
from texture_nets.training.loop import Callbacks, StepEvent, Trainer
from texture_nets.training.run_files import RECORD_MARK


def build_batches(config: TrainConfig, device: torch.device, start_step: int, dist: DistributedContext | None = None,
                  data_order: int = EPOCH_ORDER) -> tuple[Iterator[Batch], torch.Tensor | None, dict]:
    """Endless training batches from `start_step` on (photos in `data_order`, see data.EPOCH_ORDER), the
    validation photos, and a data summary.
    Texture mode needs no photos: its batches are empty and it has no validation photos.
    Several processes (`dist`): this process's slice of every global batch."""
    dist = dist or DistributedContext()
    if config.mode == "texture":
        return itertools.repeat(Batch(torch.empty(0), ())), None, {"mode": "texture"}
    files = find_images(config.data_dir)
    if config.annotations:
        files = select_with_annotations(files, config.annotations, config.categories)
    if config.val_dir:
        train_files, val_files = files, find_images(config.val_dir)[:config.num_val]
    else:
        train_files, val_files = split_validation(files, config.num_val, config.seed)
    val_images, val_skipped = load_validation_batch(val_files, config.image_size, config.resize_size)
    dataset = PhotoDataset(train_files, config.image_size, config.cache_dir or None, config.resize_size)
    sampler = ShardedSampler(EpochSampler(len(dataset), config.seed, start_step * config.batch_size, data_order),
                             config.batch_size, dist.rank, dist.world_size)
    loader = DataLoader(dataset, batch_size=dist.local_batch(config.batch_size), sampler=sampler,
                        collate_fn=collate, num_workers=config.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=config.num_workers > 0, drop_last=True,
                        prefetch_factor=4 if config.num_workers > 0 else None)
    summary = {"train_images": len(train_files), "val_images": len(val_images), "val_skipped": val_skipped}
    return iter(loader), val_images, summary


def build_criterion(config: TrainConfig, device: torch.device) -> tuple[PerceptualLoss, dict]:
    """The perceptual loss with its style targets computed once (or, distilling, the teachers), and the
    style provenance."""
    if config.teachers:
        teachers, info = load_teachers(config.teachers, config.num_scales, config.noise_channels)
        return DistillationLoss(teachers).to(device), {"name": config.style_name, "images": info}
    criterion = PerceptualLoss.from_config(config).to(device)
    styles = [load_style_image(path, config.style_size, config.style_scale) for path in config.texture]
    criterion.set_style([image.to(device) for image, _ in styles], config.style_blend or None)
    return criterion, {"name": config.style_name, "images": [info for _, info in styles], "blend": criterion.blend}


def make_generator(config: TrainConfig) -> torch.nn.Module:
    """A freshly initialised generator of the architecture and size the training config asks for.
    The residual generator keeps Johnson's layout; of the noise settings it takes only the factor
    (it has no noise channels)."""
    if config.arch == "residual":
        return build_generator("residual", {"noise_factor": config.noise_factor})
    return TextureNetwork(GeneratorConfig(num_scales=config.num_scales, channels=config.channels,
                                          max_channels=config.max_channels, noise_channels=config.noise_channels,
                                          noise_factor=config.noise_factor, texture_only=config.mode == "texture",
                                          style_names=config.style_names))


def initial_generator(config: TrainConfig, log: Callable[[str], None] = print) -> tuple[torch.nn.Module, int]:
    """A fresh generator, or (config.init_from) one holding a checkpoint's weights, which must be of
    the architecture and size the config asks for: fine-tuning changes the losses, not the network.
    Also the training steps already behind those weights (0 for a fresh one; see `total_steps`)."""
    if config.new_style:
        return with_new_style(config, log)
    fresh = make_generator(config)
    if not config.init_from:
        return fresh, 0
    checkpoint = load_checkpoint(config.init_from)
    source = generator_from_checkpoint(checkpoint, config.init_from)
    wanted, found = asdict(fresh.config), asdict(source.config)
    differ = sorted(k for k in wanted if k != "noise_factor" and wanted[k] != found.get(k))  # the factor is a setting
    if fresh.arch != source.arch or differ:
        detail = ", ".join(f"{k}={found.get(k)!r} (asked {wanted[k]!r})" for k in differ)
        raise TextureNetsError(f"--init_from {config.init_from}: its generator is {source.arch}"
                               f"{' with ' + detail if detail else ''}; set the same generator options to fine-tune it")
    fresh.load_state_dict(source.state_dict())
    before = total_steps(checkpoint)
    log(f"starting from the weights of {config.init_from} ({before:,} steps behind them; "
        f"step 0 of this run, fresh optimizer)")
    return fresh, before


def with_new_style(config: TrainConfig, log: Callable[[str], None] = print) -> tuple[torch.nn.Module, int]:
    """The network of several styles of `config.init_from` with one more, `config.new_style`, whose
    scale and shift start at the mean of the others' (Dumoulin et al. learn a new style the same way:
    its normalisation parameters alone); and the steps behind its weights."""
    checkpoint = load_checkpoint(config.init_from)
    source = generator_from_checkpoint(checkpoint, config.init_from)
    names = source.style_names
    if len(names) < 2:
        raise TextureNetsError(f"--new_style adds a style to a network of several (trained with --teachers): "
                               f"{config.init_from} holds one")
    if config.new_style in names:
        raise TextureNetsError(f"{config.init_from} already holds a style named {config.new_style!r}")
    grown = TextureNetwork(replace(source.config, style_names=(*names, config.new_style)))
    state = source.state_dict()
    for key, value in state.items():
        if key.endswith(("style_weight", "style_bias")):
            state[key] = torch.cat([value, value.mean(dim=0, keepdim=True)])
    grown.load_state_dict(state)
    log(f"adding the style {config.new_style!r} to the {len(names)} of {config.init_from}: its scale and shift "
        f"train, the shared weights stay as they are")
    return grown, total_steps(checkpoint)


def trainable(generator: torch.nn.Module, config: TrainConfig) -> list[torch.nn.Parameter]:
    """The parameters a run trains: all of them, or, adding a style (--new_style), the styles' scales
    and shifts alone (the new style's rows are the only ones its one-hot blend gives a gradient)."""
    if config.new_style:
        for name, parameter in generator.named_parameters():
            parameter.requires_grad_(name.endswith(("style_weight", "style_bias")))
    return [parameter for parameter in generator.parameters() if parameter.requires_grad]


def steps_before_resumed(resume: dict, config: TrainConfig) -> int:
    """The `steps_before` of a resumed run: as its checkpoint says, or, for a file written before the
    field existed, counted again from its init_from checkpoint where that is still there."""
    if "steps_before" in resume:
        return resume["steps_before"]
    if config.init_from and Path(config.init_from).is_file():
        return total_steps(load_checkpoint(config.init_from))
    return 0


def place_for_precision(generator: torch.nn.Module, criterion: PerceptualLoss, config: TrainConfig,
                        device: torch.device) -> torch.dtype | None:
    """Put VGG (and the generator on CUDA) in channels_last where the precision config.precision
    resolves to on `device` gains from it; return that autocast dtype (None: fp32)."""
    dtype = autocast_dtype(config.precision, device)
    vgg_nhwc, generator_nhwc = channels_last_for(device, dtype, config.channels_last)
    if vgg_nhwc and hasattr(criterion, "vgg"):  # a distillation runs no VGG
        criterion.vgg.to(memory_format=torch.channels_last)
    if generator_nhwc:
        generator.to(memory_format=torch.channels_last)
    return dtype


def compiled(generator: torch.nn.Module, criterion: PerceptualLoss, config: TrainConfig) -> torch.nn.Module:
    """The generator (returned) and the criterion's VGG (in place) under torch.compile where --compile
    asks for it; checkpoints unwrap the generator, validation runs it uncompiled."""
    if not config.compile:
        return generator
    if hasattr(criterion, "vgg"):  # a distillation runs no VGG
        criterion.vgg = torch.compile(criterion.vgg)
    return torch.compile(generator)


@dataclass
class RunResult:
    """Where a finished run left its files, and how it went."""

    checkpoint: Path
    resume_checkpoint: Path
    step: int
    losses: dict[str, float]
    skipped: list[str] = field(default_factory=list)
    history: History | None = None


def resume_path(config: TrainConfig) -> Path:
    return Path(config.checkpoint_dir) / f"{config.style_name}.resume.pt"


def final_path(config: TrainConfig) -> Path:
    return Path(config.checkpoint_dir) / f"{config.style_name}.pt"


def record_path(config: TrainConfig) -> Path:
    """The run's resolved settings, as a recipe `--config` reads back."""
    return Path(config.checkpoint_dir) / f"{config.style_name}.toml"


def run_info(config: TrainConfig, style_info: dict, device: torch.device, summary: dict, run_id: str,
             start_step: int, resumed: bool, skipped: int) -> dict[str, object]:
    """What the dashboard's run pane lists about a run."""
    return {"style": f"{config.style_name} ({', '.join(i['name'] for i in style_info['images'])})", "run": run_id,
            "device": describe_device(device), "training photos": summary.get("train_images", "none (texture mode)"),
            "validation photos": summary.get("val_images", 0), "skipped files": skipped,
            "steps": f"{start_step} → {config.last_step}" + (f" of {config.num_iterations}" if config.stop_at else "")
                     + (" (resumed)" if resumed else "")}


def run_training(config: TrainConfig, *, resume: dict | None = None,
                 on_event: Callable[[StepEvent], None] = lambda e: None,
                 log: Callable[[str], None] = print, dist: DistributedContext | None = None,
                 samples: bool = False) -> RunResult:
    """Train one style as `config` says, continuing from a resume checkpoint dict if given.

    samples: validation events carry stylized validation photos (`StepEvent.samples`) even without
    the dashboard, for callers that show them (the web app).

    dist: this process's place in a multi-process run (torchrun); default: one process. Then every
    process calls this with the same config and resume checkpoint; each joins the process group
    (unless its caller has), trains on its slice of every global batch of config.batch_size, and
    leaves the group at the end. Only rank 0 logs, calls `on_event`, drives the dashboard and writes
    files; the losses it reports are means over the global batch.
    """
    dist = dist or DistributedContext()
    config.validate()
    if resume is not None:
        resume = migrate(resume, "resume checkpoint")  # a dict from an older file continues as it began
    dist.local_batch(config.batch_size)  # an indivisible batch is refused before anything starts
    if not dist.is_main:
        log, on_event = _quiet, _quiet
    device = dist.device(resolve_device(config.device, log))
    with dist.process_group(device):
        return _run_training(config, resume, on_event, log, dist, device, samples)


def _quiet(*_) -> None:
    pass


def _run_training(config: TrainConfig, resume: dict | None, on_event: Callable[[StepEvent], None],
                  log: Callable[[str], None], dist: DistributedContext, device: torch.device,
                  samples: bool = False) -> RunResult:
    """run_training's work, on `device`, within the process group if there are several processes."""
    saved = resume["resume"] if resume is not None else {}
    run_id = saved.get("run_id") or time.strftime("%Y%m%d-%H%M%S")
    history = History(saved.get("history"))
    dashboard = make_dashboard(config.viz and dist.is_main, history, server=config.viz_server, port=config.viz_port,
                               env=config.viz_env or f"{config.style_name}_{run_id}", log=log)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed)
    if resume is None:
        (generator, steps_before), start_step = initial_generator(config, log), 0
    else:
        generator, start_step = generator_from_checkpoint(resume, "resume checkpoint"), resume["step"]
        steps_before = steps_before_resumed(resume, config)
    generator.to(device)
    criterion, style_info = build_criterion(config, device)
    dtype = place_for_precision(generator, criterion, config, device)  # before DDP wraps it
    data_order = EPOCH_ORDER if resume is None else resume["data_order"]
    batches, val_images, summary = build_batches(config, device, start_step, dist, data_order)
    optimizer = torch.optim.Adam(trainable(generator, config), lr=config.learning_rate)
    skipped_files: list[str] = list(summary.get("val_skipped", []))
    if dist.is_main:  # rank 0 alone warns and writes files
        for path in skipped_files:
            warnings.warn(f"skipping unreadable image {path}", stacklevel=1)

    def save(step: int, reason: str, state: dict, losses: dict) -> None:
        meta = dict(style=style_info, train=config.to_dict(), step=step, losses=losses, steps_before=steps_before,
                    data_order=data_order)
        state = {**state, "run_id": run_id, "history": history.state_dict()}
        save_checkpoint(make_checkpoint(generator, resume_state=state, **meta), resume_path(config))
        if reason != "interrupt":  # the latest weights of a run that goes on, always usable (not a cancelled one's)
            save_checkpoint(make_checkpoint(generator, **meta), final_path(config))
        if reason == "interrupt":
            log(f"interrupted at step {step}: saved {resume_path(config)} (continue with --resume)")

    def report(event: StepEvent) -> None:
        new = [path for path in dict.fromkeys(event.skipped) if path not in skipped_files]
        for path in new:
            skipped_files.append(path)
            warnings.warn(f"skipping unreadable image {path}", stacklevel=1)
        if event.step % config.viz_every == 0 or event.val_losses is not None or event.step == event.total_steps:
            history.record(event)
        dashboard.update(event, {"skipped files": len(skipped_files)} if new else None)
        on_event(event)

    trainer = Trainer(compiled(dist.wrap(generator), criterion, config), criterion, optimizer, config, device, Callbacks(report, save),
                      val_images=val_images if config.val_every else None,
                      sample_noise_factors=((config.noise_factor, *config.viz_noise_factors) if config.viz
                                            else (config.noise_factor,) if samples else None),
                      dist=dist)
    if resume is not None:
        trainer.load_resume_state(resume["resume"])
    if dist.is_main:  # once everything is in place: a run refused above writes nothing
        with atomic_output(record_path(config)) as tmp:
            tmp.write_text(f"{RECORD_MARK} {config.style_name!r} (written by train.py; --config reads it back)\n"
                           + config_to_toml(config), encoding="utf-8")
    info = run_info(config, style_info, device, summary, run_id, start_step, resume is not None, len(skipped_files))
    dashboard.start({**info, "precision": f"{config.precision} → {str(dtype or torch.float32).replace('torch.', '')}"},
                    config_to_toml(config))
    if config.viz:
        log(f"dashboard: {dashboard.url}")
    finished = False
    try:
        losses = trainer.fit(batches, start_step)
        finished = True
    finally:
        dashboard.close(timeout=10.0 if finished else 3.0)  # Ctrl-C: do not keep the user waiting
    if skipped_files:
        log(f"{len(skipped_files)} unreadable image(s) were skipped")
    return RunResult(final_path(config), resume_path(config), config.last_step, losses, skipped_files, history)


def check_resume_state(state: object, source: str) -> None:
    """Refuse, in one line, a resume state of the wrong shape (a damaged or foreign file), which would
    otherwise fail deep inside Adam or the dashboard's history with a traceback."""
    def damaged(what: str) -> TextureNetsError:
        return TextureNetsError(f"{source}: {what}: a damaged resume checkpoint (continue from the plain "
                                f"<name>.pt beside it, or start again with --overwrite)")
    if not isinstance(state, dict):
        raise damaged("its resume state is not a dict")
    optimizer = state.get("optimizer")
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list)):
        raise damaged("its optimizer state is missing or malformed")
    history = state.get("history") or {}
    if not (isinstance(history, dict) and all(isinstance(points, list) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in points) for points in history.values())):
        raise damaged("its loss history is malformed")
    if not isinstance(state.get("run_id", ""), str):
        raise damaged("its run id is not text")


def load_resume(path: str | Path, log: Callable[[str], None] | None = None) -> dict:
    """A checkpoint to continue a run from. A resumable one (with optimizer state) continues exactly.
    A plain one (`<name>.pt`, which a run also writes at every periodic checkpoint) continues from its
    weights at its step with a fresh optimizer, saying so through `log`; without `log`, refused.
    So a run whose resume file is gone (another machine) still continues its schedule."""
    checkpoint = load_checkpoint(path)
    if "resume" in checkpoint:
        check_resume_state(checkpoint["resume"], str(path))
        return checkpoint
    if log is None:
        raise TextureNetsError(f"{path}: holds no optimizer state, so training cannot resume from it exactly "
                               f"(resume from the .resume.pt file next to it)")
    log(f"{path} holds no optimizer state: continuing from its weights at step {checkpoint['step']} with a fresh "
        f"optimizer (not bit-exact with an uninterrupted run)")
    return {**checkpoint, "resume": {}}
