"""Uploaded images, checked before a pixel is decoded: the header (size, mode, format) refuses
non-images and formats outside UPLOAD_FORMATS (415) and decompression bombs (413); decoding turns
damaged data into one 4xx line."""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

from PIL import Image

from texture_nets.core.images import to_rgb
from texture_nets.web.limits import UserError, check_pixels, clip

# The formats an upload may be decoded as: those of data.IMAGE_EXTENSIONS (Pillow's JPEG opener also
# reads MPO, a phone's JPEG with a second picture). Nothing else reaches Pillow's decoders: EPS would
# run Ghostscript on the uploaded bytes, and the rarer plugins (PSD, PCX, SGI, ...) are attack surface
# the page never needs.
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM")


class Header(NamedTuple):
    """What an image file's header says, before any pixel is decoded."""

    width: int
    height: int
    mode: str
    format: str | None


def open_upload(data: bytes) -> Image.Image:
    """Pillow's lazy image of an upload, in one of UPLOAD_FORMATS only (UnidentifiedImageError else)."""
    return Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)


def unaccepted() -> UserError:
    """The 415 for an upload in none of UPLOAD_FORMATS (Pillow's message names only a BytesIO)."""
    return UserError(f"not a readable image: this server takes {', '.join(UPLOAD_FORMATS[:-1])} or "
                     f"{UPLOAD_FORMATS[-1]} images", 415)


def image_header(data: bytes, max_pixels: int) -> Header:
    """The header of an uploaded image, refusing non-images and formats outside UPLOAD_FORMATS (415)
    and pictures over `max_pixels` (413: decompression bombs) without decoding anything."""
    if not data:
        raise UserError("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_upload(data) as image:
                header = Header(image.width, image.height, image.mode, image.format)
    except Image.DecompressionBombError as exc:
        raise UserError(f"image refused: {exc}", 413) from exc
    except Image.UnidentifiedImageError as exc:
        raise unaccepted() from exc
    except Exception as exc:  # noqa: BLE001 — Pillow's plugins raise more than OSError on damaged files
        raise UserError(f"not a readable image ({type(exc).__name__}: {clip(str(exc), 200)})", 415) from exc
    check_pixels(header.width, header.height, max_pixels, "image is")
    return header


def decode_image(data: bytes) -> Image.Image:
    """An uploaded image (its header already checked by `image_header`) decoded to RGB."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_upload(data) as image:
                image.load()
                return to_rgb(image)
    except MemoryError as exc:
        raise UserError("the image is too large to decode on this server", 413) from exc
    except Image.DecompressionBombError as exc:
        raise UserError(f"image refused: {exc}", 413) from exc
    except Image.UnidentifiedImageError as exc:
        raise unaccepted() from exc
    except Exception as exc:  # noqa: BLE001 — truncated or damaged data, in any of Pillow's plugins
        raise UserError(f"not a readable image ({type(exc).__name__}: {clip(str(exc), 200)})", 415) from exc
