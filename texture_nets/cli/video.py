"""The video side of `stylize.py --model`: the options of clips (--temporal, --temporal_weight,
--batch_size) and the loop over the videos among the inputs, each with a progress bar in frames.

Photos and videos mix freely in --input (files and folders); a video is a file with a video extension
or an animated GIF (texture_nets.video.is_video), and its output is a video of its output's extension.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.images import image_format
from texture_nets.inference.temporal import DEFAULT_TEMPORAL_WEIGHT, TEMPORAL_MODES
from texture_nets.inference.video import DEFAULT_BATCH, VIDEO_EXTENSIONS, VideoOptions, is_video, probe, stylize_clip

VIDEO_ONLY = ("temporal", "temporal_weight", "batch_size")  # refused with --optimize


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of video inputs (defaults None, so that --optimize can refuse them when given)."""
    group = parser.add_argument_group(
        "videos", f"inputs with a video extension ({', '.join(VIDEO_EXTENSIONS)}) or animated GIFs are "
        "stylized frame by frame into a video of the output's extension, keeping frame rate, frame count "
        "and audio; --size, --seed, --noise_factor, --preserve_colors, --engine and --cuda apply as for photos")
    group.add_argument("--temporal", choices=TEMPORAL_MODES,
                       help="flicker control: 'off' (new noise every frame, as per-frame stylization), 'noise' "
                            "(one noise field for the clip), 'flow' (default: also carry the previous stylized "
                            "frame along the input's optical flow where the flow is reliable)")
    group.add_argument("--temporal_weight", type=float,
                       help=f"with --temporal flow: share of the carried frame, 0 ≤ w < 1 (default "
                            f"{DEFAULT_TEMPORAL_WEIGHT}; higher = steadier, lower = closer to each frame's own stylization)")
    group.add_argument("--batch_size", type=int, help=f"frames per forward pass (default {DEFAULT_BATCH})")


def video_options(args: argparse.Namespace, memory_limit: int | None = None) -> VideoOptions:
    """The clip settings the flags ask for (defaults filled in)."""
    return VideoOptions(size=args.size, noise_factor=args.noise_factor, seed=args.seed,
                        temporal=args.temporal or "flow",
                        temporal_weight=DEFAULT_TEMPORAL_WEIGHT if args.temporal_weight is None else args.temporal_weight,
                        preserve_colors=args.preserve_colors, batch_size=DEFAULT_BATCH if args.batch_size is None else args.batch_size,
                        memory_limit=memory_limit)


def check_video_args(args: argparse.Namespace) -> None:
    """Refuse absurd video options before any work (they are checked even when no input is a video)."""
    if args.temporal_weight is not None and args.temporal not in (None, "flow"):
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
