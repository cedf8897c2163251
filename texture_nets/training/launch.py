"""A run as a user asks for it, for every caller (train.py, the web app's job): settings resolved
(defaults < recipe < flags < what a resumed checkpoint was trained with), the run's name claimed
(`<name>.lock`, after refusing to overwrite another run's files or go back behind its progress),
and a recipe trained in phases planned run by run. `run.py` then trains one resolved run."""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from texture_nets.core.checkpoint import total_steps
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import file_sha256
from texture_nets.core.memory import check_fits, device_memory, training_bytes
from texture_nets.core.precision import autocast_dtype
from texture_nets.core.settings import check_keys
from texture_nets.core.vgg import default_vgg_weights
from texture_nets.training.config import RESUMABLE, TrainConfig, make_config, trained_settings
from texture_nets.training.recipes import phase_runs
from texture_nets.training.run import final_path, load_resume, record_path, resume_path
from texture_nets.training.run_files import check_overwrite, check_progress_kept, run_lock


def check_same_style_images(texture: list[str], resume: dict, path: Path) -> None:
    """Refuse to continue a run against style images other than those it trained on: --texture may
    name them where they are now (moved, another machine), but their bytes must be the ones the
    checkpoint recorded (sha256), or the run would silently change its target halfway."""
    recorded = [image.get("sha256") for image in resume.get("style", {}).get("images", [])]
    for image, sha in zip(texture, recorded):
        if sha and Path(image).is_file() and file_sha256(image) != sha:
            raise TextureNetsError(f"{image} is not the style image {path} was trained on (its bytes differ): "
                                   f"give that image, or train a new run under another --name")


def resolve_run(file_values: dict, overrides: dict, resume: str | None = None, environ=os.environ,
                log=print) -> tuple[TrainConfig, dict | None, Path | None]:
    """The config of a run (defaults < `file_values` < `overrides`; VGG weights from the environment
    last), the checkpoint dict it continues from and that file's path (None, None: a new run).

    resume: None (a new run), "auto" (<checkpoint_dir>/<name>.resume.pt) or a checkpoint's path.
    Resuming, the checkpoint's own settings replace the file's, and only `resumable` settings may
    be changed by `overrides`; `log` hears how it resumes."""
    if resume == "":
        raise TextureNetsError("--resume is empty: give a checkpoint's path, or --resume alone for "
                               "<checkpoint_dir>/<name>.resume.pt")
    checkpoint, path = None, None
    if resume:
        requested = {**file_values, **overrides}
        if resume == "auto":
            if not requested.get("texture") and not requested.get("name"):
                raise TextureNetsError("--resume without a path needs --name or --texture to find "
                                       "<checkpoint_dir>/<name>.resume.pt (or pass the checkpoint's path)")
            path = resume_path(TrainConfig(**{k: v for k, v in requested.items() if k in ("texture", "name",
                                                                                       "checkpoint_dir")}))
        else:
            path = Path(resume)
        checkpoint = load_resume(path, log=log)
        if "train" not in checkpoint:
            raise TextureNetsError(f"{path}: holds no training settings to continue from (a damaged file)")
        saved = checkpoint["train"]  # migrated by load_checkpoint
        check_keys(saved, TrainConfig, where=f"{path.name}'s")
        trained_with = trained_settings(saved)  # a setting newer than the checkpoint was at its default there
        changed = sorted(k for k, v in requested.items() if k not in RESUMABLE and trained_with.get(k) != v)
        if changed:
            raise TextureNetsError(f"cannot change {', '.join(changed)} when resuming from {path} (it was "
                                   f"trained with {', '.join(f'{k}={trained_with.get(k)!r}' for k in changed)})")
        file_values, overrides = saved, {k: v for k, v in requested.items() if k in RESUMABLE}
        check_same_style_images(overrides.get("texture", saved.get("texture", [])), checkpoint, path)
    merged = {**file_values, **overrides}
    merged["vgg_weights"] = default_vgg_weights(merged.get("vgg_weights"), environ)
    return make_config(merged), checkpoint, path


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


def plan_phases(values: dict, overrides: dict, overwrite: bool = False, environ=os.environ) -> list[PhasePlan]:
    """Every run of the phased recipe `values` (with its "phases") resolved, `overrides` on top of
    each, each set to continue from its own files in the checkpoint folder unless `overwrite`; refused
    where a later phase would continue from weights an earlier one is about to replace."""
    top = {**values, **overrides}
    base = TrainConfig(**{k: top[k] for k in ("name", "texture", "checkpoint_dir") if k in top})
    runs = phase_runs({k: v for k, v in values.items() if k != "phases"}, values["phases"], base.style_name,
                      Path(base.checkpoint_dir))
    run_overrides = {k: v for k, v in overrides.items() if k != "name"}
    plans = []
    for number, run in enumerate(runs, 1):
        files = TrainConfig(name=run["name"], checkpoint_dir=base.checkpoint_dir)
        found = [path for path in (resume_path(files), final_path(files)) if path.is_file()]
        notes: list[str] = []
        config, resume, resumed_from = resolve_run(run, run_overrides, str(found[0]) if found and not overwrite
                                                   else None, environ, log=notes.append)
        plans.append(PhasePlan(f"phase {number} of {len(runs)} ({run['name']})", config, resume, resumed_from,
                               notes))
    _check_phase_chain(plans)
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


@contextmanager
def claimed_run(config: TrainConfig, resume: dict | None = None, resumed_from: Path | None = None,
                overwrite: bool = False):
    """Hold the run's name (`<name>.lock`) while the block runs, after refusing to start over
    another run's model, progress or settings, or to continue from behind its own progress (run_files.py).
    Every caller that writes a run's files holds it: two runs of one name never both write them."""
    with run_lock(config.checkpoint_dir, config.style_name):
        check_overwrite([final_path(config), resume_path(config), record_path(config)], resumed_from, overwrite)
        if resume is not None:
            check_progress_kept(resume_path(config), total_steps(resume), resumed_from, overwrite)
        yield


def claim_run(config: TrainConfig, resume: dict | None = None, resumed_from: Path | None = None,
              overwrite: bool = False) -> ExitStack:
    """`claimed_run` entered now and released by the returned stack's close(): for a caller that
    claims the name at once and trains later, in another thread (the web app's job)."""
    stack = ExitStack()
    stack.enter_context(claimed_run(config, resume, resumed_from, overwrite))
    return stack


def check_training_memory(config: TrainConfig, local_batch: int) -> None:
    """Refuse a batch that cannot fit in the memory of the device the run will use (see memory.py)."""
    cuda = config.device in ("auto", "cuda") and torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    half = autocast_dtype(config.precision, device) is not None
    need = training_bytes(config.image_size, local_batch, config.resize_size, config.num_val, config.num_workers, half)
    check_fits(need, device_memory(device), f"training on batches of {local_batch} crops of {config.image_size}x"
               f"{config.image_size} pixels (photos resized to {config.resize_size})",
               "lower --batch_size, --image_size or --photo_size")
