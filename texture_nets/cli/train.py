"""`train.py` / `texture-nets train`: flags generated from `TrainConfig`'s fields (the dataclass is the
one source of truth for names, defaults and help), resuming, and a progress bar."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from texture_nets.cli.common import add_config_arguments, fail, one_line_warnings, stop_signals_interrupt
from texture_nets.core.checkpoint import total_steps
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import file_sha256
from texture_nets.core.memory import check_fits, device_memory, is_out_of_memory, training_bytes
from texture_nets.core.precision import autocast_dtype
from texture_nets.core.settings import check_keys, config_to_toml
from texture_nets.core.vgg import default_vgg_weights
from texture_nets.training.config import TrainConfig, make_config, trained_settings, upgrade_legacy
from texture_nets.training.distributed import DistributedContext
from texture_nets.training.recipes import load_config_file, phase_runs
from texture_nets.training.run import final_path, load_resume, record_path, resume_path, run_training
from texture_nets.training.run_files import check_overwrite, check_progress_kept, run_lock

# Settings that may differ when resuming: where things are and how the run is watched, not what it learns.
RESUMABLE_CHANGES = {"data_dir", "annotations", "texture", "vgg_weights", "num_iterations", "stop_at", "name",
                     "checkpoint_dir", "cache_dir", "compile", "precision", "channels_last", "init_from",
                     "checkpoint_every", "val_every", "log_every", "num_workers", "device", "viz", "viz_server",
                     "viz_port", "viz_env", "viz_every", "viz_noise_factors"}


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py", allow_abbrev=False,
        description="Train a texture network (Ulyanov et al.) for one style on a folder of photos.")
    parser.add_argument("--config", help="a TOML config file, or the name of a preset in configs/ "
                                         "(its values sit between the defaults and these flags)")
    parser.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                        help="continue an interrupted run from CHECKPOINT (default: <checkpoint_dir>/<name>.resume.pt)")
    parser.add_argument("--cuda", action="store_true", help="train on the GPU (same as --device cuda; "
                                                            "falls back to the CPU with a message)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start from step 0 even though <checkpoint_dir>/<name>.pt or <name>.resume.pt exists "
                             "(replacing them); without it such a run is refused")
    parser.add_argument("--dry_run", action="store_true", help="print the resolved config and exit")
    add_config_arguments(parser)
    return parser


def resolve_train_config(args: argparse.Namespace, environ=os.environ) -> tuple[TrainConfig, dict | None]:
    """Defaults < --config < flags (< resume checkpoint's own settings); VGG weights from the env var last.
    For a recipe trained in phases: its own (last) run's settings; train_main runs the phases."""
    values = load_config_file(args.config) if args.config is not None else {}
    values.pop("phases", None)
    config, resume, _ = _resolve_train(args, environ, values)
    return config, resume


def flag_values(args: argparse.Namespace) -> dict:
    """The config values given as flags (flags left out are absent)."""
    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "resume", "cuda", "dry_run", "overwrite")}
    if args.cuda:
        overrides["device"] = "cuda"
    return overrides


def check_same_style_images(texture: list[str], resume: dict, path: Path) -> None:
    """Refuse to continue a run against style images other than those it trained on: --texture may
    name them where they are now (moved, another machine), but their bytes must be the ones the
    checkpoint recorded (sha256), or the run would silently change its target halfway."""
    recorded = [image.get("sha256") for image in resume.get("style", {}).get("images", [])]
    for image, sha in zip(texture, recorded):
        if sha and Path(image).is_file() and file_sha256(image) != sha:
            raise TextureNetsError(f"{image} is not the style image {path} was trained on (its bytes differ): "
                                   f"give that image, or train a new run under another --name")


def _resolve_train(args: argparse.Namespace, environ, file_values: dict, log=print) -> tuple[TrainConfig,
                                                                                           dict | None, Path | None]:
    """resolve_train_config for the config file's `file_values`, and the path of the checkpoint
    resumed from (None: a new run); `log` hears how it resumes."""
    overrides = flag_values(args)
    if args.resume == "":
        raise TextureNetsError("--resume is empty: give a checkpoint's path, or --resume alone for "
                               "<checkpoint_dir>/<name>.resume.pt")
    resume, path = None, None
    if args.resume:
        requested = {**file_values, **overrides}
        if args.resume == "auto":
            if not requested.get("texture") and not requested.get("name"):
                raise TextureNetsError("--resume without a path needs --name or --texture to find "
                                       "<checkpoint_dir>/<name>.resume.pt (or pass the checkpoint's path)")
            path = resume_path(TrainConfig(**{k: v for k, v in requested.items() if k in ("texture", "name",
                                                                                       "checkpoint_dir")}))
        else:
            path = Path(args.resume)
        resume = load_resume(path, log=log)
        if "train" not in resume:
            raise TextureNetsError(f"{path}: holds no training settings to continue from (a damaged file)")
        saved = upgrade_legacy(resume["train"])
        check_keys(saved, TrainConfig, where=f"{path.name}'s")
        # a setting newer than the checkpoint was, in effect, at its default there
        trained_with = trained_settings(saved)
        changed = sorted(k for k, v in requested.items() if k not in RESUMABLE_CHANGES and trained_with.get(k) != v)
        if changed:
            raise TextureNetsError(f"cannot change {', '.join(changed)} when resuming from {path} (it was "
                                   f"trained with {', '.join(f'{k}={trained_with.get(k)!r}' for k in changed)})")
        file_values, overrides = saved, {k: v for k, v in requested.items() if k in RESUMABLE_CHANGES}
        check_same_style_images(overrides.get("texture", saved.get("texture", [])), resume, path)
    merged = {**file_values, **overrides}
    merged["vgg_weights"] = default_vgg_weights(merged.get("vgg_weights"), environ)
    return make_config(merged), resume, path


class Progress:
    """A tqdm bar fed by the trainer's step events, opened at the first event (so an early error
    prints alone), with validation results written above it."""

    def __init__(self, total: int, initial: int, name: str):
        self.total, self.initial, self.name, self.bar = total, initial, name, None

    def update(self, event) -> None:
        if self.bar is None:
            self.bar = tqdm(total=self.total, initial=self.initial, unit="step", dynamic_ncols=True, desc=self.name)
        self.bar.update(event.step - self.bar.n)
        self.bar.set_postfix(loss=f"{event.losses['total']:.4g}", content=f"{event.losses['content']:.3g}",
                             style=f"{event.losses['style']:.3g}", img_s=f"{event.images_per_sec:.1f}")
        if event.val_losses:
            self.write(f"step {event.step}: validation total {event.val_losses['total']:.4g} "
                       f"content {event.val_losses['content']:.4g} style {event.val_losses['style']:.4g}")

    def write(self, line: str) -> None:
        if self.bar is not None:
            tqdm.write(line)
        else:
            print(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train_main(argv: list[str] | None = None) -> int:
    """Entry point of train.py / texture-nets-train; returns the exit status."""
    args = train_parser().parse_args(argv)
    with one_line_warnings(), stop_signals_interrupt():  # `kill` saves a resumable checkpoint, as Ctrl-C does
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    dist = DistributedContext()
    try:
        dist = DistributedContext.from_env(os.environ)  # torchrun's RANK / WORLD_SIZE / LOCAL_RANK
        values = load_config_file(args.config) if args.config is not None else {}
        if "phases" in values:
            return _train_phases(args, values, dist)
        config, resume, resumed_from = _resolve_train(args, os.environ, values)
        return _train_one(config, resume, resumed_from, args, dist)
    except TextureNetsError as exc:
        return fail("train.py", exc, dist, shared=True)
    except OSError as exc:  # e.g. an unwritable --checkpoint_dir
        return fail("train.py", exc, dist)
    except torch.cuda.OutOfMemoryError:
        return fail("train.py", "out of GPU memory: lower --batch_size or --image_size", dist)
    except (MemoryError, RuntimeError) as exc:  # the CPU's allocator failing
        if not isinstance(exc, MemoryError) and not is_out_of_memory(exc):
            raise
        return fail("train.py", "out of memory: lower --batch_size, --image_size or --photo_size", dist)
    except torch.distributed.DistError as exc:  # e.g. no rendezvous, or a peer stopped answering
        detail = (str(exc).strip().splitlines() or [""])[0]
        return fail("train.py", f"lost contact with the other processes ({type(exc).__name__}: {detail})", dist)
    except KeyboardInterrupt:
        if dist.is_main:
            print("train.py: interrupted", file=sys.stderr)
        return 130


def _train_one(config: TrainConfig, resume: dict | None, resumed_from: Path | None, args: argparse.Namespace,
               dist) -> int:
    """One run (or, with --dry_run, its resolved config); the exit status."""
    if args.dry_run:
        if dist.is_main:
            print(config_to_toml(config), end="")
        return 0
    if resume is not None and resume["step"] >= config.last_step:  # its files already hold the whole run
        if dist.is_main:
            print(f"{config.style_name}: already trained to step {resume['step']:,} ({resumed_from}): nothing to do "
                  f"(a larger --num_iterations trains on)")
        return 0
    check_training_memory(config, dist.local_batch(config.batch_size))
    with ExitStack() as stack:
        if dist.is_main:  # the one process that writes the run's files claims them
            stack.enter_context(claimed_run(config, resume, resumed_from, args.overwrite))
        return _run_train(config, resume, dist)


@dataclass
class PhasePlan:
    """One run of a phased recipe, resolved before any phase trains."""
    label: str                   # "phase 2 of 3 (turner_phase2)"
    config: TrainConfig
    resume: dict | None          # its own saved state, when an earlier command left one
    resumed_from: Path | None    # the file that state came from
    notes: list[str]             # what resolving it had to say, printed when it trains

    @property
    def done(self) -> bool:
        """Its files already hold the whole run."""
        return self.resume is not None and self.resume["step"] >= self.config.last_step


def _train_phases(args: argparse.Namespace, values: dict, dist) -> int:
    """A recipe trained in phases (phases.py): each run in turn, each continuing from its own files
    where an earlier command left them (a finished phase is skipped), or from step 0 with --overwrite."""
    flags = flag_values(args)
    if args.resume or "init_from" in flags:  # each phase starts from the one before and continues by itself
        flag = "--resume" if args.resume else "--init_from"
        raise TextureNetsError(f"{flag} does not apply to a recipe trained in phases ({args.config}): "
                               f"run the same command again to continue it, or add --overwrite to start over")
    plans = _phase_plans(args, values, flags)
    _check_phase_chain(plans)
    for plan in plans:
        if plan.done:
            if dist.is_main:
                print(f"{plan.label}: done (step {plan.resume['step']}, {plan.resumed_from})")
            continue
        if dist.is_main:
            continuing = f": continuing from {plan.resumed_from}" if plan.resumed_from else ""
            print(("# " if args.dry_run else "") + plan.label + continuing)
            for note in plan.notes:
                print(note)
        status = _train_one(plan.config, plan.resume, plan.resumed_from, args, dist)
        if status:
            return status
    return 0


def _phase_plans(args: argparse.Namespace, values: dict, flags: dict) -> list[PhasePlan]:
    """Every run of the phased recipe `values` resolved (flags on top of each), each set to continue
    from its own files in the checkpoint folder unless --overwrite."""
    top = {**values, **flags}
    base = TrainConfig(**{k: top[k] for k in ("name", "texture", "checkpoint_dir") if k in top})
    runs = phase_runs({k: v for k, v in values.items() if k != "phases"}, values["phases"], base.style_name,
                      Path(base.checkpoint_dir))
    plans = []
    for number, run in enumerate(runs, 1):
        files = TrainConfig(name=run["name"], checkpoint_dir=base.checkpoint_dir)
        found = [path for path in (resume_path(files), final_path(files)) if path.is_file()]
        run_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "name"})
        run_args.resume = str(found[0]) if found and not args.overwrite else None
        notes: list[str] = []
        config, resume, resumed_from = _resolve_train(run_args, os.environ, run, log=notes.append)
        plans.append(PhasePlan(f"phase {number} of {len(runs)} ({run['name']})", config, resume, resumed_from,
                               notes))
    return plans


def _check_phase_chain(plans: list[PhasePlan]) -> None:
    """Refuse, before any work, to continue a later phase from its files once an earlier phase will
    train anew: they grew from the weights that phase is about to replace."""
    first = next((index for index, plan in enumerate(plans) if not plan.done), len(plans))
    for later in plans[first + 1:]:
        if later.resumed_from is not None:
            folder = later.config.checkpoint_dir
            raise TextureNetsError(f"{later.resumed_from} was trained from the weights {plans[first].label} will "
                                   f"replace: delete {later.config.style_name}.* (and later phases' files) in "
                                   f"{folder} to train it again, or add --overwrite to start over")


def _run_train(config: TrainConfig, resume: dict | None, dist) -> int:
    """run_training with a progress bar; the exit status."""
    progress = Progress(config.last_step, resume["step"] if resume else 0, config.style_name)
    try:  # other ranks than 0 get no events: their bar never opens
        result = run_training(config, resume=resume, on_event=progress.update, log=progress.write, dist=dist)
    finally:
        progress.close()
    if dist.is_main:
        print(f"saved {result.checkpoint} (resumable: {result.resume_checkpoint})")
    return 0


@contextmanager
def claimed_run(config: TrainConfig, resume: dict | None, resumed_from: Path | None, overwrite: bool):
    """Hold the run's name (`<name>.lock`) while the block runs, after refusing to start over
    another run's model, progress or settings, or to continue from behind its own progress (run_files.py)."""
    with run_lock(config.checkpoint_dir, config.style_name):
        check_overwrite([final_path(config), resume_path(config), record_path(config)], resumed_from, overwrite)
        if resume is not None:
            check_progress_kept(resume_path(config), total_steps(resume), resumed_from, overwrite)
        yield


def check_training_memory(config: TrainConfig, local_batch: int) -> None:
    """Refuse a batch that cannot fit in the memory of the device the run will use (see memory.py)."""
    cuda = config.device in ("auto", "cuda") and torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    half = autocast_dtype(config.precision, device) is not None
    need = training_bytes(config.image_size, local_batch, config.resize_size, config.num_val, config.num_workers, half)
    check_fits(need, device_memory(device), f"training on batches of {local_batch} crops of {config.image_size}x"
               f"{config.image_size} pixels (photos resized to {config.resize_size})",
               "lower --batch_size, --image_size or --photo_size")
