"""Videos: stylize.py on clips end to end (frames, rate, size, audio, progress), the temporal
modes on clips with known motion, every bad input in one line with nothing left behind, the Python API.

Clips are generated here with PyAV (a few frames of a few dozen pixels), offline."""

from __future__ import annotations

import re
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from texture_nets import TextureNetsError, TextureNetwork, save_checkpoint
from texture_nets.cli import stylize_main
from texture_nets.core.checkpoint import make_checkpoint
from texture_nets.inference import video as video_module
from texture_nets.inference.options import VideoOptions
from texture_nets.inference.temporal import Motion, blend_carried, consistent, warp, warping_error
from texture_nets.inference.video import ENCODERS, is_video, probe, stylize_video, to_pixels

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import video_motion  # noqa: E402
from video_motion import camera_clip, object_clip, skimage_photos  # noqa: E402


@pytest.fixture
def model(tmp_path) -> Path:
    """A tiny, randomly initialised generator with noise (no training needed)."""
    torch.manual_seed(0)
    net = TextureNetwork(num_scales=3, channels=4, noise_factor=0.5)
    return save_checkpoint(make_checkpoint(net, style={"name": "tiny"}, train={}, step=1, losses={}),
                           tmp_path / "ck" / "tiny.pt")


def moving_frames(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frames of a photo panned a few pixels per frame."""
    return camera_clip(skimage_photos()[2], "pan", count, width, height).frames


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 15, audio: bool = True, **options) -> Path:
    """A clip as a user brings one: H.264 at `fps`, with an AAC tone unless `audio` is False."""
    return video_motion.write_clip(path, frames, fps=fps, audio=audio, **options)


def read_frames(path: Path) -> list[np.ndarray]:
    """A clip's frames as float32 RGB in 0..1."""
    return video_motion.read_clip(path, as_float=True)


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files a failed run could have left."""
    return sorted(p.name for p in folder.rglob(".*") if p.is_file())


# --- the command line, end to end --------------------------------------------------------------------

def test_a_clip_keeps_frames_rate_size_and_its_audio_copied(model, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(10), fps=15)
    out = tmp_path / "out" / "clip_tiny.mp4"
    assert stylize_main(["--model", str(model), "--input", str(clip), "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "10/10" in captured.err and "frame/s" in captured.err  # the progress bar, in frames
    source, result = probe(clip), probe(out)
    assert (result.width, result.height, result.fps, result.frames) == (64, 48, Fraction(15), 10)
    assert result.audio == source.audio == "aac"
    assert audio_packets(out) == audio_packets(clip)  # copied packet for packet, not re-encoded
    frames = read_frames(out)
    assert len(frames) == 10 and frames[0].std() > 0.01  # a picture, not a blank
    assert leftovers(tmp_path) == []


def test_size_resizes_the_longer_side_to_even_dimensions(model, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(3, 96, 64), audio=False)
    out = tmp_path / "small.mp4"
    assert stylize_main(["--model", str(model), "--input", str(clip), "--output", str(out), "--size", "50"]) == 0
    info = probe(out)
    assert (info.width, info.height) == (50, 32)  # 50 x 33.3 → 33 is odd for 4:2:0 → 32


def test_folders_mix_photos_videos_and_animated_gifs(model, tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(moving_frames(1)[0]).save(folder / "photo.png")
    write_clip(folder / "clip.mp4", moving_frames(4), audio=False)
    gif_frames = [Image.fromarray(f) for f in moving_frames(5)]
    gif_frames[0].save(folder / "sub" / "anim.gif", save_all=True, append_images=gif_frames[1:], duration=100, loop=0)
    Image.fromarray(moving_frames(1)[0]).save(folder / "still.gif")  # one frame: a picture
    out = tmp_path / "out"
    assert stylize_main(["--model", str(model), "--input", str(folder), "--output", str(out)]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "clip.mp4", "photo.png", "still.gif", "sub/anim.gif"]
    assert probe(out / "clip.mp4").frames == 4
    assert len(read_frames(out / "sub" / "anim.gif")) == 5 and is_video(out / "sub" / "anim.gif")
    assert not is_video(out / "still.gif") and Image.open(out / "photo.png").size == (64, 48)


@pytest.mark.parametrize("suffix,audio,warned", [
    (".webm", "opus", "re-encoded to libopus"),
    (".mkv", "aac", None),
    (".mov", "aac", None),
    (".avi", "aac", None),
    (".gif", None, "dropped"),
])
def test_the_output_extension_picks_the_container_and_what_becomes_of_the_audio(model, tmp_path, capsys, suffix,
                                                                                   audio, warned):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(6))
    out = tmp_path / f"out{suffix}"
    assert stylize_main(["--model", str(model), "--input", str(clip), "--output", str(out)]) == 0
    err = capsys.readouterr().err
    info = probe(out)
    assert info.audio == audio and len(read_frames(out)) == 6 and (info.width, info.height) == (64, 48)
    assert (warned in err) if warned else "warning" not in err


def test_the_api_reports_frames_audio_and_where_time_went(model, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(5))
    report = stylize_video(clip, tmp_path / "out.mp4", model, temporal="flow", batch_size=2)
    assert (report.frames, report.width, report.height, report.audio) == (5, 64, 48, "copied")
    assert set(report.seconds) == {"decode", "network", "flow", "encode"} and report.seconds["flow"] > 0
    assert report.frames_per_second > 0


def test_the_same_seed_gives_the_same_clip_and_another_seed_another(model, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(3), audio=False)
    first, again, other = (stylize_video(clip, tmp_path / f"{name}.mp4", model, seed=seed, temporal="noise").path
                           for name, seed in (("a", 1), ("b", 1), ("c", 2)))
    a, b, c = (np.stack(read_frames(p)) for p in (first, again, other))
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_preserve_colors_keeps_the_frames_colours(model, tmp_path):
    frames = moving_frames(3)
    clip = write_clip(tmp_path / "clip.mp4", frames, audio=False)
    plain = np.stack(read_frames(stylize_video(clip, tmp_path / "a.mp4", model).path))
    kept = np.stack(read_frames(stylize_video(clip, tmp_path / "b.mp4", model, preserve_colors="luminance").path))
    photo = np.stack(read_frames(clip))
    chroma = lambda x: x - x.mean(axis=-1, keepdims=True)  # noqa: E731 — colour without brightness
    assert np.abs(chroma(kept) - chroma(photo)).mean() < 0.5 * np.abs(chroma(plain) - chroma(photo)).mean()


@pytest.mark.parametrize("rotation,band", [(90, "bottom"), (-90, "top"), (180, "right")])
def test_phone_clips_come_out_upright(model, tmp_path, rotation, band):
    """A clip stored landscape with a display matrix (how phones write portrait clips) is stylized and
    written upright, as a player shows it: the shown size, no matrix, and the photo's colours (kept by
    preserve_colors) where the player puts them."""
    stored = np.full((32, 64, 3), 128, np.uint8)
    stored[:, :16] = (230, 30, 30)  # a red band at the stored picture's left edge
    clip = write_clip(tmp_path / "phone.mp4", [stored] * 3, audio=False, rotation=rotation)
    info = probe(clip)
    assert (info.width, info.height) == ((64, 32) if rotation == 180 else (32, 64))
    out = stylize_video(clip, tmp_path / "out.mp4", model, preserve_colors="luminance").path
    result = probe(out)
    assert (result.width, result.height, result.quarter_turns) == (info.width, info.height, 0)
    frame = read_frames(out)[0]
    redness = frame[..., 0] - frame[..., 1:].mean(axis=-1)
    # turned counter-clockwise, the left edge goes to the bottom (90°), the top (-90°) or the right (180°)
    edge = {"bottom": redness[-16:], "top": redness[:16], "right": redness[:, -16:]}[band]
    assert edge.mean() - redness.mean() > 0.15


# --- temporal modes ---------------------------------------------------------------------------------

def stylized_error(clip_frames, flows, masks, tmp_path, model, mode: str, **options) -> float:
    source = tmp_path / "motion.mp4"
    if not source.exists():
        write_clip(source, clip_frames, audio=False, options=None)
    out = stylize_video(source, tmp_path / f"motion_{mode}.mp4", model, temporal=mode, **options).path
    return warping_error(read_frames(out), flows, masks)


def test_one_noise_field_stops_a_still_clip_from_flickering(model, tmp_path):
    still = [moving_frames(1)[0]] * 6
    flows = [np.zeros((48, 64, 2), np.float32)] * 5
    masks = [np.ones((48, 64), bool)] * 5
    off = stylized_error(still, flows, masks, tmp_path, model, "off")
    noise = stylized_error(still, flows, masks, tmp_path, model, "noise")
    assert noise < 0.1 * off  # what is left is the codec's


@pytest.mark.parametrize("motion", ["pan", "object"])
def test_flow_lowers_the_warping_error_on_known_motion(tmp_path, motion):
    photos = skimage_photos()
    clip = (camera_clip(photos[0], "pan", 8, 128, 72) if motion == "pan"
            else object_clip(photos[1], photos[2], 8, 128, 72))
    errors = {mode: stylized_error(clip.frames, clip.flows, clip.masks, tmp_path, "ulyanov_starry", mode)
              for mode in ("off", "noise", "flow")}
    # at 128x72 px (DIS sees little) the margin is smaller than at 640x360, where the benchmark measures
    # the 0.4x target (benchmarks/video_stability.py); here: clearly lower; on a pan also below
    # 'noise' (whose fixed noise the scene slides under; over a still background 'noise' is as steady)
    assert errors["flow"] < 0.7 * errors["off"], errors
    assert motion == "object" or errors["flow"] < errors["noise"], errors
    assert errors["noise"] < errors["off"], errors


def test_warping_error_is_zero_for_frames_that_follow_their_flow():
    rng = np.random.default_rng(0)
    first = rng.random((32, 40, 3)).astype(np.float32)
    flow = np.zeros((32, 40, 2), np.float32)
    flow[..., 0] = -2.0  # frame t's pixel x was at x − 2 in frame t−1: content moves right
    second = warp(first, flow)
    mask = np.zeros((32, 40), bool)
    mask[:, 2:] = True
    assert warping_error([first, second], [flow], [mask]) < 1e-10
    assert warping_error([first, first], [flow], [mask]) > 0.01


def test_forward_backward_check_flags_disagreeing_flow():
    backward = np.zeros((20, 30, 2), np.float32)
    backward[..., 0] = -3.0
    forward = -backward  # consistent: there and back again
    ok = consistent(backward, forward)
    assert ok[:, 3:].all() and not ok[:, :3].any()  # the left edge came from outside the previous frame
    assert not consistent(backward, np.zeros_like(forward))[:, 3:].any()  # forward flow says "no motion"


# --- bad input: one line, exit 2, nothing under the output's name -----------------------------------

def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("stylize.py: error:"), err
    assert all(not line.startswith("Traceback") for line in err)
    return err[-1]


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    cut = path.with_name(f"cut{path.suffix}")
    cut.write_bytes(data[:len(data) // 2])
    return cut


@pytest.mark.parametrize("make,message", [
    (lambda d: (d / "text.mp4").write_text("not a video at all") and d / "text.mp4", "not a video FFmpeg can read"),
    (lambda d: (d / "empty.mp4").touch() or d / "empty.mp4", "empty file"),
    (lambda d: cut_in_half(write_clip(d / "long.mp4", moving_frames(30), audio=False,
                                      options={"movflags": "faststart"})), "nothing was written"),
    (lambda d: cut_in_half(write_clip(d / "long.mkv", moving_frames(30), audio=False)), "nothing was written"),
])
def test_unreadable_or_cut_off_clips_are_one_line(model, tmp_path, capsys, make, message):
    src = make(tmp_path)
    out = tmp_path / "out" / "styled.mp4"
    assert stylize_main(["--model", str(model), "--input", str(src), "--output", str(out)]) == 2
    assert message in one_line(capsys)
    assert not out.exists() and leftovers(tmp_path / "out" if (tmp_path / "out").exists() else tmp_path) == []


def test_a_clip_with_no_frames_is_one_line(model, tmp_path, capsys):
    src = tmp_path / "none.mkv"
    with av.open(str(src), "w") as container:  # a video stream, never a frame
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    assert stylize_main(["--model", str(model), "--input", str(src), "--output", str(tmp_path / "o.mp4")]) == 2
    assert "frames" in one_line(capsys) or "not a video" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("output,message", [
    ("out.xyz", "must be a video file"),
    ("out.png", "must be a video file"),
    ("clip.mp4", "would overwrite the input"),
])
def test_wrong_outputs_are_refused_before_any_work(model, tmp_path, capsys, output, message):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(2), audio=False)
    before = clip.read_bytes()
    assert stylize_main(["--model", str(model), "--input", str(clip), "--output", str(tmp_path / output)]) == 2
    assert message in one_line(capsys)
    assert clip.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ck", "clip.mp4"]


@pytest.mark.parametrize("flags,message", [
    (["--temporal_weight", "1"], "--temporal_weight must be in [0, 1)"),
    (["--temporal_weight", "nan"], "--temporal_weight must be in [0, 1)"),
    (["--temporal", "off", "--temporal_weight", "0.5"], "applies to --temporal flow"),
    (["--batch_size", "0"], "--batch_size must be in 1..256"),
])
def test_absurd_video_options_are_one_line(model, tmp_path, capsys, flags, message):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(2), audio=False)
    assert stylize_main(["--model", str(model), "--input", str(clip), "--output", str(tmp_path / "o.mp4"), *flags]) == 2
    assert message in one_line(capsys)


def test_video_options_are_refused_with_optimize(tmp_path, capsys):
    assert stylize_main(["--optimize", "--style", "x.jpg", "--temporal", "noise"]) == 2
    assert "--temporal is for a trained network" in one_line(capsys)


def test_a_clip_that_breaks_mid_stream_or_ctrl_c_leaves_nothing(model, tmp_path, capsys, monkeypatch):
    import importlib
    stylize_module = importlib.import_module("texture_nets.inference.engine")  # the package exports a function of that name
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(9), audio=False)
    real, calls = stylize_module.stylize_tensor, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second batch: frames already encoded into the temporary file
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(stylize_module, "stylize_tensor", interrupted)
    out = tmp_path / "out" / "styled.mp4"
    assert stylize_main(["--model", str(model), "--input", str(clip), "--output", str(out), "--batch_size", "4"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "stylize.py: interrupted"
    assert list((tmp_path / "out").iterdir()) == []


class FailingEncoder:
    """The output's video stream, whose encoder fails (as FFmpeg does, with an av.FFmpegError) on
    frame number `at` (None: on the flush that ends the stream)."""

    def __init__(self, stream, at: int | None):
        self.stream, self.at, self.frames = stream, at, 0

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def encode(self, frame=None):
        if frame is not None:
            self.frames += 1
        if (frame is None and self.at is None) or self.frames == self.at:
            raise av.FFmpegError(22, "Invalid argument")
        return self.stream.encode(frame)


@pytest.mark.parametrize("at", [None, 3], ids=["flush", "mid-stream"])
def test_an_encoder_failure_is_one_line_that_blames_the_output(model, tmp_path, capsys, monkeypatch, at):
    """Not the input ("the video breaks after 3 frames"), and not a traceback (the flush at the end)."""
    real = video_module._add_video
    monkeypatch.setattr(video_module, "_add_video", lambda *args: FailingEncoder(real(*args), at))
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(6), audio=False)
    out = tmp_path / "out" / "styled.mp4"
    assert stylize_main(["--model", str(model), "--input", str(clip), "--output", str(out), "--batch_size", "2"]) == 2
    assert one_line(capsys) == (f"stylize.py: error: {out}: FFmpeg could not write the stylized video "
                                f"(Invalid argument); nothing was written")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_broken_input_is_still_blamed_on_the_input(model, tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(6), audio=False)
    real = video_module._FramePipeline.prepare
    calls = []

    def prepare(self, frame):
        calls.append(1)
        if len(calls) == 4:
            raise av.FFmpegError(1094995529, "Invalid data found when processing input")
        return real(self, frame)

    monkeypatch.setattr(video_module._FramePipeline, "prepare", prepare)
    with pytest.raises(TextureNetsError, match=r"clip.mp4: the video breaks after 3 frames \(Invalid data"):
        stylize_video(clip, tmp_path / "o.mp4", model, batch_size=2)
    assert not (tmp_path / "o.mp4").exists()


def test_every_encoder_is_in_the_wheel():
    for encoder in ENCODERS.values():
        av.codec.Codec(encoder.codec, "w")  # raises if this FFmpeg build lacks it
        if encoder.audio_codec:
            av.codec.Codec(encoder.audio_codec, "w")


def test_the_api_refuses_what_the_cli_refuses(model, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(2), audio=False)
    with pytest.raises(TextureNetsError, match="temporal must be one of"):
        stylize_video(clip, tmp_path / "o.mp4", model, temporal="sometimes")
    with pytest.raises(TextureNetsError, match="unknown video extension"):
        stylize_video(clip, tmp_path / "o.txt", model)


@pytest.mark.parametrize("options,message", [
    (dict(seed=-1), "--seed must be in [0, 2**63), got -1"),
    (dict(seed=2**63), f"--seed must be in [0, 2**63), got {2**63}"),
    (dict(noise_factor=-0.5), "--noise_factor must be a number in [0, 1000], got -0.5"),
    (dict(noise_factor=float("nan")), "--noise_factor must be a number in [0, 1000], got nan"),
])
def test_the_api_refuses_a_bad_seed_or_noise_factor_before_opening_the_output(model, tmp_path, options, message):
    with pytest.raises(TextureNetsError) as error:
        VideoOptions(**options).check()
    assert str(error.value) == message
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(2), audio=False)
    with pytest.raises(TextureNetsError, match=re.escape(message)):
        stylize_video(clip, tmp_path / "out" / "o.mp4", model, **options)
    assert not (tmp_path / "out").exists()
    VideoOptions(seed=None, noise_factor=0.0).check()  # a random seed, and no noise, are fine


def test_carried_noise_moves_with_the_scene_and_keeps_unit_variance():
    from texture_nets.inference.temporal import CarriedNoise, Motion, sample_noise
    rng = np.random.default_rng(0)
    canvas = rng.standard_normal((64, 96, 3)).astype(np.float32)
    noise = CarriedNoise((32, 48), (32, 48), rng)
    before = sample_noise(canvas, noise.points(0))
    backward = np.zeros((32, 48, 2), np.float32)
    backward[..., 0] = -2.0  # the scene moved 2 pixels right
    noise.follow(Motion(backward, np.ones((32, 48), np.float32)))
    after = sample_noise(canvas, noise.points(0))
    assert np.allclose(after[:, 2:], before[:, :-2], atol=1e-5)  # the noise went along
    assert not np.allclose(after[:, :2], before[:, :2])  # the uncovered edge is fresh noise
    half = np.stack(np.meshgrid(np.arange(48) + 0.5, np.arange(32) + 0.5), axis=-1).astype(np.float32)
    assert abs(float(sample_noise(canvas, half).std()) - 1.0) < 0.05  # between cells: still unit variance


def test_the_carried_blend_stays_in_0_1_next_to_edges():
    """A white previous frame pulled into a dark one with white strokes: the blurred pull lands on
    the strokes too, and would carry them past 1 (a black speck once encoded); black into bright
    would go below 0. Clamped, while the dark parts still move towards the carried frame."""
    rng = np.random.default_rng(0)
    strokes = rng.random((32, 48)) < 0.1
    dark = np.where(strokes[..., None], 1.0, 0.05).astype(np.float32).repeat(3, axis=2)
    motion = Motion(np.zeros((32, 48, 2), np.float32), np.ones((32, 48), np.float32))  # still, all reliable
    for stylized, previous in ((dark, np.ones_like(dark)), (1 - dark, np.zeros_like(dark))):
        blended = blend_carried(stylized, previous, motion, 0.45)
        assert blended.min() >= 0 and blended.max() <= 1
        assert np.abs(blended - previous)[~strokes].mean() < 0.6 * np.abs(stylized - previous)[~strokes].mean()


def test_frames_are_encoded_saturating_not_wrapping_around():
    frame = np.array([[[1.02, -0.02, 0.5], [1.0, 0.0, 1 / 255]]], np.float32)
    assert to_pixels(frame).tolist() == [[[255, 0, 128], [255, 0, 1]]]
