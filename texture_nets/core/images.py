"""Image I/O shared by training and inference: decode checks before any pixel is decoded, loading,
tensor ↔ image conversion, resizing, style images, atomic saving."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output
from texture_nets.core.memory import available_memory, check_fits, decode_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image (grayscale, palette, RGBA, CMYK, 16-bit, float) as 8-bit RGB.

    Alpha is composited over white (transparent pixels often hold arbitrary colours); 16-bit and
    32-bit integer images are scaled from their full range, not clipped at 255.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        if image.mode == "F" and array.max(initial=0) <= 1.0:
            peak = 1.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image file fully into RGB, or raise TextureNetsError naming the file and the cause."""
    path = Path(path)
    if not path.is_file():
        raise TextureNetsError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later in a worker
            return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise over_decode_limit(path) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise TextureNetsError(f"{path}: cannot read as an image ({exc})") from exc


def over_decode_limit(path: Path) -> TextureNetsError:
    """The error for a picture over Pillow's guard against decompression bombs (it refuses more than
    twice Image.MAX_IMAGE_PIXELS), in this project's words. The command lines that stylize lift the
    guard and judge each picture against memory instead (cli.common.pictures_judged_by_memory)."""
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
    return TextureNetsError(f"{path}: the picture is over {limit:.0f} megapixels, the most decoded here in one "
                            f"picture (a guard against decompression bombs); shrink it first")


def image_header(path: str | os.PathLike) -> tuple[int, int, str]:
    """(width, height, PIL mode) of an image file as stored, from its header alone (nothing is decoded),
    or TextureNetsError naming the file; to size the work before decoding a picture."""
    path = Path(path)
    if not path.is_file():
        raise TextureNetsError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():  # a huge picture is judged by its caller, against memory
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.width, image.height, image.mode
    except Image.DecompressionBombError as exc:
        raise over_decode_limit(path) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise TextureNetsError(f"{path}: cannot read as an image ({exc})") from exc


def image_dimensions(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file as stored, from its header alone (see `image_header`)."""
    return image_header(path)[:2]


def decodable_dimensions(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, from its header, after refusing one whose full-size decode
    (before any resize) needs more host memory than is available now (memory.decode_bytes)."""
    width, height, mode = image_header(path)
    check_fits(decode_bytes(width, height, mode), available_memory(), f"{path}: decoding {width}x{height} pixels",
               "shrink the picture first")
    return width, height


def is_grayscale(path: str | os.PathLike, tolerance: int = 2) -> bool:
    """Whether an image file holds no colour: a grey mode, or RGB whose channels differ by at most
    `tolerance` levels anywhere in a ≤256-px draft (JPEG decodes reduced; call after decodable_dimensions)."""
    with Image.open(path) as image:
        if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
            return True
        image.draft("RGB", (256, 256))
        image.thumbnail((256, 256))
        array = np.asarray(to_rgb(image), dtype=np.int16)
    return int((array.max(axis=2) - array.min(axis=2)).max()) <= tolerance


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


MIN_STYLE_SIDE = 32  # a style image's shorter side: at 16 pixels relu5_1 sees one position, no texture


HUGE_STYLE_SIDE = 4096  # larger style images are shrunk a lot: said, since Gram statistics depend on scale


MAX_STYLE_SIDE = 8192  # style_size (× style_scale): larger is a typo, or gigabytes for one style image


MIN_STYLE_SCALE, MAX_STYLE_SCALE = 0.25, 4.0  # style_scale: beyond these the style is a blur or a speckle


def fit_style_image(image: Image.Image, style_size: int, source: str, scale: float = 1.0) -> Image.Image:
    """A style image shrunk so its longer side is ≤ style_size (never enlarged), then resized by
    `scale` (style_scale: the size of the style's features in the result). Too small for VGG's five
    pooling levels: TextureNetsError naming `source`. Huge (longer side > 4096): shrunk with a
    warning, because the style's scale in the result is then that of the shrunk image."""
    original = image.size
    if min(original) < MIN_STYLE_SIDE:
        raise TextureNetsError(f"{source}: style image is {original[0]}x{original[1]} pixels; it needs at least "
                               f"{MIN_STYLE_SIDE} pixels on each side (VGG-19 halves it four times before relu5_1)")
    shrink = min(1.0, style_size / max(original))
    fitted = (max(1, round(original[0] * shrink)), max(1, round(original[1] * shrink)))
    if shrink < 1 and max(original) > HUGE_STYLE_SIDE:
        warnings.warn(f"{Path(source).name} is {original[0]}x{original[1]} pixels: downscaled to "
                      f"{fitted[0]}x{fitted[1]} (style_size {style_size}); its brush strokes enter "
                      f"the loss at that scale", stacklevel=3)
    final = (max(1, round(fitted[0] * scale)), max(1, round(fitted[1] * scale)))  # one resampling for both
    if final != original:
        image = image.resize(final, resample=Image.Resampling.BICUBIC,
                             reducing_gap=3.0 if final[0] < original[0] else None)
    if min(image.size) < MIN_STYLE_SIDE:
        raise TextureNetsError(f"{source}: style image is {image.size[0]}x{image.size[1]} pixels at style_size "
                               f"{style_size}" + (f" and style_scale {scale:g}" if scale != 1.0 else "") +
                               f"; it needs at least {MIN_STYLE_SIDE} pixels on each side: raise "
                               f"--style_size or crop the image")
    return image


def load_style_image(path: str | os.PathLike, style_size: int, scale: float = 1.0) -> tuple[torch.Tensor, dict]:
    """A style image file as 1,3,H,W in 0..1, fitted to style_size and `scale` (see `fit_style_image`),
    and its provenance (file name, sha256, original and used size) for checkpoints."""
    original = load_image(path)
    image = fit_style_image(original, style_size, str(path), scale)
    info = {"name": Path(path).name, "sha256": file_sha256(path), "size": list(original.size),
            "used_size": list(image.size)}
    return image_to_tensor(image).unsqueeze(0), info


def find_images(root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """All image files (or files of `extensions`) below `root` (recursively, sorted), or a clear
    error if there are none."""
    root = Path(root)
    if not root.is_dir():
        raise TextureNetsError(f"data folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file())
    if not files:
        raise TextureNetsError(f"no {'images' if extensions == IMAGE_EXTENSIONS else 'images or videos'} "
                               f"({', '.join(extensions)}) found in {root}")
    return files


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image → 3,H,W float tensor in 0..1."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """3,H,W (or 1,3,H,W) tensor in 0..1 → RGB PIL image (rounded, clamped)."""
    if tensor.dim() == 4:
        tensor = tensor[0]
    array = tensor.detach().float().clamp(0, 1).mul_(255).round_().byte().permute(1, 2, 0).cpu().numpy()  # one float copy: 8K pictures
    return Image.fromarray(array, mode="RGB")


MIN_SIZE, MIN_TILE = 16, 32  # pixels: a picture's longer side (--size), a tile's side (--tile)


SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP",
                ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM", ".gif": "GIF"}


def check_size(size: int | None, name: str = "--size") -> None:
    """Refuse a picture size (its longer side) under MIN_SIZE pixels; None keeps the picture's own."""
    if size is not None and size < MIN_SIZE:
        raise TextureNetsError(f"{name} must be at least {MIN_SIZE} pixels, got {size}")


def resized_dimensions(dimensions: tuple[int, int], size: int | None) -> tuple[int, int]:
    """(width, height) with the longer side `size` (keeping the aspect ratio); None keeps them."""
    if size is None:
        return dimensions
    check_size(size)
    scale = size / max(dimensions)
    return max(1, round(dimensions[0] * scale)), max(1, round(dimensions[1] * scale))


def resize_longer_side(image: Image.Image, size: int | None) -> Image.Image:
    """Resize so the longer side is `size` (keeping the aspect ratio); None keeps the image as is."""
    new = resized_dimensions(image.size, size)
    if new == image.size:
        return image
    return image.resize(new, Image.BICUBIC, reducing_gap=3.0 if max(new) < max(image.size) else None)


def photo_batch(image: Image.Image | str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """A photo (PIL image or file) as a 1,3,H,W batch in 0..1, its longer side resized to `size`."""
    photo = to_rgb(image) if isinstance(image, Image.Image) else load_image(image)
    return image_to_tensor(resize_longer_side(photo, size)).unsqueeze(0)


def save_image_atomic(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save in the format of the file extension via a temporary file, so no partial file is ever left."""
    path = Path(path)
    fmt = image_format(path)
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    with atomic_output(path) as tmp:
        image.save(tmp, format=fmt, **options)
    return path


def image_format(path: Path) -> str:
    """The Pillow format an output picture's extension names (SAVE_FORMATS), or an error listing them."""
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TextureNetsError(f"{path}: unknown image extension (use one of {', '.join(SAVE_FORMATS)})")
    return fmt
