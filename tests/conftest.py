"""Shared fixtures: tiny generated photos and style images, a tiny config, the optional ../shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
SHARED_VGG = SHARED / "vgg19" / "vgg19_caffe_features_fp16.pth"
SHARED_COCO = SHARED / "data" / "coco"
SHARED_STYLES = SHARED / "data" / "styles"


def pytest_collection_modifyitems(config, items):
    """Tests marked `shared` skip cleanly where ../shared (real weights and photos) is absent, and
    tests marked `cuda` where PyTorch sees no GPU (benchmarks/gpu_check.py runs them on one)."""
    skips = {}
    if not (SHARED_VGG.is_file() and SHARED_COCO.is_dir()):
        skips["shared"] = pytest.mark.skip(reason=f"needs the real VGG weights and COCO photos in {SHARED}")
    if not torch.cuda.is_available():
        skips["cuda"] = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        for marker, skip in skips.items():
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


def smooth_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A photo-like test picture: smooth colour gradients plus a few blobs and some noise."""
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-3, 3, size=3)
        channels.append(0.5 + 0.4 * np.sin(a * x * 6 + b * y * 6 + c))
    image = np.stack(channels, axis=-1)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        image[mask] = rng.uniform(0, 1, size=3)
    image += rng.normal(0, 0.02, image.shape)
    return Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8), "RGB")


def stripes_image(size: int = 48) -> Image.Image:
    """A strongly textured 'style': diagonal coloured stripes."""
    y, x = np.mgrid[0:size, 0:size]
    band = ((x + y) // 4) % 3
    palette = np.array([[230, 40, 30], [250, 220, 40], [20, 60, 200]], dtype=np.uint8)
    return Image.fromarray(palette[band], "RGB")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Exported ONNX models go to a temporary cache, not the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def photos_dir(tmp_path) -> Path:
    """A folder of 8 small photos in sub-folders (jpg and png), like COCO's layout but tiny."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b" / "c").mkdir(parents=True)
    for i in range(8):
        folder = [root / "a", root / "b", root / "b" / "c"][i % 3]
        image = smooth_image(rng, 40 + 4 * i, 36 + 3 * i)
        image.save(folder / f"img{i}.{'jpg' if i % 2 else 'png'}")
    return root


@pytest.fixture
def style_path(tmp_path) -> Path:
    path = tmp_path / "stripes.png"
    stripes_image(48).save(path)
    return path


def tiny_overrides(photos_dir: Path, style_path: Path, checkpoint_dir: Path, **extra) -> dict:
    """Settings of a fast CPU training run with a randomly initialised VGG."""
    values = dict(data_dir=str(photos_dir), texture=[str(style_path)], image_size=32, batch_size=2,
                  num_iterations=6, num_scales=3, channels=4, style_layers=["relu1_1", "relu2_1"],
                  content_layers=["relu2_1"], style_size=48, vgg_weights="random", num_workers=0,
                  num_val=2, val_every=3, log_every=1, checkpoint_every=3, checkpoint_dir=str(checkpoint_dir),
                  device="cpu")
    values.update(extra)
    return values


def as_argv(values: dict) -> list[str]:
    """Config values as train.py flags."""
    argv = []
    for key, value in values.items():
        if isinstance(value, list):
            if key in ("texture", "teachers"):  # repeated flags
                for item in value:
                    argv += [f"--{key}", item]
            else:
                argv += [f"--{key}", ",".join(map(str, value))]
        else:
            argv += [f"--{key}", str(value)]
    return argv


def whole_and_resumed_runs(overrides: dict, folder: Path, stop_at: int = 3):
    """An uninterrupted training run of `overrides` and the same run interrupted (Ctrl-C) at step
    `stop_at` and resumed from its resume file: (whole result, resumed result, resume checkpoint)."""
    from texture_nets.training.config import make_config
    from texture_nets.training.run import load_resume, run_training
    quiet = lambda *_: None  # noqa: E731
    whole = run_training(make_config({}, {**overrides, "checkpoint_dir": str(folder / "whole")}), log=quiet)

    def interrupt(event):
        if event.step == stop_at:
            raise KeyboardInterrupt
    parted = make_config({}, {**overrides, "checkpoint_dir": str(folder / "parted")})
    with pytest.raises(KeyboardInterrupt):
        run_training(parted, on_event=interrupt, log=quiet)
    saved = load_resume(Path(parted.checkpoint_dir) / f"{parted.style_name}.resume.pt")
    assert saved["step"] == stop_at
    return whole, run_training(parted, resume=saved, log=quiet), saved
