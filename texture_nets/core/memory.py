"""Memory: how much there is, and rough estimates of what a training run or a picture needs.

Checked before any work starts, so that an impossible size is refused in one line instead of the
process being killed by the system minutes later. The estimates err high; they are compared with
the memory available now (host RAM, or the GPU's free memory for CUDA).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from texture_nets.core.errors import TextureNetsError

# Training and optimisation: VGG-19 forward and backward (and the generator's activations) per pixel
# of each crop. Measured on the CPU in fp32 with the default layers: 4.0 KB (128 to 384 pixels,
# batch 2). 16-bit autocast halves most activations.
VGG_BYTES_PER_PIXEL = 4500
VGG_BYTES_PER_PIXEL_HALF = 2500
DECODED_BYTES_PER_PIXEL = 3 * 2  # an 8-bit RGB photo, and the copy a resize or conversion makes
# Decoding a file at full size: PIL keeps RGB in 4 bytes per pixel; the decoded image, its EXIF-rotated
# and converted copies and the uint8 array can coexist. 16-bit and float images go through float64
# (data.to_rgb).
DECODE_BYTES_PER_PIXEL = 16
WIDE_DECODE_BYTES_PER_PIXEL = 40
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def available_memory() -> int | None:
    """Bytes of memory available now (Linux MemAvailable), or None where that cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def device_memory(device: torch.device) -> int | None:
    """Bytes free on `device` now: the GPU's free memory for CUDA, else the host's available memory."""
    if device.type == "cuda":
        try:
            return torch.cuda.mem_get_info(device)[0]
        except RuntimeError:
            return None
    return available_memory()


def gigabytes(size: float) -> str:
    """A byte count as '3.2 GB'."""
    return f"{size / 2**30:.1f} GB"


def check_fits(need: int, available: int | None, what: str, fix: str) -> None:
    """Refuse `what` (e.g. 'a batch of 4 crops of 256 pixels') when it needs more than `available`
    bytes (None: unknown, not checked), saying how to `fix` it."""
    if available is not None and need > available:
        raise TextureNetsError(f"{what} needs about {gigabytes(need)} of memory, more than the {gigabytes(available)} "
                               f"available: {fix}")


def training_bytes(image_size: int, local_batch: int, resize_size: int, num_val: int, num_workers: int,
                   half: bool = False) -> int:
    """Rough peak memory of training steps on `local_batch` crops of image_size² (16-bit autocast:
    `half`), with the validation batch and the photos the data loader keeps decoded and resized
    (shorter side resize_size; each worker prefetches 4 batches)."""
    per_pixel = VGG_BYTES_PER_PIXEL_HALF if half else VGG_BYTES_PER_PIXEL
    crops = image_size * image_size * (local_batch * per_pixel + num_val * per_pixel // 4)
    loaded = max(num_workers, 1) * 4 * local_batch * resize_size * resize_size * 2 * DECODED_BYTES_PER_PIXEL
    return crops + loaded


def decode_bytes(width: int, height: int, mode: str = "RGB") -> int:
    """Rough peak memory of decoding a width × height image file of PIL `mode` at full size, before any
    resize, into an RGB photo."""
    return width * height * (WIDE_DECODE_BYTES_PER_PIXEL if mode in WIDE_MODES else DECODE_BYTES_PER_PIXEL)


def picture_bytes(width: int, height: int, half: bool = False) -> int:
    """Rough peak memory of optimising one width × height picture against VGG-19 (Gatys et al.)."""
    return width * height * ((VGG_BYTES_PER_PIXEL_HALF if half else VGG_BYTES_PER_PIXEL) + DECODED_BYTES_PER_PIXEL)


class OutOfMemory(MemoryError):
    """PyTorch failing to allocate, on any device (`on_gpu`: CUDA's memory ran out, not the host's)."""

    def __init__(self, message: str, on_gpu: bool):
        super().__init__(message)
        self.on_gpu = on_gpu


@contextmanager
def allocation_failures() -> Iterator[None]:
    """Inside the block, PyTorch failing to allocate raises OutOfMemory, so callers catch one type.
    CUDA raises torch.OutOfMemoryError, but the CPU allocator a plain RuntimeError (c10's enforce in
    alloc_cpu.cpp): that one is recognised here, and only here, by the allocator's name in it."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        raise OutOfMemory(str(exc), on_gpu=True) from exc
    except RuntimeError as exc:
        if "DefaultCPUAllocator" not in str(exc):
            raise
        raise OutOfMemory(str(exc), on_gpu=False) from exc
