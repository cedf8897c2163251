"""`train.py` / `texture-nets train`: flags generated from `TrainConfig`'s fields (the dataclass is the
one source of truth for names, defaults and help), resuming, and a progress bar."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import torch
from tqdm import tqdm

from texture_nets.cli.common import fail, one_line_warnings, stop_signals_interrupt
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.memory import allocation_failures
from texture_nets.core.settings import add_config_arguments, config_to_toml
from texture_nets.training.config import TrainConfig
from texture_nets.training.distributed import DistributedContext
from texture_nets.training.launch import check_training_memory, claimed_run, plan_phases, resolve_run
from texture_nets.training.recipes import load_config_file
from texture_nets.training.run import run_training


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
    add_config_arguments(parser, TrainConfig)
    return parser


def resolve_train_config(args: argparse.Namespace, environ=os.environ) -> tuple[TrainConfig, dict | None]:
    """Defaults < --config < flags (< resume checkpoint's own settings); VGG weights from the env var last.
    For a recipe trained in phases: its own (last) run's settings; train_main runs the phases."""
    values = load_config_file(args.config) if args.config is not None else {}
    values.pop("phases", None)
    config, resume, _ = resolve_run(values, flag_values(args), args.resume, environ)
    return config, resume


def flag_values(args: argparse.Namespace) -> dict:
    """The config values given as flags (flags left out are absent)."""
    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "resume", "cuda", "dry_run", "overwrite")}
    if args.cuda:
        overrides["device"] = "cuda"
    return overrides


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
        with allocation_failures():
            if "phases" in values:
                return _train_phases(args, values, dist)
            config, resume, resumed_from = resolve_run(values, flag_values(args), args.resume, os.environ)
            return _train_one(config, resume, resumed_from, args, dist)
    except TextureNetsError as exc:
        return fail("train.py", exc, dist, shared=True)
    except OSError as exc:  # e.g. an unwritable --checkpoint_dir
        return fail("train.py", exc, dist)
    except MemoryError as exc:  # OutOfMemory from PyTorch, or Python's own
        if getattr(exc, "on_gpu", False):
            return fail("train.py", "out of GPU memory: lower --batch_size or --image_size", dist)
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


def _train_phases(args: argparse.Namespace, values: dict, dist) -> int:
    """A recipe trained in phases (phases.py): each run in turn, each continuing from its own files
    where an earlier command left them (a finished phase is skipped), or from step 0 with --overwrite."""
    flags = flag_values(args)
    if args.resume or "init_from" in flags:  # each phase starts from the one before and continues by itself
        flag = "--resume" if args.resume else "--init_from"
        raise TextureNetsError(f"{flag} does not apply to a recipe trained in phases ({args.config}): "
                               f"run the same command again to continue it, or add --overwrite to start over")
    plans = plan_phases(values, flags, args.overwrite, os.environ)
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
