"""`stylize.py` / `texture-nets stylize`: one forward pass of a trained network per photo (--model), or
Gatys et al.'s optimisation against style images (--optimize --style). Without --input, the sample
photo that ships with texture_nets is stylized, so a first run needs nothing but a style's name."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

import torch
from tqdm import tqdm

from texture_nets.cli.common import (
    check_vgg_memory,
    fail,
    one_line_warnings,
    pictures_judged_by_memory,
    stop_signals_interrupt,
)
from texture_nets.cli.video import (
    VIDEO_ONLY,
    add_video_arguments,
    check_video_args,
    split_videos,
    style_choice,
    stylize_videos,
)
from texture_nets.core.checkpoint import DEFAULT_CHECKPOINT_DIR, load_generator, resolve_model
from texture_nets.core.device import resolve_device
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import check_outputs_spare_inputs
from texture_nets.core.images import (
    check_size,
    decodable_dimensions,
    is_grayscale,
    photo_batch,
    save_image_atomic,
    tensor_to_image,
)
from texture_nets.core.memory import allocation_failures, available_memory, device_memory
from texture_nets.core.settings import add_config_arguments, default_of, make_settings
from texture_nets.core.vgg import check_picture_side, default_vgg_weights
from texture_nets.inference.engine import SAMPLE_PHOTO, Engine, prepare_generator
from texture_nets.inference.onnx_export import onnx_cache_dir
from texture_nets.inference.optimize import load_objective, stylize_optimized
from texture_nets.inference.options import (
    PHOTOREAL_OPTIMIZE,
    EngineOptions,
    OptimizeConfig,
    StylizeOptions,
    VideoOptions,
    check_noise_factor,
    check_seed,
    check_tile,
)
from texture_nets.inference.outputs import plan_outputs

OPTIMIZE_SIZE = 512  # default longer side of a picture optimised with --optimize (cost grows with its area)
MAX_MEMORY_GB = 2**20  # --max_memory above a petabyte is a typo
OPTIMIZE_ONLY = [f.name for f in fields(OptimizeConfig)]
FEED_FORWARD_ONLY = ("model", "noise_factor", "tile", "max_memory", "photoreal_radius", "photoreal_eps")


def stylize_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylize.py", allow_abbrev=False,
        description="Stylize photos in one forward pass of a trained texture network (--model), or with "
                    "Gatys et al.'s optimisation against style images (--optimize --style).")
    parser.add_argument("--model", help="checkpoint file, or a style name found in --checkpoint_dir or among the "
                                        "shipped styles (mosaic, candy, ...)")
    parser.add_argument("--input", nargs="+", help="image or video file(s) or folder(s) (default: the sample photo "
                                                   f"{SAMPLE_PHOTO.name}, written to {SAMPLE_PHOTO.stem}_<style>.png "
                                                   "here, or _1, _2, ... rather than over an earlier one)")
    parser.add_argument("--output", help="output file (one input) or folder (several inputs or a folder); "
                                         "default: <stem>_<style>.<ext> / stylized_<style>/")
    parser.add_argument("--cuda", action="store_true", help="run on the GPU (falls back to the CPU with a message)")
    parser.add_argument("--checkpoint_dir", default=DEFAULT_CHECKPOINT_DIR,
                        help=f"where --model names are looked up (default: {DEFAULT_CHECKPOINT_DIR})")
    parser.add_argument("--max_memory", type=float, help="GB the one-pass stylization may use before tiling is "
                                                         "switched on (default: the memory available now)")
    add_config_arguments(parser, StylizeOptions)
    add_config_arguments(parser, EngineOptions)
    add_video_arguments(parser)
    group = parser.add_argument_group(
        "optimisation (Gatys et al.)", "--optimize runs the original method: the picture's pixels are optimised "
        "against the style images with the loss used for training (same layers and weights)")
    group.add_argument("--optimize", action="store_true", help="optimise each picture instead of running a network")
    add_config_arguments(group, OptimizeConfig)
    return parser




def stylize_main(argv: list[str] | None = None) -> int:
    """Entry point of stylize.py / texture-nets-stylize; returns the exit status."""
    args = with_defaults(stylize_parser().parse_args(argv))
    with one_line_warnings(), pictures_judged_by_memory(), stop_signals_interrupt():  # `kill`: as Ctrl-C, nothing partial
        return _stylize(args)


def with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with the stylization, engine and video options left out at their dataclass defaults, and
    `args.given`: the names of the flags given (--optimize refuses a network's options when given)."""
    args.given = {name for name, value in vars(args).items() if value is not None}
    for cls in (VideoOptions, EngineOptions):
        for f in fields(cls):
            if "help" in f.metadata and not hasattr(args, f.name):
                setattr(args, f.name, default_of(f))
    return args


def _stylize(args: argparse.Namespace) -> int:
    try:
        _check_stylize_args(args)
        with allocation_failures():
            return _optimize(args) if args.optimize else _feed_forward(args)
    except (TextureNetsError, OSError) as exc:  # OSError: e.g. an unwritable --output
        return fail("stylize.py", exc)
    except MemoryError as exc:  # OutOfMemory from PyTorch, or Python's own
        if getattr(exc, "on_gpu", False):
            return fail("stylize.py", "out of GPU memory: lower --size or run without --cuda")
        return fail("stylize.py", "out of memory: lower --size (or --tile)")
    except KeyboardInterrupt:  # files are written atomically: no partial or temporary file is left
        print("stylize.py: interrupted", file=sys.stderr)
        return 130


def _check_stylize_args(args: argparse.Namespace) -> None:
    """Refuse options that the chosen mode would silently ignore, and absurd values."""
    paths = {"--input": args.input or [], "--output": [args.output], "--model": [args.model],
             "--checkpoint_dir": [args.checkpoint_dir], "--style": getattr(args, "style", [])}
    empty = [flag for flag, values in paths.items() if any(v is not None and not v.strip() for v in values)]
    if empty:
        raise TextureNetsError(f"{empty[0]} is empty: give a path")
    check_seed(args.seed, "--seed")
    check_size(args.size)
    if args.optimize:
        given = [name for name in FEED_FORWARD_ONLY + VIDEO_ONLY if name in args.given]
        if given:
            raise TextureNetsError(f"--{given[0]} is for a trained network; --optimize takes --style images")
        return
    given = [name for name in OPTIMIZE_ONLY if hasattr(args, name) and name != "style"]  # --model: the style
    if given:
        raise TextureNetsError(f"--{given[0]} applies to optimisation: add --optimize (or use --model alone)")
    if args.model is None:
        raise TextureNetsError("pass --model (a trained style) or --optimize --style IMAGE")
    check_tile(args.tile)
    check_noise_factor(args.noise_factor, "--noise_factor")
    if args.max_memory is not None and not 0 < args.max_memory <= MAX_MEMORY_GB:  # NaN fails too
        raise TextureNetsError(f"--max_memory must be in (0, {MAX_MEMORY_GB}] GB, got {args.max_memory}")
    check_video_args(args)


def planned_outputs(args: argparse.Namespace, name: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs of --input and --output (see plan_outputs). Without --input: the sample
    photo, to --output or else to <photo>_<name>.png in the current folder, or the first of
    <photo>_<name>_1.png, _2, ... that does not exist yet, never over an earlier file."""
    if args.input is not None:
        return plan_outputs(args.input, args.output, name)
    if args.output:
        return plan_outputs([str(SAMPLE_PHOTO)], args.output, name)
    return [(SAMPLE_PHOTO, unused_path(Path(f"{SAMPLE_PHOTO.stem}_{name}.png")))]


def unused_path(path: Path) -> Path:
    """`path` if nothing is there yet, else the first free <stem>_1<suffix>, <stem>_2<suffix>, ..."""
    candidate, number = path, 0
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = path.with_name(f"{path.stem}_{number}{path.suffix}")
    return candidate


def report_written(args: argparse.Namespace, path: Path) -> None:
    """Print the path of a picture written; for the sample photo, one line that says what happened."""
    if args.input is None:
        print(f"no --input: stylized the sample photo {SAMPLE_PHOTO.name} → {path}")
    else:
        print(path)


def _feed_forward(args: argparse.Namespace) -> int:
    """stylize.py --model: one forward pass of a trained network per photo, and per frame of a video."""
    device = resolve_device("cuda" if args.cuda else "cpu")
    model_path = resolve_model(args.model, args.checkpoint_dir)
    generator = load_generator(model_path)
    if generator.config.texture_only:
        raise TextureNetsError(f"{model_path} is a texture-synthesis model: it takes no photo to stylize")
    generator = prepare_generator(generator, device, engine=args.engine, precision=args.precision,
                                  onnx_cache=onnx_cache_dir())
    memory_limit = (int(args.max_memory * 2**30) if args.max_memory
                    else available_memory() if device.type == "cpu" else None)  # CUDA: tile after an OOM
    pairs = planned_outputs(args, model_path.stem)
    photos, videos = split_videos(pairs)
    failures = []
    on_error = None if len(pairs) == 1 else lambda exc: (failures.append(exc), print(f"warning: {exc}", file=sys.stderr))
    options = StylizeOptions(**{f.name: getattr(args, f.name) for f in fields(StylizeOptions) if f.name != "style"},
                             style=style_choice(args))
    written = Engine(generator, options, memory_limit).stylize_files(photos, device_memory(device), on_error)
    written += stylize_videos(generator, videos, args, memory_limit, on_error)
    for path in written:
        report_written(args, path)
    if failures:
        print(f"{len(failures)} input(s) could not be stylized and were skipped", file=sys.stderr)
        return 1
    return 0


def _optimize(args: argparse.Namespace) -> int:
    """stylize.py --optimize: Gatys et al.'s optimisation of each photo against the --style images."""

    values = {name: getattr(args, name) for name in OPTIMIZE_ONLY if hasattr(args, name)}
    if args.photorealistic:  # Luan et al.'s regulariser, from the style's colours, unless given
        values = {**PHOTOREAL_OPTIMIZE, **values}
    values["vgg_weights"] = default_vgg_weights(values.get("vgg_weights"))
    config = make_settings(OptimizeConfig, values)
    device = resolve_device("cuda" if args.cuda else "cpu")
    name = "+".join(Path(path).stem for path in config.style)
    pairs = planned_outputs(args, name)
    steps = range(config.save_every, config.steps, config.save_every) if config.save_every else ()
    snapshots = [(src, snapshot_path(dst, step)) for src, dst in pairs for step in steps]
    check_outputs_spare_inputs(pairs + snapshots, protected=config.style)
    for style in config.style:  # decoded at full size before style_size shrinks them
        decodable_dimensions(style)
        if config.photoreal_weight and is_grayscale(style):
            raise TextureNetsError(f"--photorealistic: the style image {style} is grayscale, it has no colours to "
                                   f"give the photo; pass a colour photo")
    for src, _ in pairs:
        check_picture_side(*check_vgg_memory(src, args.size or OPTIMIZE_SIZE, device),
                           config.style_layers + config.content_layers, str(src), "pass a larger --size or crop the picture")
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
                                       photoreal_weight=config.photoreal_weight,
                                       seed=args.seed, optimizer=config.optimizer,
                                       learning_rate=config.learning_rate, precision=args.precision,
                                       on_step=on_step)
        finally:
            bar.close()
        report_written(args, save_image_atomic(tensor_to_image(result), dst))
    return 0


def snapshot_path(dst: Path, step: int) -> Path:
    """Where --save_every writes the picture at `step`: <output stem>_<step>.<ext>."""
    return dst.with_name(f"{dst.stem}_{step:04d}{dst.suffix}")
