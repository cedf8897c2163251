"""The command lines: `train.py` / `texture-nets-train` and `stylize.py` / `texture-nets-stylize`.

Training flags are generated from `TrainConfig`'s fields, so the dataclass is the one source of
truth for names, defaults and help. User errors end as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import fields
from pathlib import Path

import torch

from .checkpoint import MAX_NOISE_FACTOR
from .config import DEFAULT_STYLE_LAYERS, OptimizeConfig, TrainConfig, check_keys, config_to_toml, upgrade_legacy, default_of, field_types, load_config_file, make_config
from . import colors
from .data import tensor_to_image
from .errors import TextureNetsError
from .memory import available_memory, check_fits, device_memory, picture_bytes, training_bytes
from .vgg import default_vgg_weights

OPTIMIZE_SIZE = 512  # default longer side of a picture optimised with --optimize (cost grows with its area)
MAX_MEMORY_GB = 2**20  # --max_memory above a petabyte is a typo

# Settings that may differ when resuming: where things are and how the run is watched, not what it learns.
RESUMABLE_CHANGES = {"data_dir", "annotations", "texture", "vgg_weights", "num_iterations", "checkpoint_dir",
                     "cache_dir", "compile", "precision", "channels_last", "init_from",
                     "checkpoint_every", "val_every", "log_every", "num_workers", "device", "viz", "viz_server",
                     "viz_port", "viz_env", "viz_every", "viz_noise_factors"}


def _comma_list(item_type):
    def parse(text: str):
        try:
            return [item_type(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated {item_type.__name__}s, got {text!r}") from exc
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls=TrainConfig) -> None:
    """One flag per dataclass field, with the field's help and default (flags left out stay unset)."""
    types = field_types(cls)
    for f in fields(cls):
        kind, meta, default = types[f.name], f.metadata, default_of(f)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        help_text = f"{meta.get('help', '')} (default: {shown!r})".replace("%", "%%")
        kwargs = dict(default=argparse.SUPPRESS, help=help_text)
        if kind is bool:
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            if meta.get("append"):
                parser.add_argument(f"--{f.name}", action="append", metavar="PATH", **kwargs)
            else:
                parser.add_argument(f"--{f.name}", type=_comma_list(item), metavar="A,B,...", **kwargs)
        else:
            parser.add_argument(f"--{f.name}", type=kind, choices=meta.get("choices"), **kwargs)


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
    """Defaults < --config < flags (< resume checkpoint's own settings); VGG weights from the env var last."""
    config, resume, _ = _resolve_train(args, environ)
    return config, resume


def _resolve_train(args: argparse.Namespace, environ) -> tuple[TrainConfig, dict | None, Path | None]:
    """resolve_train_config, and the path of the checkpoint resumed from (None: a new run)."""
    from .training import load_resume, resume_path
    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "resume", "cuda", "dry_run", "overwrite")}
    if args.cuda:
        overrides["device"] = "cuda"
    if args.resume == "":
        raise TextureNetsError("--resume is empty: give a checkpoint's path, or --resume alone for "
                               "<checkpoint_dir>/<name>.resume.pt")
    file_values = load_config_file(args.config) if args.config is not None else {}
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
        resume = load_resume(path, log=print)
        if "train" not in resume:
            raise TextureNetsError(f"{path}: holds no training settings to continue from (a damaged file)")
        saved = upgrade_legacy(resume["train"])
        check_keys(saved, where=f"{path.name}'s")
        changed = sorted(k for k, v in requested.items() if k not in RESUMABLE_CHANGES and saved.get(k) != v)
        if changed:
            raise TextureNetsError(f"cannot change {', '.join(changed)} when resuming from {path} (it was "
                                   f"trained with {', '.join(f'{k}={saved[k]!r}' for k in changed)})")
        file_values, overrides = saved, {k: v for k, v in requested.items() if k in RESUMABLE_CHANGES}
    merged = {**file_values, **overrides}
    merged["vgg_weights"] = default_vgg_weights(merged.get("vgg_weights"), environ)
    return make_config(merged), resume, path



def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    from tqdm import tqdm
    tqdm.write(f"warning: {message}", file=sys.stderr)


def _fail(prog: str, exc: BaseException | str, dist=None, *, shared: bool = False) -> int:
    """One line on stderr, exit status 2. Several processes (`dist`): an error every rank meets alike
    (`shared`: a user error, with the same config and files everywhere) is told by rank 0 alone;
    any other by each rank that meets it, naming the rank."""
    message = " ".join(str(exc).split())  # one line, whatever the message holds
    if dist is None or not dist.is_distributed:
        print(f"{prog}: error: {message}", file=sys.stderr)
    elif dist.is_main or not shared:
        print(f"{prog}: error{'' if shared else f' (rank {dist.rank})'}: {message}", file=sys.stderr)
    return 2


class Progress:
    """A tqdm bar fed by the trainer's step events, opened at the first event (so an early error
    prints alone), with validation results written above it."""

    def __init__(self, total: int, initial: int, name: str):
        self.total, self.initial, self.name, self.bar = total, initial, name, None

    def update(self, event) -> None:
        from tqdm import tqdm
        if self.bar is None:
            self.bar = tqdm(total=self.total, initial=self.initial, unit="step", dynamic_ncols=True, desc=self.name)
        self.bar.update(event.step - self.bar.n)
        self.bar.set_postfix(loss=f"{event.losses['total']:.4g}", content=f"{event.losses['content']:.3g}",
                             style=f"{event.losses['style']:.3g}", img_s=f"{event.images_per_sec:.1f}")
        if event.val_losses:
            self.write(f"step {event.step}: validation total {event.val_losses['total']:.4g} "
                       f"content {event.val_losses['content']:.4g} style {event.val_losses['style']:.4g}")

    def write(self, line: str) -> None:
        from tqdm import tqdm
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
    with warnings.catch_warnings():  # restores the caller's warning display on return
        warnings.showwarning = _one_line_warnings
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from .distributed import DistributedContext
    from .stylize import is_out_of_memory
    dist = DistributedContext()
    try:
        dist = DistributedContext.from_env(os.environ)  # torchrun's RANK / WORLD_SIZE / LOCAL_RANK
        config, resume, resumed_from = _resolve_train(args, os.environ)
        if args.dry_run:
            if dist.is_main:
                print(config_to_toml(config), end="")
            return 0
        check_training_memory(config, dist.local_batch(config.batch_size))
        with ExitStack() as stack:
            if dist.is_main:  # the one process that writes the run's files claims them
                stack.enter_context(claimed_run(config, resumed_from, args.overwrite))
            return _run_train(config, resume, dist)
    except TextureNetsError as exc:
        return _fail("train.py", exc, dist, shared=True)
    except OSError as exc:  # e.g. an unwritable --checkpoint_dir
        return _fail("train.py", exc, dist)
    except torch.cuda.OutOfMemoryError:
        return _fail("train.py", "out of GPU memory: lower --batch_size or --image_size", dist)
    except (MemoryError, RuntimeError) as exc:  # the CPU's allocator failing
        if not isinstance(exc, MemoryError) and not is_out_of_memory(exc):
            raise
        return _fail("train.py", "out of memory: lower --batch_size, --image_size or --photo_size", dist)
    except torch.distributed.DistError as exc:  # e.g. no rendezvous, or a peer stopped answering
        detail = (str(exc).strip().splitlines() or [""])[0]
        return _fail("train.py", f"lost contact with the other processes ({type(exc).__name__}: {detail})", dist)
    except KeyboardInterrupt:
        if dist.is_main:
            print("train.py: interrupted", file=sys.stderr)
        return 130


def _run_train(config: TrainConfig, resume: dict | None, dist) -> int:
    """run_training with a progress bar; the exit status."""
    from .training import run_training
    progress = Progress(config.num_iterations, resume["step"] if resume else 0, config.style_name)
    try:  # other ranks than 0 get no events: their bar never opens
        result = run_training(config, resume=resume, on_event=progress.update, log=progress.write, dist=dist)
    finally:
        progress.close()
    if dist.is_main:
        print(f"saved {result.checkpoint} (resumable: {result.resume_checkpoint})")
    return 0


@contextmanager
def claimed_run(config: TrainConfig, resumed_from: Path | None, overwrite: bool):
    """Hold the run's name (`<name>.lock`) while the block runs, after refusing to start over
    another run's model or progress (see run_files.py)."""
    from .run_files import check_overwrite, run_lock
    from .training import final_path, resume_path
    with run_lock(config.checkpoint_dir, config.style_name):
        check_overwrite([final_path(config), resume_path(config)], resumed_from, overwrite)
        yield


def check_training_memory(config: TrainConfig, local_batch: int) -> None:
    """Refuse a batch that cannot fit in the memory of the device the run will use (see memory.py)."""
    from .precision import autocast_dtype
    cuda = config.device in ("auto", "cuda") and torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    half = autocast_dtype(config.precision, device) is not None
    need = training_bytes(config.image_size, local_batch, config.resize_size, config.num_val, config.num_workers, half)
    check_fits(need, device_memory(device), f"training on batches of {local_batch} crops of {config.image_size}x"
               f"{config.image_size} pixels (photos resized to {config.resize_size})",
               "lower --batch_size, --image_size or --photo_size")


def stylize_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylize.py", allow_abbrev=False,
        description="Stylize photos in one forward pass of a trained texture network (--model), or with "
                    "Gatys et al.'s optimisation against style images (--optimize --style).")
    parser.add_argument("--model", help="checkpoint file, or a style name found in --checkpoint_dir")
    parser.add_argument("--input", required=True, nargs="+", help="image file(s) or folder(s)")
    parser.add_argument("--output", help="output file (one input) or folder (several inputs or a folder); "
                                         "default: <stem>_<style>.<ext> / stylized_<style>/")
    parser.add_argument("--size", type=int, help="resize so the longer side is SIZE pixels (default: keep; "
                                                 f"with --optimize: {OPTIMIZE_SIZE})")
    parser.add_argument("--noise_factor", type=float,
                        help="noise amplitude: 0 = deterministic, larger = more texture variation "
                             "(default: the value the network was trained with)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise, 0 ≤ seed < 2**63 (default: 0)")
    parser.add_argument("--cuda", action="store_true", help="run on the GPU (falls back to the CPU with a message)")
    parser.add_argument("--preserve_colors", nargs="?", const="luminance", choices=colors.METHODS,
                        help="keep the photo's colours: 'luminance' (default when the flag is given: transfer "
                             "the style's luminance only, recombined with the photo's chrominance) or, with "
                             "--optimize, 'match' (recolour the style images to the photo's colour statistics first)")
    parser.add_argument("--checkpoint_dir", default="checkpoints", help="where --model names are looked up "
                                                                        "(default: checkpoints)")
    parser.add_argument("--tile", type=int, help="stylize in tiles of TILE pixels (same picture, bounded memory; "
                                                 "default: only when the picture would not fit in memory)")
    parser.add_argument("--max_memory", type=float, help="GB the one-pass stylization may use before tiling is "
                                                         "switched on (default: the memory available now)")
    parser.add_argument("--engine", choices=("auto", "torch", "onnx"), default="auto",
                        help="auto (default): ONNX Runtime on the CPU where installed (about 2x faster), else PyTorch")
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                        help="auto (default): fp16 on CUDA, fp32 on the CPU")
    group = parser.add_argument_group(
        "optimisation (Gatys et al.)", "--optimize runs the original method: the picture's pixels are optimised "
        "against the style images with the loss used for training (same layers and weights)")
    group.add_argument("--optimize", action="store_true", help="optimise each picture instead of running a network")
    add_config_arguments(group, OptimizeConfig)
    return parser


def onnx_cache_dir(environ=os.environ) -> Path:
    """Where exported ONNX models are kept between runs ($XDG_CACHE_HOME/texture_nets/onnx)."""
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "texture_nets" / "onnx"


def stylize_main(argv: list[str] | None = None) -> int:
    """Entry point of stylize.py / texture-nets-stylize; returns the exit status."""
    args = stylize_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings
        return _stylize(args)


def _stylize(args: argparse.Namespace) -> int:
    from .stylize import is_out_of_memory
    try:
        _check_stylize_args(args)
        return _optimize(args) if args.optimize else _feed_forward(args)
    except (TextureNetsError, OSError) as exc:  # OSError: e.g. an unwritable --output
        return _fail("stylize.py", exc)
    except torch.cuda.OutOfMemoryError:
        return _fail("stylize.py", "out of GPU memory: lower --size or run without --cuda")
    except (MemoryError, RuntimeError) as exc:  # the CPU's allocator failing
        if not isinstance(exc, MemoryError) and not is_out_of_memory(exc):
            raise
        return _fail("stylize.py", "out of memory: lower --size (or --tile)")
    except KeyboardInterrupt:  # files are written atomically: no partial or temporary file is left
        print("stylize.py: interrupted", file=sys.stderr)
        return 130


OPTIMIZE_ONLY = [f.name for f in fields(OptimizeConfig)]
FEED_FORWARD_ONLY = ("model", "noise_factor", "tile", "max_memory")


def _check_stylize_args(args: argparse.Namespace) -> None:
    """Refuse options that the chosen mode would silently ignore, and absurd values."""
    paths = {"--input": args.input, "--output": [args.output], "--model": [args.model],
             "--checkpoint_dir": [args.checkpoint_dir], "--style": getattr(args, "style", [])}
    empty = [flag for flag, values in paths.items() if any(v is not None and not v.strip() for v in values)]
    if empty:
        raise TextureNetsError(f"{empty[0]} is empty: give a path")
    if not 0 <= args.seed < 2**63:
        raise TextureNetsError(f"--seed must be in [0, 2**63), got {args.seed}")
    if args.size is not None and args.size < 16:
        raise TextureNetsError(f"--size must be at least 16 pixels, got {args.size}")
    if args.optimize:
        given = [name for name in FEED_FORWARD_ONLY if getattr(args, name, None) is not None]
        if given:
            raise TextureNetsError(f"--{given[0]} is for a trained network; --optimize takes --style images")
        return
    given = [name for name in OPTIMIZE_ONLY if hasattr(args, name)]
    if given:
        raise TextureNetsError(f"--{given[0]} applies to optimisation: add --optimize (or use --model alone)")
    if args.model is None:
        raise TextureNetsError("pass --model (a trained style) or --optimize --style IMAGE")
    if args.tile is not None and args.tile < 32:
        raise TextureNetsError(f"--tile must be at least 32 pixels, got {args.tile}")
    if args.noise_factor is not None and not 0 <= args.noise_factor <= MAX_NOISE_FACTOR:  # NaN fails too
        raise TextureNetsError(f"--noise_factor must be a number in [0, {MAX_NOISE_FACTOR:g}], got {args.noise_factor}")
    if args.max_memory is not None and not 0 < args.max_memory <= MAX_MEMORY_GB:  # NaN fails too
        raise TextureNetsError(f"--max_memory must be in (0, {MAX_MEMORY_GB}] GB, got {args.max_memory}")


def _feed_forward(args: argparse.Namespace) -> int:
    """stylize.py --model: one forward pass of a trained network per photo."""
    from .checkpoint import load_generator
    from .stylize import plan_outputs, prepare_generator, resolve_model, stylize_files
    from .training import resolve_device
    device = resolve_device("cuda" if args.cuda else "cpu")
    model_path = resolve_model(args.model, args.checkpoint_dir)
    generator = load_generator(model_path)
    if generator.config.texture_only:
        raise TextureNetsError(f"{model_path} is a texture-synthesis model: it takes no photo to stylize")
    generator = prepare_generator(generator, device, engine=args.engine, precision=args.precision,
                                  onnx_cache=onnx_cache_dir())
    memory_limit = (int(args.max_memory * 2**30) if args.max_memory
                    else available_memory() if device.type == "cpu" else None)  # CUDA: tile after an OOM
    pairs = plan_outputs(args.input, args.output, model_path.stem)
    failures = []
    on_error = None if len(pairs) == 1 else lambda exc: (failures.append(exc), print(f"warning: {exc}", file=sys.stderr))
    written = stylize_files(generator, pairs, size=args.size, noise_factor=args.noise_factor, seed=args.seed,
                            tile=args.tile, memory_limit=memory_limit, preserve_colors=args.preserve_colors,
                            memory_available=device_memory(device), on_error=on_error)
    for path in written:
        print(path)
    if failures:
        print(f"{len(failures)} input(s) could not be stylized and were skipped", file=sys.stderr)
        return 1
    return 0


def _optimize(args: argparse.Namespace) -> int:
    """stylize.py --optimize: Gatys et al.'s optimisation of each photo against the --style images."""
    from tqdm import tqdm

    from .optimize import load_objective, stylize_optimized
    from .stylize import check_outputs_spare_inputs, photo_batch, plan_outputs, save_image_atomic
    from .training import resolve_device
    values = {name: getattr(args, name) for name in OPTIMIZE_ONLY if hasattr(args, name)}
    values["vgg_weights"] = default_vgg_weights(values.get("vgg_weights"))
    config = make_config(values, cls=OptimizeConfig)
    device = resolve_device("cuda" if args.cuda else "cpu")
    name = "+".join(Path(path).stem for path in config.style)
    pairs = plan_outputs(args.input, args.output, name)
    steps = range(config.save_every, config.steps, config.save_every) if config.save_every else ()
    snapshots = [(src, snapshot_path(dst, step)) for src, dst in pairs for step in steps]
    check_outputs_spare_inputs(pairs + snapshots, protected=config.style)
    for src, _ in pairs:
        check_vgg_memory(src, args.size or OPTIMIZE_SIZE, device)
    criterion, styles = load_objective(config, device)
    for src, dst in pairs:
        photo = photo_batch(src, args.size or OPTIMIZE_SIZE).to(device)
        bar = tqdm(total=config.steps, desc=src.name, unit="step", dynamic_ncols=True)

        def on_step(step: int, terms, image: torch.Tensor, bar=bar, dst=dst) -> None:
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{float(terms.total):.4g}", content=f"{float(terms.content):.3g}",
                            style=f"{float(terms.style):.3g}")
            if config.save_every and step % config.save_every == 0 and step < config.steps:
                save_image_atomic(tensor_to_image(image), snapshot_path(dst, step))

        try:
            result = stylize_optimized(criterion, photo, styles, config.style_blend or None,
                                       preserve_colors=args.preserve_colors, steps=config.steps, init=config.init,
                                       seed=args.seed, optimizer=config.optimizer,
                                       learning_rate=config.learning_rate, on_step=on_step)
        finally:
            bar.close()
        print(save_image_atomic(tensor_to_image(result), dst))
    return 0


def snapshot_path(dst: Path, step: int) -> Path:
    """Where --save_every writes the picture at `step`: <output stem>_<step>.<ext>."""
    return dst.with_name(f"{dst.stem}_{step:04d}{dst.suffix}")


def check_vgg_memory(path: Path, size: int, device: torch.device, doing: str = "optimising") -> None:
    """Refuse, before decoding it, a picture (resized to `size`) that VGG-19 cannot take in the
    device's memory (optimisation; activation maps)."""
    from .data import image_dimensions
    from .stylize import resized_dimensions
    width, height = resized_dimensions(image_dimensions(path), size)
    check_fits(picture_bytes(width, height), device_memory(device),
               f"{path}: {doing} {width}x{height} pixels", "pass a smaller --size")


def features_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="texture-nets features", allow_abbrev=False,
        description="What VGG-19 sees in a picture: the strongest activation maps of each layer as a grid, "
                    "and each layer's Gram matrix (the style statistic) as a heat map.")
    parser.add_argument("--input", required=True, help="image file")
    parser.add_argument("--layers", type=_comma_list(str), default=list(DEFAULT_STYLE_LAYERS), metavar="A,B,...",
                        help=f"VGG-19 layers (default: the style layers, {','.join(DEFAULT_STYLE_LAYERS)})")
    parser.add_argument("--output", help="the activation grid (default: <stem>_features.png); the Gram heat "
                                         "maps go next to it as <output stem>_gram.png")
    parser.add_argument("--size", type=int, default=512, help="resize so the longer side is SIZE (default: 512)")
    parser.add_argument("--top", type=int, default=8, help="activation maps per layer, strongest first (default: 8)")
    parser.add_argument("--gram_channels", type=int, default=64,
                        help="channels shown in each Gram heat map, strongest first (default: 64)")
    parser.add_argument("--vgg_weights", help="VGG-19 weights (as for training; default: "
                                              "$TEXTURE_NETS_VGG_WEIGHTS, else 'imagenet')")
    parser.add_argument("--pooling", choices=("max", "avg"), default="max", help="VGG pooling (default: max)")
    return parser


def features_main(argv: list[str] | None = None) -> int:
    """Entry point of `texture-nets features`; returns the exit status."""
    from .features import activation_grid, gram_heatmaps
    from .stylize import check_outputs_spare_inputs, photo_batch, save_image_atomic
    from .vgg import VGG19Features
    args = features_parser().parse_args(argv)
    try:
        if args.size < 16 or args.top < 1 or args.gram_channels < 1:
            raise TextureNetsError("--size must be ≥ 16, --top and --gram_channels ≥ 1")
        if not args.layers:
            raise TextureNetsError("--layers is empty: name VGG-19 layers, e.g. relu1_1,relu3_1")
        source = Path(args.input)
        grid_path = Path(args.output) if args.output else Path(f"{source.stem}_features.png")
        gram_path = grid_path.with_name(f"{grid_path.stem}_gram.png")
        check_outputs_spare_inputs([(source, grid_path), (source, gram_path)])
        check_vgg_memory(source, args.size, torch.device("cpu"), "showing the activations of")
        vgg = VGG19Features(args.layers, weights=default_vgg_weights(args.vgg_weights), pooling=args.pooling)
        photo = photo_batch(source, args.size)
        with torch.no_grad():
            feats = vgg(photo)
        feats = {layer: feats[layer] for layer in args.layers}
        print(save_image_atomic(activation_grid(feats, top=args.top), grid_path))
        print(save_image_atomic(gram_heatmaps(feats, channels=args.gram_channels), gram_path))
        return 0
    except (TextureNetsError, OSError) as exc:
        return _fail("texture-nets features", exc)


COMMANDS = {"train": ("train a texture network (train.py)", train_main),
            "stylize": ("stylize photos with a trained network or by optimisation (stylize.py)", stylize_main),
            "features": ("show VGG-19's activation maps and Gram matrices of a picture", features_main),
            "serve": ("the web app: stylize and train in the browser", lambda argv: _serve(argv))}


def _serve(argv: list[str]) -> int:
    from .web import serve_main  # imported on use: FastAPI is an optional extra
    return serve_main(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `texture-nets` / `python -m texture_nets`: one command, several tools."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]][1](argv[1:])
    asked = bool(argv) and argv[0] in ("-h", "--help")
    lines = [f"  {name:<9} {text}" for name, (text, _) in COMMANDS.items()]
    print("usage: texture-nets COMMAND [options]   (texture-nets COMMAND --help for its options)\n\ncommands:\n"
          + "\n".join(lines), file=sys.stdout if asked else sys.stderr)
    return 0 if asked else 2
