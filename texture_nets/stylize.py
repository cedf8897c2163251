"""Single-pass stylization of tensors, PIL images, files and folders with a trained checkpoint.

The network is always rebuilt from the checkpoint's own constructor arguments, never from flags.
Output files are written to a temporary name and renamed, so a failure never leaves a partial image.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from .checkpoint import load_generator
from .data import IMAGE_EXTENSIONS, find_images, image_to_tensor, load_image, tensor_to_image, to_rgb
from .errors import TextureNetsError
from .generator import TextureNetwork

DEFAULT_CHECKPOINT_DIR = "checkpoints"
SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP",
                ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM", ".gif": "GIF"}


def resolve_model(model: str | os.PathLike, checkpoint_dir: str | os.PathLike = DEFAULT_CHECKPOINT_DIR) -> Path:
    """A checkpoint path: `model` itself if it exists, else that name (with or without .pt) in checkpoint_dir."""
    path = Path(model)
    if path.is_file():
        return path
    folder = Path(checkpoint_dir)
    for candidate in (folder / path.name, folder / f"{path.name}.pt"):
        if candidate.is_file():
            return candidate
    available = sorted(p.stem for p in folder.glob("*.pt") if not p.name.endswith(".resume.pt")) if folder.is_dir() else []
    raise TextureNetsError(f"model not found: {model} (not a file, nor in {folder}/"
                           + (f"; available: {', '.join(available)})" if available else ")"))


def resize_longer_side(image: Image.Image, size: int | None) -> Image.Image:
    """Resize so the longer side is `size` (keeping the aspect ratio); None keeps the image as is."""
    if size is None:
        return image
    if size < 16:
        raise TextureNetsError(f"--size must be at least 16 pixels, got {size}")
    scale = size / max(image.size)
    new = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    return image.resize(new, Image.BICUBIC, reducing_gap=3.0 if scale < 1 else None)


@torch.no_grad()
def stylize_tensor(generator: TextureNetwork, images: torch.Tensor, *, noise_factor: float | None = None,
                   seed: int | None = 0) -> torch.Tensor:
    """N,3,H,W photos in 0..1 → stylized N,3,H,W in 0..1, one forward pass (seed None: random noise)."""
    if noise_factor is not None and noise_factor < 0:
        raise TextureNetsError(f"noise_factor must be ≥ 0, got {noise_factor}")
    device = next(generator.parameters()).device
    rng = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    return generator(images.to(device), noise_factor=noise_factor, generator=rng)


def stylize(image: Image.Image | torch.Tensor | str | os.PathLike, checkpoint: TextureNetwork | str | os.PathLike,
            *, noise_factor: float | None = None, size: int | None = None, seed: int | None = 0,
            device: str | torch.device = "cpu") -> Image.Image:
    """Stylize one photo (PIL image, 3,H,W tensor in 0..1, or a file) with a checkpoint path or a
    loaded generator; returns a PIL image the size of the (optionally resized) photo."""
    generator = checkpoint if isinstance(checkpoint, torch.nn.Module) else load_generator(resolve_model(checkpoint))
    generator = generator.to(device).eval()
    if isinstance(image, torch.Tensor):
        photo = tensor_to_image(image)
    elif isinstance(image, Image.Image):
        photo = to_rgb(image)
    else:
        photo = load_image(image)
    photo = resize_longer_side(photo, size)
    out = stylize_tensor(generator, image_to_tensor(photo).unsqueeze(0), noise_factor=noise_factor, seed=seed)
    return tensor_to_image(out)


def save_image_atomic(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save in the format of the file extension via a temporary file, so no partial file is ever left."""
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TextureNetsError(f"{path}: unknown image extension (use one of {', '.join(SAVE_FORMATS)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex}{path.suffix}"
    try:
        options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
        image.save(tmp, format=fmt, **options)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plan_outputs(inputs: Sequence[str | os.PathLike], output: str | os.PathLike | None,
                 model_name: str) -> list[tuple[Path, Path]]:
    """Pair each input file with its output file.

    One input file: `output` is the file to write (default: <stem>_<model>.<ext> in the current folder).
    A folder or several files: `output` is a folder (default: stylized_<model>/), mirroring sub-folders.
    Outputs keep the input's format unless a single output file names another extension.
    """
    sources: list[tuple[Path, Path]] = []  # (file, path relative to the output folder)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources += [(f, f.relative_to(path)) for f in find_images(path)]
        elif path.is_file():
            sources.append((path, Path(path.name)))
        else:
            raise TextureNetsError(f"input not found: {path}")
    single = len(inputs) == 1 and Path(inputs[0]).is_file()
    if single:
        src = sources[0][0]
        target = Path(output) if output else Path(f"{src.stem}_{model_name}{src.suffix}")
        if target.is_dir():
            target = target / f"{src.stem}_{model_name}{src.suffix}"
        return [(src, target)]
    folder = Path(output) if output else Path(f"stylized_{model_name}")
    if folder.suffix.lower() in IMAGE_EXTENSIONS and not folder.is_dir():
        raise TextureNetsError(f"--output {folder} looks like a file, but there are {len(sources)} inputs: "
                               f"give a folder")
    pairs = [(src, folder / rel) for src, rel in sources]
    if len({dst for _, dst in pairs}) != len(pairs):
        raise TextureNetsError("two inputs would be written to the same output file (same names): "
                               "stylize them separately")
    return pairs


def stylize_files(generator: TextureNetwork, pairs: Sequence[tuple[Path, Path]], *, size: int | None = None,
                  noise_factor: float | None = None, seed: int | None = 0,
                  on_error=None) -> list[Path]:
    """Stylize each (input, output) pair; an unreadable input is reported to `on_error` (or raised)."""
    written = []
    for src, dst in pairs:
        try:
            photo = resize_longer_side(load_image(src), size)
        except TextureNetsError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        out = stylize_tensor(generator, image_to_tensor(photo).unsqueeze(0), noise_factor=noise_factor, seed=seed)
        written.append(save_image_atomic(tensor_to_image(out), dst))
    return written
