"""One self-describing file per style: weights, constructor arguments, training config, provenance.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(..., weights_only=True)`. Files are written to a temporary name and renamed, so a crash
never leaves half a checkpoint. Resumable checkpoints also hold the optimizer state. Files older
texture_nets releases wrote are upgraded in one place, `migrate`.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict
from pathlib import Path

import torch

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output
from texture_nets.core.networks import build_generator
from texture_nets.core.settings import upgrade_legacy
from texture_nets.core.version import __version__

FORMAT_VERSION = 1
DEFAULT_CHECKPOINT_DIR = "checkpoints"  # where runs write their files and --model names are looked up first
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
                    resume_state: dict | None = None, steps_before: int = 0, data_order: int | None = None) -> dict:
    """The checkpoint dict for `generator`: format_version, arch, model (its constructor arguments),
    state_dict, style, train, step, losses, provenance. `resume_state` (resumable checkpoints only)
    holds the optimizer's and grad scaler's state, the run id and the loss history; no RNG state is
    needed, as every step's crops and noise are drawn from seeds fixed by the run's seed and the step.
    `steps_before`: training steps behind the weights this run started from (`init_from`), so that a
    fine-tuned style says how long it trained in all (`total_steps`) while `step` drives its schedule.
    `data_order`: how the run orders its photos (data.EPOCH_ORDER), so that it resumes in that order."""
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
        "steps_before": int(steps_before),
        "losses": {k: float(v) for k, v in losses.items()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "texture_nets_version": __version__,
        "torch_version": str(torch.__version__),
    }
    if data_order is not None:
        checkpoint["data_order"] = int(data_order)
    if resume_state is not None:
        checkpoint["resume"] = resume_state
    return checkpoint


def save_checkpoint(checkpoint: dict, path: str | os.PathLike) -> Path:
    """Write atomically and durably (files.atomic_output): a run's progress survives a crash or a power cut."""
    path = Path(path)
    with atomic_output(path, durable=True) as tmp, open(tmp, "xb") as handle:  # "xb" honours the umask
        torch.save(checkpoint, handle)
    return path


# Constructor arguments a checkpoint may hold, per architecture: type and allowed range. The maxima
# are far above any useful network (the paper: 5-6 scales of 8 channels); a file beyond them is
# damaged or hostile, and building or running it would exhaust memory (2**(num_scales-1) padding).
MAX_NOISE_FACTOR = 1000.0
MAX_STYLES = 256  # styles of one network (magenta's largest holds 32)
GENERATOR_ARGS = {
    "pyramid": {"num_scales": (int, 1, 12), "channels": (int, 1, 256), "noise_channels": (int, 0, 64),
                "noise_factor": (float, 0.0, MAX_NOISE_FACTOR), "texture_only": (bool, False, True),
                "max_channels": (int, 0, 4096), "style_names": (list, 0, MAX_STYLES)},
    "residual": {"channels": (int, 1, 256), "num_residual": (int, 0, 64), "noise_channels": (int, 0, 64),
                 "noise_factor": (float, 0.0, MAX_NOISE_FACTOR), "texture_only": (bool, False, True)},
}
METADATA_TYPES = {"state_dict": dict, "style": dict, "train": dict, "step": int, "steps_before": int, "losses": dict}


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
    checkpoint = migrate(checkpoint, str(path))
    check_contents(checkpoint, str(path))
    return checkpoint


def migrate(checkpoint: dict, source: str) -> dict:
    """A checkpoint dict brought to today's format: every upgrade of files older texture_nets wrote is
    here, and only here (load_checkpoint applies it; so does a run handed a checkpoint dict). Format 1
    grew fields over its releases; a file without one was written before the field existed."""
    version = checkpoint.get("format_version")
    if version != FORMAT_VERSION:
        raise TextureNetsError(f"{source}: checkpoint format version {version} is not supported by "
                               f"texture_nets {__version__} (it reads version {FORMAT_VERSION})")
    checkpoint = dict(checkpoint)
    checkpoint.setdefault("arch", "pyramid")  # before the residual generator existed
    if isinstance(checkpoint.get("train"), dict):
        checkpoint["train"] = upgrade_legacy(checkpoint["train"])  # amp (a bool) became precision
    if "resume" in checkpoint:
        checkpoint.setdefault("data_order", 1)  # before runs recorded their photo order: EPOCH_ORDER 1
    return checkpoint


def check_contents(checkpoint: dict, source: str) -> None:
    """Refuse a checkpoint dict whose parts are missing or of the wrong type, or whose generator
    arguments are out of range (see `check_generator_args`); `source` names it in the message."""
    if "state_dict" not in checkpoint:
        raise TextureNetsError(f"{source}: checkpoint holds no weights (no state_dict): a damaged file")
    for key, kind in METADATA_TYPES.items():
        value = checkpoint.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise TextureNetsError(f"{source}: checkpoint entry {key!r} should be a {kind.__name__}, "
                                   f"got {type(value).__name__}: a damaged file")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint["state_dict"].items()):
        raise TextureNetsError(f"{source}: checkpoint weights are not a dict of named tensors: a damaged file")
    for key in ("step", "steps_before"):
        if checkpoint.get(key, 0) < 0:
            raise TextureNetsError(f"{source}: checkpoint {key} {checkpoint[key]} is negative: a damaged file")
    check_generator_args(checkpoint.get("arch", "pyramid"), checkpoint.get("model"), source)


def total_steps(checkpoint: dict) -> int:
    """Training steps behind a checkpoint's weights: its run's own, plus those of the checkpoint it
    started from (files written before `steps_before` existed count their own steps only)."""
    return checkpoint.get("step", 0) + checkpoint.get("steps_before", 0)


def check_generator_args(arch: object, model: object, source: str) -> None:
    """Refuse an unknown architecture, unknown constructor arguments, or values of the wrong type or
    out of range (GENERATOR_ARGS), before anything is built from them."""
    if arch not in GENERATOR_ARGS:
        raise TextureNetsError(f"{source}: checkpoint holds a generator of unknown architecture {arch!r}")
    allowed = GENERATOR_ARGS[arch]
    if not isinstance(model, dict) or set(model) - set(allowed):
        raise TextureNetsError(f"{source}: checkpoint has unknown generator arguments {model}")
    for name, value in model.items():
        kind, low, high = allowed[name]
        if kind is list:  # names: distinct, non-empty strings, between low and high of them
            if not (isinstance(value, (list, tuple)) and low <= len(value) <= high and len(set(value)) == len(value)
                    and all(isinstance(v, str) and v.strip() for v in value)):
                raise TextureNetsError(f"{source}: generator argument {name} in the checkpoint should be up to "
                                       f"{high} distinct names: a damaged or foreign file")
            continue
        numbers = (int, float) if kind is float else (kind,)
        typed = isinstance(value, numbers) and (kind is bool or not isinstance(value, bool))
        if not typed or not low <= value <= high:  # NaN fails the comparison too
            expected = "true or false" if kind is bool else f"{'a number' if kind is float else 'an integer'} " \
                                                            f"in [{low}, {high}]"
            raise TextureNetsError(f"{source}: generator argument {name}={value!r} in the checkpoint should be "
                                   f"{expected}: a damaged or foreign file")


def generator_from_checkpoint(checkpoint: dict, source: str = "checkpoint") -> torch.nn.Module:
    """Rebuild the generator from the checkpoint's own architecture and constructor arguments, and
    load its weights. The arguments and the weights' names, shapes and values are checked first, on
    a generator built without memory (PyTorch's meta device), so a damaged file costs nothing."""
    check_contents(checkpoint, source)
    arch, state_dict = checkpoint.get("arch", "pyramid"), checkpoint["state_dict"]
    with torch.device("meta"):
        expected = _build(arch, checkpoint["model"], source).state_dict()
    check_weights(state_dict, expected, source)
    model = _build(arch, checkpoint["model"], source)
    model.load_state_dict(state_dict)
    return model.eval()


def _build(arch: str, model: dict, source: str) -> torch.nn.Module:
    """build_generator, with its refusal of inconsistent arguments as a TextureNetsError."""
    try:
        return build_generator(arch, model)
    except (ValueError, TypeError) as exc:
        raise TextureNetsError(f"{source}: checkpoint describes an impossible generator ({exc})") from exc


def check_weights(state_dict: dict, expected: dict, source: str) -> None:
    """Refuse weights that do not fit the generator (names, shapes; one line with the first
    difference of each kind) or that hold NaN or infinite values."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    problems = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                f"{len(wrong)} of the wrong shape (e.g. {wrong[0]}: {list(state_dict[wrong[0]].shape)} in the "
                f"file, {list(expected[wrong[0]].shape)} expected)" if wrong else ""]
    if any(problems):
        raise TextureNetsError(f"{source}: weights do not match the generator it describes: "
                               f"{'; '.join(p for p in problems if p)}")
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise TextureNetsError(f"{source}: {len(bad)} weight tensor(s) hold NaN or infinite values (e.g. {bad[0]}): "
                               f"the training run diverged or the file is damaged; use another checkpoint")


def load_generator(path: str | os.PathLike, map_location="cpu") -> torch.nn.Module:
    """The trained generator stored in the checkpoint file at `path`, in eval mode."""
    return generator_from_checkpoint(load_checkpoint(path, map_location), str(path))


SHIPPED_DIR = Path(__file__).resolve().parents[1] / "styles"  # the trained styles installed with the package


def resolve_model(model: str | os.PathLike, checkpoint_dir: str | os.PathLike = DEFAULT_CHECKPOINT_DIR) -> Path:
    """A checkpoint path: `model` itself if it exists, else, for a bare name (with or without .pt),
    that name in checkpoint_dir, and then among the styles shipped with texture_nets (SHIPPED_DIR),
    so that `--model mosaic` works from any folder. A path with a folder in it is taken as it is:
    'my_runs/candy' that does not exist is an error, not the shipped candy."""
    path = Path(model)
    if path.is_file():
        return path
    if os.path.dirname(os.fspath(model)):
        what = "a folder, not a checkpoint file" if path.is_dir() else "no such file"
        raise TextureNetsError(f"model not found: {model} ({what})")
    folders = list(dict.fromkeys([Path(checkpoint_dir), SHIPPED_DIR]))
    for folder in folders:
        for candidate in (folder / path.name, folder / f"{path.name}.pt"):
            if candidate.is_file():
                return candidate
    available = sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.pt")
                        if not p.name.endswith(".resume.pt")})
    raise TextureNetsError(f"model not found: {model} (not a file, nor in {' or '.join(f'{f}/' for f in folders)}"
                           + (f"; available: {', '.join(available)})" if available else ")"))
