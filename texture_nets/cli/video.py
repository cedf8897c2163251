"""The video side of `stylize.py --model`: the options of clips (--temporal, --temporal_weight,
--batch_size) and the loop over the videos among the inputs, each with a progress bar in frames.

Photos and videos mix freely in --input (files and folders); a video is a file with a video extension
or an animated GIF (texture_nets.video.is_video), and its output is a video of its output's extension.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from tqdm import tqdm

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import image_format
from texture_nets.core.settings import add_config_arguments
from texture_nets.inference.options import StylizeOptions, VideoOptions
from texture_nets.inference.video import VIDEO_EXTENSIONS, is_video, probe, stylize_clip

VIDEO_ONLY = ("temporal", "temporal_weight", "batch_size")  # VideoOptions' own flags: refused with --optimize


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of video inputs, generated from VideoOptions' own fields (the picture options are
    stylize.py's: StylizeOptions)."""
    group = parser.add_argument_group(
        "videos", f"inputs with a video extension ({', '.join(VIDEO_EXTENSIONS)}) or animated GIFs are "
        "stylized frame by frame into a video of the output's extension, keeping frame rate, frame count "
        "and audio; --size, --seed, --noise_factor, --preserve_colors, --engine and --cuda apply as for photos")
    add_config_arguments(group, VideoOptions, exclude=tuple(f.name for f in fields(StylizeOptions)))


def style_choice(args: argparse.Namespace) -> str:
    """--style with --model: the style of a network of several, or a blend ('mosaic=0.7,candy=0.3')."""
    return ",".join(getattr(args, "style", []))


def video_options(args: argparse.Namespace, memory_limit: int | None = None) -> VideoOptions:
    """The clip settings the flags ask for (defaults filled in by stylize.py's `with_defaults`)."""
    return VideoOptions(**{f.name: getattr(args, f.name) for f in fields(VideoOptions) if "help" in f.metadata},
                        style=style_choice(args), memory_limit=memory_limit)


def check_video_args(args: argparse.Namespace) -> None:
    """Refuse absurd video options before any work (they are checked even when no input is a video)."""
    if "temporal_weight" in args.given and args.temporal != "flow":
        raise TextureNetsError(f"--temporal_weight applies to --temporal flow, not {args.temporal}")
    video_options(args).check()


def split_videos(pairs: list[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(photo pairs, video pairs); a video's output must be a video file and a photo's a picture in a
    format there is (checked now: found at saving time, it would cost the stylization first)."""
    photos, videos = [], []
    for src, dst in pairs:
        (videos if is_video(src) else photos).append((src, dst))
    for src, dst in videos:
        if dst.suffix.lower() not in VIDEO_EXTENSIONS:
            raise TextureNetsError(f"{src} is a video: its --output must be a video file "
                                   f"({', '.join(VIDEO_EXTENSIONS)}), not {dst.name}")
    for src, dst in photos:
        if dst.suffix.lower() in VIDEO_EXTENSIONS and dst.suffix.lower() != ".gif":
            raise TextureNetsError(f"{src} is a photo: its --output must be a picture, not {dst.name}")
        image_format(dst)
    return photos, videos


def stylize_videos(generator, pairs: list[tuple[Path, Path]], args: argparse.Namespace,
                   memory_limit: int | None, on_error=None) -> list[Path]:
    """Stylize each (video, output) pair with a progress bar in frames; a clip that cannot be read is
    reported to `on_error` (or raised). Returns the files written."""

    options = video_options(args, memory_limit)
    written = []
    for src, dst in pairs:
        try:
            info = probe(src)
            with tqdm(total=info.frames or None, desc=src.name, unit="frame", dynamic_ncols=True,
                      file=sys.stderr) as bar:
                report = stylize_clip(generator, src, dst, options, progress=bar.update, info=info)
        except TextureNetsError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        if report.audio and report.audio != "copied":
            print(f"warning: {src.name}: audio {report.audio}", file=sys.stderr)
        written.append(report.path)
    return written
