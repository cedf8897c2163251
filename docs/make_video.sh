#!/usr/bin/env bash
# Makes docs/video.gif and docs/video_strip.jpg: a camera panning and zooming over scikit-image's
# coffee photo (public domain; benchmarks/video_motion.py films it), stylized by the project's own
# command with ulyanov_starry, per-frame ('--temporal off') next to the default ('--temporal flow'):
#   python stylize.py --model ulyanov_starry --input clip.mp4 --output off.mp4  --temporal off
#   python stylize.py --model ulyanov_starry --input clip.mp4 --output flow.mp4             # flow
# video.gif: the two clips side by side (off left, flow right), 12 fps.
# video_strip.jpg: rows off and flow; columns frame 8, frame 9 of the pan, and |frame 9 − frame 8 moved
# by the camera's true motion| × 4: what changes beyond the motion, i.e. what flickers (black is steady).
# Needs scikit-image (pip install -e ".[docs]"). Usage: bash docs/make_video.sh   (~1 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python - "$tmp/clip.mp4" <<'PY'
import sys
sys.path.insert(0, "benchmarks")
from video_motion import camera_clip, skimage_photos, write_clip
photo = skimage_photos()[1]  # coffee
frames = camera_clip(photo, "pan", 10, 320, 180).frames + camera_clip(photo, "zoom", 10, 320, 180).frames[1:]
write_clip(sys.argv[1], frames, fps=12, crf=12)
PY
python stylize.py --model ulyanov_starry --input "$tmp/clip.mp4" --output "$tmp/off.mp4" --temporal off 2>/dev/null
python stylize.py --model ulyanov_starry --input "$tmp/clip.mp4" --output "$tmp/flow.mp4" 2>/dev/null
python - "$tmp" <<'PY'
import sys
import numpy as np
from PIL import Image, ImageDraw
sys.path.insert(0, "benchmarks")
from video_motion import camera_clip, read_clip, skimage_photos
from texture_nets.temporal import warp
tmp = sys.argv[1]
truth = camera_clip(skimage_photos()[1], "pan", 10, 320, 180)  # the pan's true flow, for the strip
off, flow = read_clip(f"{tmp}/off.mp4"), read_clip(f"{tmp}/flow.mp4")
gap = np.full((180, 4, 3), 255, np.uint8)
half = lambda a: Image.fromarray(a).resize((240, 135), Image.LANCZOS)  # noqa: E731 — the GIF stays small
pictures = [Image.fromarray(np.concatenate([np.asarray(half(a)), gap[:135], np.asarray(half(b))], axis=1))
            for a, b in zip(off, flow)]
palette = [p.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for p in pictures]
palette[0].save("docs/video.gif", save_all=True, append_images=palette[1:], duration=83, loop=0, optimize=True)
rows = []
for name, clip in (("off", off), ("flow", flow)):
    carried = warp(clip[8].astype(np.float32), truth.flows[8])  # frame 8 moved to where frame 9 sees it
    difference = np.clip(np.abs(clip[9] - carried) * 4, 0, 255).astype(np.uint8) * truth.masks[8][..., None]
    row = np.concatenate([clip[8], gap, clip[9], gap, difference], axis=1)
    canvas = Image.fromarray(row)
    ImageDraw.Draw(canvas).text((6, 4), f"--temporal {name}", fill=(255, 255, 255))
    rows.append(np.asarray(canvas))
strip = np.concatenate([rows[0], np.full((4, rows[0].shape[1], 3), 255, np.uint8), rows[1]], axis=0)
Image.fromarray(strip).save("docs/video_strip.jpg", quality=90)
PY
ls -la docs/video.gif docs/video_strip.jpg
