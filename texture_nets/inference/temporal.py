"""Temporal stability of stylized video: optical flow between input frames, occlusion masks, warping,
the blending of the previous stylized frame into the current one, and the warping error that measures
flicker.

A feed-forward network stylizes each frame on its own, so small changes between frames (and, for a
texture network, a new noise field each frame) become flicker. Two remedies, the `--temporal` modes:

- 'noise': one noise field for the whole clip, so the network's randomness stays put;
- 'flow': the noise field moves with the scene along the optical flow of the *input* frames
  (`CarriedNoise`), so a pan or a zoom carries its texture along instead of sliding the scene under a
  fixed noise; and the previous *output*, carried along the same flow, is blended into the current one's
  low band where the flow is reliable (`blend_carried`, --temporal_weight). Reliable means:
  the forward and backward flows agree (Sundaram, Brox & Keutzer 2010; the test Ruder et al. 2016 use
  for video style transfer) and the previous input, warped, matches the current one. Elsewhere
  (occlusions, new content at the frame's edge, flow failures) the current output is kept as it is
  and the noise is fresh, so nothing ghosts.

Blending whole outputs is what costs style: two stylizations of a moving scene have different strokes,
and their average is a paler, blurred texture (measured on a pan at weight 0.7: warping error 0.11x
that of 'off', but a style loss 2.6x). Carrying the noise costs nothing (style loss 0.97-1.02x 'off')
and does most of the work; blending the low band only (weight 0.45, σ = 2 px) adds some more for a few
% of style loss (benchmarks/README.md, "Video").

Flow is OpenCV's DIS (Kroeger et al. 2016): no learned weights to download, a few milliseconds at the
reduced resolution it runs at (FLOW_SIZE); the flow is then scaled to the output's size.

Flicker is measured as Lai et al. 2018 ("Learning Blind Video Temporal Consistency") do: the warping
error, the mean squared difference between output t and output t-1 warped to t with the input's flow,
over the pixels visible in both frames (`warping_error`).

Frames here are H,W,3 float32 arrays in 0..1 (outputs) or H,W uint8 greys (flow inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from texture_nets.core.errors import TextureNetsError

TEMPORAL_MODES = ("off", "noise", "flow")
FLOW_SIZE = 384  # longer side of the frames DIS sees: flow of 1080p costs ~10 ms, warping dominates
FLOW_PRESET = "MEDIUM"  # DIS preset (OpenCV's ULTRAFAST, FAST or MEDIUM)
DEFAULT_TEMPORAL_WEIGHT = 0.45  # share of the carried low band: flicker ≤ 0.4x 'off' at ≤ 1.1x its style loss
BLEND_SIGMA = 2.0  # pixels: the blend corrects what is coarser than this and leaves the strokes alone
CONSISTENCY = (0.01, 0.5)  # |f + b|² ≤ 0.01 (|f|² + |b|²) + 0.5 px²: Sundaram et al.'s forward–backward test
PHOTOMETRIC = 0.08  # the previous input, warped, may differ from the current one by this much (0..1 grey)


def _cv2():
    """OpenCV, imported when a flow is first needed (opencv-python-headless)."""
    try:
        import cv2  # OpenCV: loaded only for --temporal flow
    except ImportError as exc:  # pragma: no cover — a dependency of texture_nets
        raise TextureNetsError("--temporal flow needs OpenCV: pip install opencv-python-headless") from exc
    return cv2


def check_temporal(mode: str, weight: float) -> None:
    """Refuse an unknown mode or a weight outside [0, 1) (1 would freeze the first frame forever)."""
    if mode not in TEMPORAL_MODES:
        raise TextureNetsError(f"--temporal must be one of {', '.join(TEMPORAL_MODES)}, got {mode!r}")
    if not 0 <= weight < 1:  # NaN fails too
        raise TextureNetsError(f"--temporal_weight must be in [0, 1), got {weight}")


def flow_grey(frame: np.ndarray, size: int = FLOW_SIZE) -> np.ndarray:
    """An H,W,3 uint8 RGB frame as the uint8 grey picture the flow is computed on (longer side `size`)."""
    cv2 = _cv2()
    height, width = frame.shape[:2]
    scale = min(1.0, size / max(height, width))
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if scale < 1:
        grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))),
                          interpolation=cv2.INTER_AREA)
    return grey


class FlowEstimator:
    """Dense flow between two grey frames with OpenCV's DIS (one instance per clip: it keeps buffers)."""

    def __init__(self):
        cv2 = _cv2()
        self.dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{FLOW_PRESET}"))

    def __call__(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """H,W,2 flow f with source(x) ≈ target(x + f(x)) (the displacement from source to target)."""
        return self.dis.calc(source, target, None)


def grid(height: int, width: int) -> np.ndarray:
    """H,W,2 float32 pixel coordinates (x, y)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xs, ys], axis=-1)


def warp(image: np.ndarray, flow: np.ndarray, border_value: float = 0.0) -> np.ndarray:
    """`image` sampled at x + flow(x) (bilinear): the previous frame brought to the current one when
    `flow` is the current frame's backward flow. Same H,W as `flow`."""
    cv2 = _cv2()
    coordinates = grid(*flow.shape[:2]) + flow
    return cv2.remap(image, coordinates[..., 0], coordinates[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def consistent(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """H,W bool: where the backward flow (current → previous) and the forward flow (previous →
    current) at the point it lands on cancel out, and that point is inside the previous frame."""
    height, width = backward.shape[:2]
    landing = grid(height, width) + backward
    inside = ((landing[..., 0] >= 0) & (landing[..., 0] <= width - 1)
              & (landing[..., 1] >= 0) & (landing[..., 1] <= height - 1))
    forward_there = warp(forward, backward)
    mismatch = np.sum((backward + forward_there) ** 2, axis=-1)
    bound = CONSISTENCY[0] * (np.sum(backward ** 2, axis=-1) + np.sum(forward_there ** 2, axis=-1)) + CONSISTENCY[1]
    return inside & (mismatch <= bound)


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """A flow field resized to height × width, its vectors scaled with it."""
    cv2 = _cv2()
    if flow.shape[:2] == (height, width):
        return flow
    scaled = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    scaled[..., 0] *= width / flow.shape[1]
    scaled[..., 1] *= height / flow.shape[0]
    return scaled


@dataclass
class Motion:
    """The backward flow of the current frame (at the flow's resolution) and where it can be trusted."""
    backward: np.ndarray  # h,w,2: current frame → previous frame
    reliable: np.ndarray  # h,w float32 in 0..1


def frame_motion(estimator: FlowEstimator, previous: np.ndarray, current: np.ndarray) -> Motion:
    """Flow from the current grey frame back to the previous one, trusted where the forward–backward
    test passes and the previous frame, warped, looks like the current one."""
    cv2 = _cv2()
    backward, forward = estimator(current, previous), estimator(previous, current)
    reliable = consistent(backward, forward)
    difference = np.abs(warp(previous, backward).astype(np.float32) - current.astype(np.float32)) / 255
    reliable &= cv2.GaussianBlur(difference, (0, 0), 1.0) <= PHOTOMETRIC
    mask = reliable.astype(np.float32)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # flow is least sure next to a disocclusion
    return Motion(backward, cv2.GaussianBlur(mask, (0, 0), 1.5))  # soft edges: no seam where it switches


class MotionTracker:
    """The input's motion, frame after frame: call it on every frame, in order; it returns the
    `Motion` from this frame back to the one before (None for the first frame or after a size change)."""

    def __init__(self, flow_size: int = FLOW_SIZE):
        self.flow_size = flow_size
        self.estimator = FlowEstimator()
        self.previous: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> Motion | None:
        """`frame`: H,W,3 uint8 RGB."""
        grey = flow_grey(frame, self.flow_size)
        motion = None
        if self.previous is not None and self.previous.shape == grey.shape:
            motion = frame_motion(self.estimator, self.previous, grey)
        self.previous = grey
        return motion


class CarriedNoise:
    """Where each pixel's noise comes from, carried along the input's motion, so that the noise a
    texture network sees moves with the scene instead of staying put while the scene moves under it
    (the 'flow' mode's main remedy: a pan, zoom or rotation then keeps its texture, at no cost in
    style). Each pixel holds a position on a noise canvas twice the frame's size per side; a frame's
    positions are the previous frame's, fetched along the backward flow (positions move by fractions of a
    pixel); where the flow is not reliable, pixels get fresh positions. Every scale reads the canvas
    at its own resolution with `sample_noise`, so the noise glides with the scene at every scale
    (reading the nearest cell instead makes the coarse scales jump a whole cell at once: measured,
    the warping error of a pan was 0.51x that of 'off' with nearest cells)."""

    def __init__(self, frame_size: tuple[int, int], padded_size: tuple[int, int], rng: np.random.Generator):
        """frame_size: (height, width) of the frames; padded_size: the network's (noise) size, at least that."""
        self.frame_size, self.padded_size, self.rng = frame_size, padded_size, rng
        self.positions: np.ndarray | None = None  # h,w,2 at the flow's resolution, in frame pixels

    def _identity(self, height: int, width: int) -> np.ndarray:
        """Positions in frame pixels of the centres of a height × width grid laid over the frame."""
        scale = np.array([self.frame_size[1] / width, self.frame_size[0] / height], np.float32)
        return (grid(height, width) + 0.5) * scale - 0.5

    def follow(self, motion: Motion | None) -> None:
        """Move the positions along `motion` (None: a first frame, nothing moves). Works at the flow's
        resolution: positions vary smoothly, so they are resized, not recomputed, per scale."""
        if motion is None:
            return
        height, width = motion.backward.shape[:2]
        identity = self._identity(height, width)
        if self.positions is None or self.positions.shape[:2] != (height, width):
            self.positions = identity
        moved = warp(self.positions, motion.backward, border_value=-1e9)
        offset = self.rng.integers(0, [2 * self.padded_size[1], 2 * self.padded_size[0]]).astype(np.float32)
        keep = (motion.reliable > 0.5) & (moved[..., 0] > -1e8)
        self.positions = np.where(keep[..., None], moved, identity + offset)

    def points(self, scale: int) -> np.ndarray:
        """h,w,2 canvas positions (x, y), in cells of the 2^scale-times smaller noise, that each of its
        pixels reads (the padding below and right of the frame repeats the frame's edge)."""
        cv2 = _cv2()
        step = 2 ** scale
        height, width = self.padded_size[0] // step, self.padded_size[1] // step
        inside = (min(height, max(1, round(self.frame_size[0] / step))),
                  min(width, max(1, round(self.frame_size[1] / step))))
        if self.positions is None:
            at = self._identity(*inside)
        else:
            at = cv2.resize(self.positions, (inside[1], inside[0]), interpolation=cv2.INTER_LINEAR)
        if step > 1:
            at = (at + 0.5) / step - 0.5
        return _pad_edges(at, height, width)


def sample_noise(canvas: np.ndarray, points: np.ndarray) -> np.ndarray:
    """h,w,C noise read from an H,W,C white-noise `canvas` (wrapping around) at fractional `points`:
    bilinear (OpenCV's remap), divided by the root of the sum of the squared weights, so that every
    pixel keeps unit variance whatever its fraction (plain bilinear would weaken the noise between
    cells by up to 4x in variance, and make it pulse as the scene moves)."""
    cv2 = _cv2()
    x, y = np.ascontiguousarray(points[..., 0]), np.ascontiguousarray(points[..., 1])
    # Σ w² = ((1 − fx)² + fx²)((1 − fy)² + fy²) = (1 − 2 fx (1 − fx))(1 − 2 fy (1 − fy)), in place
    norm = _weight_square_sum(x) * _weight_square_sum(y)
    np.sqrt(norm, out=norm)
    groups = [np.ascontiguousarray(canvas[..., c:c + 4]) for c in range(0, canvas.shape[2], 4)]  # ≤ 4 channels
    parts = [cv2.remap(g, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP) for g in groups]
    sampled = parts[0].reshape(*x.shape, -1) if len(parts) == 1 else np.concatenate(
        [p.reshape(*x.shape, -1) for p in parts], axis=-1)
    sampled /= norm[..., None]
    return sampled


def _weight_square_sum(coordinate: np.ndarray) -> np.ndarray:
    """(1 − f)² + f² of each coordinate's fraction f, as 1 − 2 f (1 − f)."""
    fraction = coordinate - np.floor(coordinate)
    other = 1 - fraction
    fraction *= other
    fraction *= -2
    fraction += 1
    return fraction


def _pad_edges(field: np.ndarray, height: int, width: int) -> np.ndarray:
    """`field` (h,w or h,w,≤4) extended to height × width by repeating its last row and column."""
    pad_h, pad_w = max(0, height - field.shape[0]), max(0, width - field.shape[1])
    if pad_h == 0 and pad_w == 0:
        return field
    return _cv2().copyMakeBorder(field, 0, pad_h, 0, pad_w, _cv2().BORDER_REPLICATE)


def blend_carried(stylized: np.ndarray, previous_output: np.ndarray | None, motion: Motion | None,
                  weight: float, sigma: float = BLEND_SIGMA) -> np.ndarray:
    """output_t = stylized_t + w·m · G_σ(warp(output_{t−1}) − stylized_t): the previous output,
    carried along the input's flow, pulls the current one towards it where the flow is reliable (m),
    with the share `weight` (w), in the low band only (G_σ: a Gaussian blur of σ pixels). The
    current frame keeps its own strokes: averaging two frames' strokes instead makes a paler, blurred
    texture (measured: a full-band blend at w = 0.2 cut a pan's warping error to 0.27x of 'off' but
    raised the style loss 1.35x; this one at w = 0.45, 0.40x for 1.09x). The result is clamped to
    0..1: the blurred pull can overshoot next to an edge (a white previous frame over a dark one),
    and the frame is both encoded and carried on to the next."""
    if previous_output is None or motion is None or weight <= 0 or previous_output.shape != stylized.shape:
        return stylized
    cv2 = _cv2()
    height, width = stylized.shape[:2]
    keep = weight * resize_flow_mask(motion.reliable, height, width)
    carried = warp(previous_output, resize_flow(motion.backward, height, width))
    carried -= stylized
    pull = cv2.GaussianBlur(carried, (0, 0), sigma)
    pull *= keep[..., None]
    pull += stylized
    return np.clip(pull, 0, 1, out=pull)


def resize_flow_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A reliability mask resized (bilinear) to height × width."""
    cv2 = _cv2()
    if mask.shape[:2] == (height, width):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)


def warping_error(outputs: list[np.ndarray], flows: list[np.ndarray], masks: list[np.ndarray]) -> float:
    """Lai et al. 2018's warping error: the mean over t ≥ 1 of the mean squared difference between
    outputs[t] and outputs[t−1] warped by flows[t−1] (the input's backward flow of frame t), over the
    pixels masks[t−1] marks as visible in both frames (and over the three channels). Outputs in 0..1."""
    if len(outputs) < 2:
        raise ValueError("the warping error needs at least two frames")
    errors = []
    for t in range(1, len(outputs)):
        flow, mask = flows[t - 1], masks[t - 1].astype(np.float32)
        warped = warp(outputs[t - 1], resize_flow(flow, *outputs[t].shape[:2]))
        mask = resize_flow_mask(mask, *outputs[t].shape[:2])
        squared = np.mean((outputs[t] - warped) ** 2, axis=-1)
        errors.append(float(np.sum(mask * squared) / max(float(np.sum(mask)), 1.0)))
    return float(np.mean(errors))
