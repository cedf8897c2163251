"""A camera for headless Chromium: a Y4M clip of a scikit-image photo moving, for
--use-file-for-fake-video-capture (Chromium loops it as the camera's picture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CAMERA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def panning_frames(width: int, height: int, frames: int) -> list[np.ndarray]:
    """`frames` RGB frames of width × height: a window sliding across scikit-image's coffee photo
    (a real photo's colours and edges, moving as a hand-held camera would)."""
    from skimage import data  # scikit-image: the dev extra's sample photos
    photo = Image.fromarray(data.coffee())
    scale = (height * 1.25) / photo.height
    wide = np.asarray(photo.resize((max(round(photo.width * scale), width + frames), round(photo.height * scale))))
    step = (wide.shape[1] - width) / max(1, frames - 1)
    top = (wide.shape[0] - height) // 2
    lefts = [round(i * step) for i in range(frames)]
    return [np.ascontiguousarray(wide[top:top + height, left:left + width]) for left in lefts]


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    """RGB frames as an uncompressed Y4M clip (4:2:0, full-range BT.601, as C420jpeg says)."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            rgb = frame.astype(np.float32)
            y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
            u = 128 - 0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
            v = 128 + 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]
            sub = [c.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)) for c in (u, v)]
            out.write(b"FRAME\n")
            for plane in (y, *sub):
                out.write(np.clip(np.round(plane), 0, 255).astype(np.uint8).tobytes())
    return path


def camera_clip(folder: Path, width: int = 320, height: int = 240, frames: int = 45) -> Path:
    """A Y4M clip in `folder` (made once per size) for Chromium's fake camera."""
    path = Path(folder) / f"camera_{width}x{height}.y4m"
    return path if path.is_file() else write_y4m(path, panning_frames(width, height, frames))
