#!/usr/bin/env python
"""Video: flicker, what stability costs, speed and memory of `stylize.py` on clips, per --temporal mode.

    python benchmarks/video_stability.py                       # everything (about 15 minutes on 2 cores)
    python benchmarks/video_stability.py --only flicker --frames 12 --styles mosaic   # a short trial

Flicker (`--only flicker`): four clips filmed from scikit-image photos by a virtual camera
(benchmarks/video_motion.py: a pan, a zoom, a 0.6°/frame rotation, a disc moving over a still
photo), --frames frames at --width × --height, encoded with x264 (CRF 12) and read back as a user's
clip would be. Each is stylized by `texture_nets.video.stylize_clip` (as stylize.py runs it: ONNX
Runtime, batches of 4; each style's checkpoint read once) in each mode and decoded again.
- warping error (Lai et al. 2018): mean over frames of the mean squared difference (RGB in 0..1)
  between output t and output t−1 warped to t by the clip's *true* backward flow, over the pixels
  visible in both frames. The true flow, not the DIS flow the 'flow' mode uses, so the figure does not
  favour the method that estimates it. The input clip's own error is the floor (resampling, codec).
- style / content: the training loss at unit weights (benchmarks/quality.py: relative Gram error over
  relu1_1…relu5_1 against the style image at the checkpoint's style_size, relative relu4_2 error
  against the input frame), Caffe VGG-19 from ../shared, every --score_every-th frame.

Speed (`--only speed`): frames/s of a pan clip of --speed_frames frames at 640×360, 1280×720 and
1920×1080 per mode, ONNX Runtime engine, with the time split into decoding (demux, decode, resize to
RGB), network (batch of 4, with colour handling), flow (DIS at 384 px, warping, blending) and encoding
(x264 CRF 18 medium, muxing). Run it on a quiet machine.

Memory (`--only memory`): peak RSS of a child process stylizing a short and a 20× longer clip at
640×360 (streaming: the two should match).

Results: benchmarks/results/video_cpu.json and the markdown printed (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from video_motion import camera_clip, motion_clips, read_clip, skimage_photos, write_clip  # noqa: E402

from texture_nets.core.checkpoint import (
    load_generator,  # noqa: E402
    resolve_model,
)
from texture_nets.inference.engine import prepare_generator
from texture_nets.inference.options import VideoOptions
from texture_nets.inference.temporal import DEFAULT_TEMPORAL_WEIGHT, TEMPORAL_MODES, warping_error  # noqa: E402
from texture_nets.inference.video import stylize_clip

RESULTS = ROOT / "benchmarks" / "results"
SPEED_SIZES = {"640x360": (640, 360), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}


def style_scorer(style: str):
    """The training loss of a shipped style at unit weights (quality.py), or None without ../shared."""
    import quality
    if not quality.VGG.is_file():
        return None
    style_size = quality.recipe(style).get("style_size", 256)
    criterion = quality.scoring_loss(style, style_size)
    return lambda picture, photo: quality.score(criterion, picture, photo)


def as_batch(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0)


def flicker_rows(args, folder: Path) -> list[dict]:
    """Warping error, style and content loss per style, clip and mode."""
    clips = motion_clips(skimage_photos(), args.frames, args.width, args.height)
    rows = []
    for style in args.styles:
        scorer = style_scorer(style)
        generator = network(style)
        for clip in clips:
            source = write_clip(folder / f"{clip.name}.mp4", clip.frames, crf=12)
            frames_in = read_clip(source, as_float=True)
            row = {"style": style, "clip": clip.name, "input": warping_error(frames_in, clip.flows, clip.masks)}
            for mode, weight in modes(args.weights):
                out = folder / f"{clip.name}_{style}_{mode}.mp4"
                stylize_clip(generator, source, out, VideoOptions(temporal=mode.split()[0], temporal_weight=weight))
                frames_out = read_clip(out, as_float=True)
                row[mode] = warping_error(frames_out, clip.flows, clip.masks)
                if scorer is not None:
                    scores = [scorer(as_batch(o), as_batch(i)) for o, i in
                              zip(frames_out[::args.score_every], frames_in[::args.score_every])]
                    row[f"{mode}_style"] = float(np.mean([s["style"] for s in scores]))
                    row[f"{mode}_content"] = float(np.mean([s["content"] for s in scores]))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def modes(weights: list[float]) -> list[tuple[str, float]]:
    """(label, temporal_weight) of each run: 'off', 'noise', then 'flow w' per weight."""
    return [("off", DEFAULT_TEMPORAL_WEIGHT), ("noise", DEFAULT_TEMPORAL_WEIGHT)] + [(f"flow {w:g}", w) for w in weights]


def network(style: str):
    """A style's generator, loaded once (the file read now is the one measured throughout), ready to
    run as stylize.py runs it (ONNX Runtime on the CPU)."""
    return prepare_generator(load_generator(resolve_model(style)), "cpu", engine="auto")


def speed_rows(args, folder: Path) -> list[dict]:
    """Frames per second and the per-stage split, per size and mode."""
    photo = skimage_photos()[0]
    generator = network(args.speed_style)
    rows = []
    for label, (width, height) in SPEED_SIZES.items():
        clip = camera_clip(photo, "pan", args.speed_frames, width, height)
        source = write_clip(folder / f"speed_{label}.mp4", clip.frames, crf=18)
        stylize_clip(generator, source, folder / "warm.mp4", VideoOptions())  # first-call costs
        for mode in TEMPORAL_MODES:
            report = stylize_clip(generator, source, folder / f"speed_{label}_{mode}.mp4", VideoOptions(temporal=mode))
            per_frame = {k: 1000 * v / report.frames for k, v in report.seconds.items()}
            row = {"size": label, "mode": mode, "frames": report.frames, "fps": report.frames_per_second,
                   **{f"ms_{k}": v for k, v in per_frame.items()}}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


MEMORY_CHILD = """
import resource, sys
from texture_nets.video import stylize_video
stylize_video(sys.argv[1], sys.argv[2], sys.argv[3], temporal="flow", engine="auto")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def memory_rows(args, folder: Path) -> list[dict]:
    """Peak RSS of stylizing a short and a long clip at 640×360, each in a fresh process."""
    photo = skimage_photos()[1]
    rows = []
    for frames in (args.memory_frames, 20 * args.memory_frames):
        clip = camera_clip(photo, "pan", min(frames, 48), 640, 360)
        looped = [clip.frames[i % len(clip.frames)] for i in range(frames)]
        source = write_clip(folder / f"memory_{frames}.mp4", looped, crf=18)
        result = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(source), str(folder / f"m{frames}.mp4"),
                                 args.speed_style], capture_output=True, text=True, check=True, cwd=ROOT)
        row = {"frames": frames, "seconds": frames / 24, "peak_rss_mb": int(result.stdout.split()[-1]) / 2**20}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def markdown(results: dict) -> str:
    """The tables of benchmarks/README.md."""
    lines = []
    if results.get("flicker"):
        lines += ["| style | clip | mode | warping error | × off | style loss | × off | content loss |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in results["flicker"]:
            lines.append(f"| {r['style']} | {r['clip']} | input | {r['input']:.5f} | | | | |")
            for mode in [k for k in r if k not in ("style", "clip", "input") and not k.endswith(("_style", "_content"))]:
                style, off_style = r.get(f"{mode}_style", float("nan")), r.get("off_style", float("nan"))
                lines.append(f"| | | {mode} | {r[mode]:.5f} | {r[mode] / r['off']:.2f} | {style:.3f} | "
                             f"{style / off_style:.2f} | {r.get(f'{mode}_content', float('nan')):.3f} |")
        lines.append("")
    if results.get("speed"):
        lines += ["| size | mode | frames/s | decode ms | network ms | flow ms | encode ms |",
                  "|---|---|---|---|---|---|---|"]
        for r in results["speed"]:
            lines.append(f"| {r['size']} | {r['mode']} | {r['fps']:.2f} | {r['ms_decode']:.1f} | {r['ms_network']:.1f} "
                         f"| {r['ms_flow']:.1f} | {r['ms_encode']:.1f} |")
        lines.append("")
    if results.get("memory"):
        lines += ["| clip at 640×360 | peak RSS |", "|---|---|"]
        lines += [f"| {r['frames']} frames ({r['seconds']:.0f} s) | {r['peak_rss_mb']:.0f} MB |" for r in results["memory"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--only", choices=("flicker", "speed", "memory"))
    parser.add_argument("--styles", default="ulyanov_starry,mosaic")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--score_every", type=int, default=4)
    parser.add_argument("--weights", default=f"0,0.2,{DEFAULT_TEMPORAL_WEIGHT}",
                        help="--temporal_weight values of the flow mode to compare")
    parser.add_argument("--speed_frames", type=int, default=16)
    parser.add_argument("--speed_style", default="ulyanov_starry")
    parser.add_argument("--memory_frames", type=int, default=24)
    parser.add_argument("--output", help="JSON (default: benchmarks/results/video_cpu.json; merged with what is there)")
    args = parser.parse_args(argv)
    args.styles = [s for s in args.styles.split(",") if s]
    args.weights = [float(w) for w in args.weights.split(",") if w]
    output = Path(args.output or RESULTS / "video_cpu.json")
    results = json.loads(output.read_text()) if output.is_file() else {}
    results.setdefault("commands", {})
    with tempfile.TemporaryDirectory(prefix="texture_nets_video_") as tmp:
        for part, rows in (("flicker", flicker_rows), ("speed", speed_rows), ("memory", memory_rows)):
            if args.only in (None, part):
                started = time.perf_counter()
                results[part] = rows(args, Path(tmp))
                results["commands"][part] = " ".join(sys.argv)
                print(f"{part}: {time.perf_counter() - started:.0f} s", flush=True)
    results["machine"] = {"threads": torch.get_num_threads(), "torch": torch.__version__, "av": av.__version__}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    print(f"\nwritten: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
