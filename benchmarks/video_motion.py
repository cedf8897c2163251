"""Clips with known motion, made from still photos as a camera would film them: a pan, a zoom, a small
rotation, and an object moving over a still background. Each frame comes with its exact backward
flow (frame t → frame t−1) and the mask of pixels visible in both frames, so flicker is measured with
the true motion (Lai et al.'s warping error), not with the flow the 'flow' mode itself estimates.

Frames are H,W,3 uint8; flows H,W,2 float32 (x, y); masks H,W bool. write_clip / read_clip turn
frames into the file a user would bring and back (the tests, the video benchmark and docs/make_video.sh
share them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

MOTIONS = ("pan", "zoom", "rotate", "object")
TONE_RATE = 22050  # the sample rate of write_clip's audio


@dataclass
class MotionClip:
    """Frames of a clip and, for each frame t ≥ 1, its true backward flow and two-frame visibility."""
    name: str
    frames: list[np.ndarray]
    flows: list[np.ndarray]  # flows[t-1]: frame t → frame t−1
    masks: list[np.ndarray]  # masks[t-1]: visible in frames t and t−1


def _grid(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([xs, ys, np.ones_like(xs)], axis=-1)


def _camera(t: int, motion: str, width: int, height: int) -> np.ndarray:
    """2×3 matrix taking frame-t pixel coordinates to source-photo coordinates (the source is twice
    the frame's size, the frame starts centred in it)."""
    cx, cy = width, height  # the source's centre
    if motion == "pan":
        angle, scale, shift = 0.0, 1.0, (3.0 * t, 1.0 * t)
    elif motion == "zoom":
        angle, scale, shift = 0.0, 1.0 / (1.0 + 0.012 * t), (0.0, 0.0)
    elif motion == "rotate":
        angle, scale, shift = np.deg2rad(0.6 * t), 1.0, (0.0, 0.0)
    else:  # still camera
        angle, scale, shift = 0.0, 1.0, (0.0, 0.0)
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    offset_x, offset_y = width / 2, height / 2  # frame pixel → about the frame's centre → rotated, scaled
    return np.array([[c, -s, cx + shift[0] - c * offset_x + s * offset_y],
                     [s, c, cy + shift[1] - s * offset_x - c * offset_y]])


def camera_clip(photo: np.ndarray, motion: str, frames: int, width: int, height: int) -> MotionClip:
    """A pan, zoom or rotation over `photo` (resized to twice the frame), with its true flow."""
    source = cv2.resize(photo, (2 * width, 2 * height), interpolation=cv2.INTER_CUBIC)
    pictures, flows, masks = [], [], []
    grid = _grid(height, width)
    for t in range(frames):
        matrix = _camera(t, motion, width, height)
        pictures.append(cv2.warpAffine(source, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                       borderMode=cv2.BORDER_REFLECT))
        if t == 0:
            continue
        at_source = grid @ matrix.T  # H,W,2 source coordinates of frame t's pixels
        previous = np.vstack([_camera(t - 1, motion, width, height), [0, 0, 1]])
        back = np.concatenate([at_source, np.ones_like(at_source[..., :1])], axis=-1) @ np.linalg.inv(previous).T
        flow = (back[..., :2] - grid[..., :2]).astype(np.float32)
        inside = (back[..., 0] >= 0) & (back[..., 0] <= width - 1) & (back[..., 1] >= 0) & (back[..., 1] <= height - 1)
        flows.append(flow)
        masks.append(inside)
    return MotionClip(motion, pictures, flows, masks)


def object_clip(background: np.ndarray, thing: np.ndarray, frames: int, width: int, height: int) -> MotionClip:
    """A round cut-out of `thing` moving across a still `background`, with its true flow: the
    object's own motion inside it, none outside, and the background it uncovers masked out."""
    ground = cv2.resize(background, (width, height), interpolation=cv2.INTER_AREA)
    radius = max(4, min(width, height) // 4)
    patch = cv2.resize(thing, (2 * radius, 2 * radius), interpolation=cv2.INTER_AREA)
    ys, xs = np.mgrid[0:2 * radius, 0:2 * radius]
    disc = (xs - radius + 0.5) ** 2 + (ys - radius + 0.5) ** 2 <= radius ** 2
    step = max(1, width // 60)

    def place(t: int) -> tuple[int, int]:
        return width // 8 + step * t, height // 2 - radius + t // 2

    def covered(t: int) -> np.ndarray:
        mask = np.zeros((height, width), bool)
        x, y = place(t)
        mask[y:y + 2 * radius, x:x + 2 * radius] = disc[:max(0, min(2 * radius, height - y)), :max(0, min(2 * radius, width - x))]
        return mask

    pictures, flows, masks = [], [], []
    for t in range(frames):
        picture = ground.copy()
        x, y = place(t)
        region = picture[y:y + 2 * radius, x:x + 2 * radius]
        shape = region.shape[:2]
        region[disc[:shape[0], :shape[1]]] = patch[:shape[0], :shape[1]][disc[:shape[0], :shape[1]]]
        pictures.append(picture)
        if t == 0:
            continue
        (px, py), now, before = place(t - 1), covered(t), covered(t - 1)
        flow = np.zeros((height, width, 2), np.float32)
        flow[now] = (px - x, py - y)
        flows.append(flow)
        masks.append(now | ~before)  # background the object covered a frame ago is new
    return MotionClip("object", pictures, flows, masks)


def motion_clips(photos: list[np.ndarray], frames: int, width: int, height: int) -> list[MotionClip]:
    """The four clips of MOTIONS from (at least two) photos."""
    clips = [camera_clip(photos[i % len(photos)], motion, frames, width, height)
             for i, motion in enumerate(MOTIONS[:3])]
    clips.append(object_clip(photos[0], photos[1 % len(photos)], frames, width, height))
    return clips


def skimage_photos() -> list[np.ndarray]:
    """scikit-image's colour sample photos (public domain), as RGB uint8."""
    from skimage import data
    return [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 24, crf: int | None = None,
               audio: bool = False, options: dict | None = None, rotation: int = 0) -> Path:
    """Encode RGB uint8 frames as an H.264 (yuv420p) clip at `crf` (None: x264's default), with a
    440 Hz mono AAC tone as long as the video if `audio`; `options` go to the container (e.g.
    movflags). `rotation`: a display matrix turning the stored frames that many degrees counter-
    clockwise for showing, as phones write. The container is chosen by the path's extension."""
    with av.open(str(path), "w", options=options or {}) as container:
        video = container.add_stream("libx264", rate=fps, options={} if crf is None else {"crf": str(crf)})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=TONE_RATE, layout="mono") if audio else None
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            for chunk in _tone(seconds=len(frames) / fps):
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return Path(path)



def _tone(seconds: float) -> list[av.AudioFrame]:
    """A 440 Hz mono sine of `seconds` at TONE_RATE, in frames of 1024 samples."""
    samples = int(TONE_RATE * seconds)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / TONE_RATE)).astype(np.float32)
    chunks = []
    for start in range(0, samples, 1024):
        chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="flt", layout="mono")
        chunk.sample_rate = TONE_RATE
        chunks.append(chunk)
    return chunks


def read_clip(path: Path, as_float: bool = False) -> list[np.ndarray]:
    """Every frame of a clip as H,W,3 RGB: uint8 as decoded, or float32 in 0..1 if `as_float`."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return [frame.astype(np.float32) / 255 for frame in frames] if as_float else frames
