"""Video stylization, streamed: decode → stylize in small batches → temporal smoothing → encode.

FFmpeg comes with PyAV's wheel (no system ffmpeg needed): anything FFmpeg reads goes in (mp4, mov,
webm, avi, mkv, animated GIF, ...); the output's extension picks the encoder (ENCODERS). Frames are
decoded, stylized `batch_size` at a time and encoded as they go, so memory does not grow with the
clip's length. Each frame keeps its timestamp (frame rate and count kept, variable rates too); the
audio track is copied packet by packet where the output container takes its codec, else re-encoded
(said in the report). The output is written to a temporary name and renamed at the end: Ctrl-C or a
clip that breaks half-way leaves nothing under the output's name.

Temporal modes (temporal.py): 'off' draws new noise every frame (per-frame stylization, as the
papers' code does), 'noise' one noise field for the whole clip, 'flow' (the default) also carries
the previous output along the input's optical flow.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output, check_outputs_spare_inputs
from texture_nets.core.images import resized_dimensions
from texture_nets.inference.engine import (
    Engine,
    feed_forward_color_method,
    stylize_bytes,
)
from texture_nets.inference.options import EngineOptions, VideoOptions
from texture_nets.inference.temporal import (
    CarriedNoise,
    Motion,
    MotionTracker,
    blend_carried,
    sample_noise,
)

MISSING_FRAMES_TOLERATED = 2  # decoders may drop a frame or two an mp4 declares (edit lists)


@dataclass(frozen=True)
class Encoder:
    """How a container is written: the video codec, its pixel format and options; the audio codecs
    it takes as they are (None: any) and the one audio is re-encoded to otherwise (None: dropped)."""
    codec: str
    pix_fmt: str
    options: dict = field(default_factory=dict)
    audio_copy: frozenset | None = None
    audio_codec: str | None = "aac"


# H.264 at CRF 18 ("visually lossless", x264's guide) with the medium preset; VP9 at CRF 31 in
# constant-quality mode (Google's recommendation for 720p/1080p); GIF with a 256-colour palette per frame
H264 = dict(codec="libx264", pix_fmt="yuv420p", options={"crf": "18", "preset": "medium"})
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"})
ENCODERS = {
    ".mp4": Encoder(**H264, audio_copy=MP4_AUDIO),
    ".m4v": Encoder(**H264, audio_copy=MP4_AUDIO),
    ".mov": Encoder(**H264, audio_copy=MP4_AUDIO | {"pcm_s16le", "pcm_s24le", "pcm_f32le"}),
    ".mkv": Encoder(**H264),
    ".avi": Encoder(**H264, audio_copy=frozenset({"mp3", "ac3", "aac", "pcm_s16le"}), audio_codec="mp3"),
    ".webm": Encoder("libvpx-vp9", "yuv420p", {"crf": "31", "b": "0", "row-mt": "1", "cpu-used": "4"},
                     audio_copy=frozenset({"opus", "vorbis"}), audio_codec="libopus"),
    ".gif": Encoder("gif", "pal8", audio_copy=frozenset(), audio_codec=None),
}
VIDEO_EXTENSIONS = tuple(ENCODERS)


def _av():
    """PyAV, imported when a video is first read or written."""
    try:
        import av  # PyAV: loaded only when a video is read or written
    except ImportError as exc:  # pragma: no cover — a dependency of texture_nets
        raise TextureNetsError("videos need PyAV: pip install av") from exc
    return av


def is_video(path: str | os.PathLike) -> bool:
    """Whether a file is a clip to stylize as a video: a video extension, or a GIF with several frames."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix != ".gif":
        return suffix in VIDEO_EXTENSIONS
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except OSError:
        return False


@dataclass(frozen=True)
class ClipInfo:
    """What a video's header says: size (upright, as a player shows it), frame rate, frames (0: not
    declared), seconds, audio codec."""
    width: int
    height: int
    fps: Fraction
    frames: int
    duration: float | None
    audio: str | None
    video_duration: float | None = None  # of the video stream alone, where known (for cut-off checks)
    quarter_turns: int = 0  # counter-clockwise turns that bring the stored picture upright (phone clips)
    file_seconds: float | None = None  # the longest of the container and every stream (audio may outlast video)


def probe(path: str | os.PathLike, check_size: Callable[[int, int], None] | None = None) -> ClipInfo:
    """The header of the video at `path`, or one clear error if it is not a video FFmpeg reads.
    `check_size(width, height)`: called with the frame size the header declares before any frame is
    decoded (probing decodes the first one for its rotation), to refuse huge frames (the web app)."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise TextureNetsError(f"input not found: {path}")
    if path.stat().st_size == 0:
        raise TextureNetsError(f"{path}: empty file (0 bytes), not a video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise TextureNetsError(f"{path}: no video stream in it")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or Fraction(25)
            container_seconds = container.duration / 1e6 if container.duration else None
            video_seconds = float(stream.duration * stream.time_base) if stream.duration else None
            audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
            if video_seconds is None and audio is None:  # the container's length is the video's
                video_seconds = container_seconds
            width, height = stream.codec_context.width, stream.codec_context.height
            if not width or not height:
                raise TextureNetsError(f"{path}: the video stream has no picture size (broken header)")
            if check_size is not None:
                check_size(width, height)
            turns = _quarter_turns(container, stream)
            if turns % 2:
                width, height = height, width
            return ClipInfo(width, height, Fraction(fps), int(stream.frames or 0), video_seconds or container_seconds,
                            audio, video_seconds, turns, longest_stream(container))
    except av.FFmpegError as exc:
        raise TextureNetsError(f"{path}: not a video FFmpeg can read ({_reason(exc)})") from exc


def longest_stream(container) -> float | None:
    """The longest duration, in seconds, of the container and each of its streams (None: none known)."""
    seconds = [container.duration / 1e6] if container.duration else []
    seconds += [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return max(seconds, default=None)


def _quarter_turns(container, stream) -> int:
    """Counter-clockwise quarter turns (0-3) a player applies to show the picture upright: phones store
    a portrait clip as a landscape picture with a display matrix of ±90°. PyAV gives the matrix's angle
    on decoded frames only, so the first frame is decoded; 0 where there is none or it fails to decode
    (the transcode then says why)."""
    av = _av()
    try:
        for frame in container.decode(stream):
            return round((frame.rotation or 0) / 90) % 4
    except av.FFmpegError:
        pass
    return 0


def _reason(exc: Exception) -> str:
    """An FFmpeg error as a few words (its strerror), not the whole repr."""
    return getattr(exc, "strerror", None) or str(exc)


def encoder_for(path: str | os.PathLike) -> Encoder:
    """The encoder of an output file's extension, or an error naming the ones there are."""
    suffix = Path(path).suffix.lower()
    if suffix not in ENCODERS:
        raise TextureNetsError(f"{path}: unknown video extension (use one of {', '.join(VIDEO_EXTENSIONS)})")
    return ENCODERS[suffix]


def output_size(info: ClipInfo, size: int | None, encoder: Encoder) -> tuple[int, int]:
    """(width, height) of the output: the input's, or its longer side `size`; even for 4:2:0 chroma."""
    width, height = resized_dimensions((info.width, info.height), size)
    if encoder.pix_fmt == "yuv420p":  # 4:2:0 needs even sides: at most one pixel less
        width, height = max(2, width - width % 2), max(2, height - height % 2)
    return width, height


@dataclass
class VideoReport:
    """What was written: frames, their size and rate, what became of the audio, and where time went."""
    path: Path
    frames: int
    width: int
    height: int
    fps: Fraction
    audio: str | None  # 'copied', 're-encoded to <codec>', 'dropped (<why>)' or None (no audio track)
    seconds: dict[str, float]

    @property
    def frames_per_second(self) -> float:
        """Frames stylized per second of wall time (all stages)."""
        return self.frames / max(sum(self.seconds.values()), 1e-9)


class ClipNoise:
    """The noise of each frame, by --temporal mode: 'off' a new field per frame (seeded by seed +
    frame number, so a run is reproducible), 'noise' one field for the whole clip, 'flow' one field
    carried along the input's motion (temporal.CarriedNoise). Ask for the frames in order."""

    def __init__(self, generator, height: int, width: int, temporal: str, seed: int | None):
        self.module = getattr(generator, "torch_generator", generator)
        self.shape = self.module.padded_size(height, width)
        self.temporal, self.seed = temporal, seed
        self.device = next(self.module.parameters()).device
        self.active = bool(self.module.config.noise_channels)
        self.fixed = self._draw(seed) if self.active and temporal == "noise" else None
        self.canvas = self.carried = None
        if self.active and temporal == "flow":  # H,W,C arrays, as OpenCV samples them
            self.canvas = [n[0].permute(1, 2, 0).cpu().numpy().copy()
                           for n in self._draw(seed, 2 * self.shape[0], 2 * self.shape[1])]
            self.carried = CarriedNoise((height, width), self.shape, np.random.default_rng(seed))

    def _draw(self, seed: int | None, height: int | None = None, width: int | None = None) -> list[torch.Tensor]:
        rng = None if seed is None else torch.Generator(device=self.device).manual_seed(seed % 2**63)
        return self.module.make_noise(1, height or self.shape[0], width or self.shape[1], generator=rng,
                                      device=self.device)

    def frame(self, index: int, motion: Motion | None = None) -> list[torch.Tensor] | None:
        """The noise of frame `index` per scale, 1,C,h,w each (None: the network takes no noise);
        `motion`: the frame's motion back to the one before ('flow')."""
        if not self.active:
            return None
        if self.fixed is not None:
            return self.fixed
        if self.carried is None:
            return self._draw(None if self.seed is None else self.seed + index)
        self.carried.follow(motion)
        noise = []
        for canvas in self.canvas:
            scale = int(round(math.log2(2 * self.shape[0] / canvas.shape[0])))
            sampled = sample_noise(canvas, self.carried.points(scale))
            noise.append(torch.from_numpy(sampled).permute(2, 0, 1).contiguous().unsqueeze(0).to(self.device))
        return noise


class _Clock:
    """Seconds spent per stage."""

    def __init__(self):
        self.seconds = {"decode": 0.0, "network": 0.0, "flow": 0.0, "encode": 0.0}

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started


def stylize_video(src: str | os.PathLike, dst: str | os.PathLike, checkpoint, *, device: str | torch.device = "cpu",
                  engine: str = "auto", precision: str = "auto", progress: Callable[[int], None] | None = None,
                  **options) -> VideoReport:
    """Stylize the clip `src` into `dst` with a checkpoint (path, style name or loaded generator).

    options: those of `VideoOptions` (size, noise_factor, seed, temporal 'off'|'noise'|'flow',
    temporal_weight, preserve_colors, batch_size, memory_limit). `progress` is called with the number
    of frames done after each batch. Returns a `VideoReport`."""
    settings = VideoOptions(**options)
    runner = Engine.load(checkpoint, settings, device=device, engine=EngineOptions(engine, precision),
                         memory_limit=settings.memory_limit)
    return stylize_clip(runner.generator, Path(src), Path(dst), settings, progress)


def stylize_clip(generator, src: Path, dst: Path, options: VideoOptions,
                 progress: Callable[[int], None] | None = None, info: ClipInfo | None = None) -> VideoReport:
    """`stylize_video` with a generator `prepare_generator` returned (shared by the files of a folder);
    `info`: the clip's header if the caller has already read it (`probe`)."""
    options.check()
    feed_forward_color_method(options.preserve_colors)
    encoder = encoder_for(dst)
    check_outputs_spare_inputs([(src, dst)])
    info = info or probe(src)
    width, height = output_size(info, options.size, encoder)
    clock = _Clock()
    try:
        with atomic_output(dst, keep_suffix=True) as tmp:  # FFmpeg picks the format by extension
            frames, audio = _transcode(generator, src, tmp, info, (width, height), encoder, options, clock, progress)
    except _OutputFailed as exc:
        raise TextureNetsError(f"{dst}: FFmpeg could not write the stylized video ({exc}); nothing was written") from exc
    return VideoReport(dst, frames, width, height, info.fps, audio, clock.seconds)


class _OutputFailed(Exception):
    """FFmpeg failing to encode or write the output: told apart from the input breaking, which is
    the user's file to blame (the message is FFmpeg's reason)."""


@contextmanager
def _writing():
    """Inside: an FFmpeg error is the output's, raised as _OutputFailed."""
    try:
        yield
    except _av().FFmpegError as exc:
        raise _OutputFailed(_reason(exc)) from exc


@contextmanager
def _output_container(path: Path):
    """The output container, open for writing; FFmpeg's errors opening or closing it (writing the
    trailer) are the output's."""
    with _writing():
        sink = _av().open(str(path), "w")
    try:
        yield sink
    except BaseException:  # the first error is the one to tell (the file is removed anyway)
        with suppress(_av().FFmpegError):
            sink.close()
        raise
    with _writing():
        sink.close()


def _transcode(generator, src: Path, tmp: Path, info: ClipInfo, size: tuple[int, int], encoder: Encoder,
               options: VideoOptions, clock: _Clock, progress) -> tuple[int, str | None]:
    """Decode, stylize and encode every frame of `src` into `tmp`; (frames written, audio outcome).
    An FFmpeg error reading `src` is a TextureNetsError blaming the input; one writing `tmp`, an
    _OutputFailed (see `_writing`)."""
    av = _av()
    pipeline = None
    try:
        with av.open(str(src)) as source, _output_container(tmp) as sink:
            video_in = source.streams.video[0]
            video_in.thread_type = "AUTO"
            timing = video_in.time_base, source_start(video_in)
            with _writing():
                sink_video = _add_video(sink, video_in, info, size, encoder)
                audio = _AudioTrack(sink, source.streams.audio[0] if source.streams.audio else None, encoder, tmp.suffix)
            pipeline = _FramePipeline(generator, sink, sink_video, size, info, encoder, options, clock, progress)
            streams = [video_in] + ([audio.source] if audio.sink is not None else [])
            with clock.stage("decode"):
                packets = source.demux(*streams)
            for packet in _timed(packets, clock):
                if packet.stream.type == "audio":
                    audio.add(packet)
                    continue
                with clock.stage("decode"):
                    decoded = [pipeline.prepare(frame) for frame in packet.decode()]
                for frame in decoded:
                    pipeline.push(*frame)
            with _writing():
                pipeline.finish()
                audio.finish()
    except av.FFmpegError as exc:  # _writing has taken the output's errors: this one is the input's
        raise TextureNetsError(f"{src}: the video breaks after {pipeline.decoded if pipeline else 0} frames "
                               f"({_reason(exc)}); nothing was written") from exc
    if info.frames and pipeline.written < info.frames - MISSING_FRAMES_TOLERATED:
        raise TextureNetsError(f"{src}: the video ends after {pipeline.written} of the {info.frames} frames its "
                               f"header declares (a cut-off file?); nothing was written")
    reached = pipeline.seconds_reached(*timing)
    if not info.frames and info.video_duration and reached < info.video_duration - max(
            MISSING_FRAMES_TOLERATED / float(info.fps), 0.02 * info.video_duration):
        raise TextureNetsError(f"{src}: the video ends after {pipeline.written} frames, at {reached:.2f} s of the "
                               f"{info.video_duration:.2f} s its header declares (a cut-off file?); nothing was written")
    if pipeline.written == 0:
        raise TextureNetsError(f"{src}: no video frames in it")
    return pipeline.written, audio.outcome


def source_start(stream) -> int:
    """The stream's first timestamp (0 where not declared)."""
    return stream.start_time or 0


def _timed(packets, clock: _Clock):
    """The demuxer's packets, the time spent reading them counted as decoding."""
    iterator = iter(packets)
    while True:
        with clock.stage("decode"):
            packet = next(iterator, None)
        if packet is None:
            return
        if packet.size or packet.stream.type == "video":  # the empty packet that flushes a decoder
            yield packet


def _add_video(sink, video_in, info: ClipInfo, size: tuple[int, int], encoder: Encoder):
    """The output's video stream: the encoder, size, and the input's time base (timestamps kept)."""
    stream = sink.add_stream(encoder.codec, rate=info.fps, options=dict(encoder.options))
    stream.width, stream.height = size
    stream.pix_fmt = encoder.pix_fmt
    time_base = video_in.time_base or Fraction(1, 90000)
    stream.codec_context.time_base = time_base
    stream.time_base = time_base
    return stream


class _AudioTrack:
    """The input's audio in the output: packets copied where the container takes the codec, else
    decoded and re-encoded to the container's codec, else (GIF) dropped; `outcome` says which."""

    def __init__(self, sink, source, encoder: Encoder, suffix: str):
        self.source, self.sink, self.outcome, self.sink_container = source, None, None, sink
        if source is None:
            return
        name = source.codec_context.name
        if encoder.audio_copy is None or name in encoder.audio_copy:
            self.sink, self.copy, self.outcome = sink.add_stream_from_template(source), True, "copied"
        elif encoder.audio_codec is not None:
            self.sink = sink.add_stream(encoder.audio_codec, rate=_audio_rate(encoder.audio_codec, source.rate))
            self.copy, self.outcome = False, f"re-encoded to {encoder.audio_codec} ({name} cannot go in {suffix})"
        else:
            self.outcome = f"dropped ({suffix} has no audio)"

    def add(self, packet) -> None:
        """Write one input audio packet to the output."""
        if self.copy:
            if packet.dts is not None:
                packet.stream = self.sink
                with _writing():
                    self.sink_container.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            with _writing():
                self.sink_container.mux(self.sink.encode(frame))

    def finish(self) -> None:
        """Flush the audio encoder (re-encoding only)."""
        if self.sink is not None and not self.copy:
            self.sink_container.mux(self.sink.encode(None))


def _audio_rate(codec: str, rate: int | None) -> int:
    """A sample rate the encoder takes: Opus runs at 48 kHz; the others keep the input's."""
    return 48000 if "opus" in codec else (rate or 44100)


class _FramePipeline:
    """Frames in (decoded, resized), batches through the network, temporal blending, frames out."""

    def __init__(self, generator, sink, stream, size: tuple[int, int], info: ClipInfo, encoder: Encoder,
                 options: VideoOptions, clock: _Clock, progress):
        self.engine = Engine(generator, options, options.memory_limit)  # frames go through it as photos do
        self.generator, self.sink, self.stream, self.encoder = generator, sink, stream, encoder
        self.width, self.height = size
        self.turns = info.quarter_turns
        self.options, self.clock, self.progress = options, clock, progress
        self.noise = ClipNoise(generator, self.height, self.width, options.temporal, options.seed)
        self.tracker = MotionTracker() if options.temporal == "flow" else None
        self.previous_output: np.ndarray | None = None
        self.batch_size = options.batch_size
        if options.memory_limit is not None:  # a smaller batch before a tiled one
            per_frame = stylize_bytes(generator, self.height, self.width, options.tile)
            self.batch_size = max(1, min(self.batch_size, options.memory_limit // max(per_frame, 1)))
        self.frames: list[np.ndarray] = []
        self.stamps: list[int] = []
        self.motions: list[Motion | None] = []
        self.noises: list[list[torch.Tensor] | None] = []
        self.decoded = self.written = 0
        self.declared_pixels = info.width * info.height
        self.next_pts: int | None = None  # where a frame without a timestamp goes
        self.last_pts = 0
        self.step = max(1, round(1 / (info.fps * stream.codec_context.time_base)))  # one frame, in time-base units

    def prepare(self, frame) -> tuple[np.ndarray, int]:
        """A decoded frame as H,W,3 uint8 RGB at the output size, and its timestamp."""
        self.decoded += 1
        if self.options.max_frames is not None and self.decoded > self.options.max_frames:
            raise TextureNetsError(f"the clip has more than {self.options.max_frames} frames: too long")
        if frame.width * frame.height > self.declared_pixels:  # the memory plan read the header's size
            raise TextureNetsError(f"frame {self.decoded} is {frame.width}x{frame.height}, larger than the clip's "
                                   f"header declares: a damaged or crafted file")
        shrinking = frame.width * frame.height > self.width * self.height
        width, height = (self.height, self.width) if self.turns % 2 else (self.width, self.height)  # as stored
        picture = frame.reformat(width=width, height=height, format="rgb24",
                                 interpolation="AREA" if shrinking else "BICUBIC").to_ndarray()
        if self.turns:
            picture = np.ascontiguousarray(np.rot90(picture, self.turns))  # upright, as a player shows it
        pts = frame.pts if frame.pts is not None else (self.next_pts or 0)
        if self.next_pts is not None and pts < self.next_pts - self.step + 1:  # never backwards
            pts = self.next_pts
        self.next_pts = pts + self.step
        self.last_pts = max(self.last_pts, pts)
        return picture, pts

    def seconds_reached(self, time_base: Fraction | None, start: int) -> float:
        """Where the last decoded frame ends, in seconds from the stream's start."""
        if time_base is None or self.decoded == 0:
            return 0.0
        return float((self.last_pts + self.step - start) * time_base)

    def push(self, picture: np.ndarray, pts: int) -> None:
        """Queue a frame with its motion and noise; a full batch goes through the network and out."""
        with self.clock.stage("flow"):
            motion = self.tracker(picture) if self.tracker is not None else None
            noise = self.noise.frame(self.written + len(self.frames), motion)
        self.frames.append(picture)
        self.stamps.append(pts)
        self.motions.append(motion)
        self.noises.append(noise)
        if len(self.frames) >= self.batch_size:
            self._flush()

    def finish(self) -> None:
        """The last (short) batch, then the encoder's delayed packets."""
        if self.frames:
            self._flush()
        with self.clock.stage("encode"):
            self.sink.mux(self.stream.encode(None))

    def _flush(self) -> None:
        frames, stamps, motions, noises = self.frames, self.stamps, self.motions, self.noises
        self.frames, self.stamps, self.motions, self.noises = [], [], [], []
        with self.clock.stage("network"):
            photos = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255)
            noise = None if noises[0] is None else [torch.cat(scale) for scale in zip(*noises)]
            out = self.engine.stylize(photos, noise)
            outputs = out.float().clamp_(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        for stylized, pts, motion in zip(outputs, stamps, motions):
            if self.tracker is not None:
                with self.clock.stage("flow"):
                    stylized = blend_carried(stylized, self.previous_output, motion, self.options.temporal_weight)
                    self.previous_output = stylized
            with self.clock.stage("encode"):
                self._encode(stylized, pts)
        if self.progress is not None:
            self.progress(len(frames))

    def _encode(self, stylized: np.ndarray, pts: int) -> None:
        av = _av()
        pixels = to_pixels(stylized)
        if self.encoder.pix_fmt == "pal8":
            frame = av.VideoFrame.from_ndarray(palette_frame(pixels), format="pal8")
        else:
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts, frame.time_base = pts, self.stream.codec_context.time_base
        with _writing():
            self.sink.mux(self.stream.encode(frame))
        self.written += 1


def to_pixels(frame: np.ndarray) -> np.ndarray:
    """An H,W,3 float frame in 0..1 as uint8, saturating: a value a little outside 0..1 becomes 0 or
    255 (a bare cast wraps around: 1.02 would be 5, a black speck in white)."""
    return np.rint(np.clip(frame, 0, 1) * 255).astype(np.uint8)


def palette_frame(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An H,W,3 uint8 picture as (indices, 256×4 ARGB palette) for GIF: its own 256 colours
    (median cut, no dithering: dither patterns would flicker from frame to frame)."""
    quantized = Image.fromarray(pixels).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    colours = np.asarray(quantized.getpalette()[:768], np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 4), np.uint8)
    palette[:, 0] = 255
    palette[:len(colours), 1:] = colours
    return np.asarray(quantized), palette


def clip_seconds(info: ClipInfo) -> float:
    """The clip's length in seconds (from its duration, else its frames and rate; inf if unknown)."""
    if info.duration:
        return info.duration
    return info.frames / float(info.fps) if info.frames and info.fps else math.inf
