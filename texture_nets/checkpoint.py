"""One self-describing file per style: weights, constructor arguments, training config, provenance.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(..., weights_only=True)`. Files are written to a temporary name and renamed, so a crash
never leaves half a checkpoint. Resumable checkpoints also hold the optimizer state.
"""

from __future__ import annotations

import datetime as _dt
import os
import uuid
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__
from .errors import TextureNetsError
from .generator import build_generator, config_fields

FORMAT_VERSION = 1
KIND = "texture_nets.generator"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module behind DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def make_checkpoint(generator: torch.nn.Module, *, style: dict, train: dict, step: int, losses: dict,
                    resume_state: dict | None = None) -> dict:
    """The checkpoint dict for `generator` (see DESIGN.md); `resume_state` adds optimizer/RNG state."""
    model = unwrap(generator)
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "arch": model.arch,
        "model": asdict(model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "style": style,
        "train": train,
        "step": int(step),
        "losses": {k: float(v) for k, v in losses.items()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "texture_nets_version": __version__,
        "torch_version": str(torch.__version__),
    }
    if resume_state is not None:
        checkpoint["resume"] = resume_state
    return checkpoint


def save_checkpoint(checkpoint: dict, path: str | os.PathLike) -> Path:
    """Write atomically: a temporary file in the same folder, fsync'ed, then renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"  # open(..., "xb") honours the umask
    try:
        with open(tmp, "xb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and validate a checkpoint written by `save_checkpoint`, or raise a clear TextureNetsError."""
    path = Path(path)
    if not path.is_file():
        raise TextureNetsError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise TextureNetsError(f"{path}: not a texture_nets checkpoint (cannot be read by torch.load: "
                               f"{exc.__class__.__name__})") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != KIND:
        raise TextureNetsError(f"{path}: not a texture_nets checkpoint (a torch file, but not one this "
                               f"project wrote; train one with train.py)")
    version = checkpoint.get("format_version")
    if version != FORMAT_VERSION:
        raise TextureNetsError(f"{path}: checkpoint format version {version} is not supported by "
                               f"texture_nets {__version__} (it reads version {FORMAT_VERSION})")
    arch = checkpoint.setdefault("arch", "pyramid")  # files written before the residual generator existed
    if arch not in ("pyramid", "residual"):
        raise TextureNetsError(f"{path}: checkpoint holds a generator of unknown architecture {arch!r}")
    if not isinstance(checkpoint.get("model"), dict) or set(checkpoint["model"]) - config_fields(arch):
        raise TextureNetsError(f"{path}: checkpoint has unknown generator arguments {checkpoint.get('model')}")
    return checkpoint


def generator_from_checkpoint(checkpoint: dict, source: str = "checkpoint") -> torch.nn.Module:
    """Rebuild the generator from the checkpoint's own architecture and constructor arguments, and
    load its weights."""
    model = build_generator(checkpoint.get("arch", "pyramid"), checkpoint["model"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise TextureNetsError(f"{source}: weights do not match the generator it describes ({exc})") from exc
    return model.eval()


def load_generator(path: str | os.PathLike, map_location="cpu") -> torch.nn.Module:
    """The trained generator stored in the checkpoint file at `path`, in eval mode."""
    return generator_from_checkpoint(load_checkpoint(path, map_location), str(path))
