"""Uploaded images, checked before a pixel is decoded: the header (size, mode, format) refuses
non-images (415) and decompression bombs (413); decoding turns damaged data into one 4xx line."""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

from PIL import Image

from ..data import to_rgb
from .limits import UserError, clip


class Header(NamedTuple):
    """What an image file's header says, before any pixel is decoded."""

    width: int
    height: int
    mode: str
    format: str | None


def image_header(data: bytes, max_pixels: int) -> Header:
    """The header of an uploaded image, refusing non-images (415) and pictures over `max_pixels`
    (413: decompression bombs) without decoding anything."""
    if not data:
        raise UserError("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                header = Header(image.width, image.height, image.mode, image.format)
    except Image.DecompressionBombError as exc:
        raise UserError(f"image refused: {exc}", 413) from exc
    except Exception as exc:  # noqa: BLE001 — Pillow's plugins raise more than OSError on damaged files
        raise UserError(f"not a readable image ({type(exc).__name__}: {clip(str(exc), 200)})", 415) from exc
    if header.width * header.height > max_pixels:
        raise UserError(f"image is {header.width}x{header.height} pixels, over the limit of "
                        f"{max_pixels / 1e6:g} megapixels", 413)
    return header


def decode_image(data: bytes) -> Image.Image:
    """An uploaded image (its header already checked by `image_header`) decoded to RGB."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return to_rgb(image)
    except MemoryError as exc:
        raise UserError("the image is too large to decode on this server", 413) from exc
    except Image.DecompressionBombError as exc:
        raise UserError(f"image refused: {exc}", 413) from exc
    except Exception as exc:  # noqa: BLE001 — truncated or damaged data, in any of Pillow's plugins
        raise UserError(f"not a readable image ({type(exc).__name__}: {clip(str(exc), 200)})", 415) from exc
