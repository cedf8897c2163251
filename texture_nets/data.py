"""Training photos: an image folder (COCO's layout works as is), robust decoding, crops, batches.

Every sample's crop is drawn from a seed that the sampler hands out with the index, so a run is
reproducible whatever the number of DataLoader workers, and a resumed run sees exactly the batches
an uninterrupted one would have seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset, Sampler

from .errors import TextureNetsError
from .files import atomic_output
from .memory import available_memory, check_fits, decode_bytes

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


def select_with_annotations(files: list[Path], annotations: str | os.PathLike,
                            categories: Sequence[str] = ()) -> list[Path]:
    """Keep the files that a COCO annotation file lists (and that show one of `categories`, if given)."""
    path = Path(annotations)
    if not path.is_file():
        raise TextureNetsError(f"annotation file not found: {path}")
    from pycocotools.coco import COCO
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            coco = COCO(str(path))
    except Exception as exc:
        raise TextureNetsError(f"{path}: not a COCO annotation file ({exc.__class__.__name__}: {exc})") from exc
    if categories:
        known = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
        unknown = [c for c in categories if c not in known]
        if unknown:
            raise TextureNetsError(f"unknown COCO categories {unknown}; known: {', '.join(sorted(known))}")
        image_ids = set()
        for name in categories:
            image_ids |= set(coco.getImgIds(catIds=[known[name]]))
    else:
        image_ids = set(coco.getImgIds())
    wanted = {img["file_name"] for img in coco.loadImgs(list(image_ids))}
    selected = [f for f in files if f.name in wanted]
    if not selected:
        raise TextureNetsError(f"none of the {len(files)} images is selected by {path}"
                               + (f" with categories {list(categories)}" if categories else ""))
    return selected


def resize_shorter(image: Image.Image, size: int) -> np.ndarray:
    """The photo resized so its shorter side is `size` (bicubic), as an H,W,3 uint8 array."""
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    return np.asarray(image.resize((new_w, new_h), Image.BICUBIC, reducing_gap=3.0), dtype=np.uint8)


def crop(array: np.ndarray, size: int, rng: random.Random | None) -> torch.Tensor:
    """A size×size crop of an H,W,3 array (random with `rng`, centred without) as 3,size,size in 0..1."""
    height, width = array.shape[:2]
    if rng is None:
        left, top = (width - size) // 2, (height - size) // 2
    else:
        left, top = rng.randint(0, width - size), rng.randint(0, height - size)
    return torch.from_numpy(array[top:top + size, left:left + size].copy()).permute(2, 0, 1).float().div_(255.0)


def resize_and_crop(image: Image.Image, size: int, rng: random.Random | None) -> torch.Tensor:
    """Resize the shorter side to `size`, crop size×size (random with `rng`, centred without): 3,size,size."""
    return crop(resize_shorter(image, size), size, rng)


class ResizedCache:
    """Decoded, resized photos kept as .npy files, so each photo is decoded and resized once.

    A file's entry is keyed by its path, size, modification time and the target size, so an edited
    photo or another --image_size gets a fresh entry. Entries are written to a temporary name and
    renamed (DataLoader workers may race on one: both write the same bytes). About 200 KB per photo
    at 256 px; reading one takes well under a millisecond, decoding a 640-px COCO JPEG and resizing
    it several.
    """

    def __init__(self, folder: str | os.PathLike, size: int):
        self.folder, self.size = Path(folder), size
        self.folder.mkdir(parents=True, exist_ok=True)

    def _entry(self, path: Path) -> Path:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.size}"
        return self.folder / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"

    def resized(self, path: Path) -> np.ndarray:
        """The photo at `path` resized (from the cache, or decoded now and stored)."""
        try:
            entry = self._entry(path)
        except OSError:  # the photo itself is gone: load_image says so in the usual way
            return resize_shorter(load_image(path), self.size)
        try:
            return np.load(entry)
        except (OSError, ValueError, EOFError):  # absent, or damaged (even empty): decode again
            pass
        array = resize_shorter(load_image(path), self.size)
        try:
            with atomic_output(entry) as tmp, open(tmp, "xb") as handle:  # a handle: np.save adds no ".npy"
                np.save(handle, array)
        except TextureNetsError:  # a full or read-only cache costs speed, never the run
            pass
        return array


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


@dataclass
class Batch:
    """Photos ready for the generator, and the files that could not be read on the way."""

    images: torch.Tensor  # (B, 3, S, S) in 0..1
    skipped: tuple[str, ...]

    def pin_memory(self) -> "Batch":
        return Batch(self.images.pin_memory(), self.skipped)


class PhotoDataset(Dataset):
    """Photos from `files`, resized so the shorter side is `photo_size` (default: image_size) and
    cropped to image_size × image_size; an unreadable file is skipped.

    Indexed by (index, crop_seed) pairs from `EpochSampler` (crop_seed None → centre crop). A file
    that fails to decode is replaced by the next readable one and reported in the sample, so the
    main process can warn once per file and count them (workers cannot share a counter).
    """

    def __init__(self, files: Sequence[Path], image_size: int, cache_dir: str | os.PathLike | None = None,
                 photo_size: int | None = None):
        if image_size < 16:
            raise TextureNetsError(f"image_size must be at least 16 pixels, got {image_size}")
        self.files = list(files)
        self.image_size = image_size
        self.photo_size = max(photo_size or 0, image_size)
        self.cache = ResizedCache(cache_dir, self.photo_size) if cache_dir else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item) -> tuple[torch.Tensor, tuple[str, ...]]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        skipped = []
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            try:
                resized = self.cache.resized(path) if self.cache else resize_shorter(load_image(path), self.photo_size)
            except TextureNetsError:
                skipped.append(str(path))
                continue
            rng = None if seed is None else random.Random(seed)
            return crop(resized, self.image_size, rng), tuple(skipped)
        raise TextureNetsError(f"none of the {len(self.files)} training images could be read (e.g. {self.files[0]}): "
                               f"check the photos in --data_dir")


def collate(samples: list[tuple[torch.Tensor, tuple[str, ...]]]) -> Batch:
    """Stack samples into a `Batch`, gathering the skipped file names."""
    return Batch(torch.stack([s[0] for s in samples]), tuple(p for s in samples for p in s[1]))


# How EpochSampler seeds each epoch's order, recorded in checkpoints so that a run resumes with the order
# it began with: 1, seed + epoch (until December 2026; runs with seeds k and k+1 saw the same orders one
# epoch apart); 2, seed·1,000,003 + epoch.
EPOCH_ORDER = 2


class EpochSampler(Sampler):
    """Endless (index, crop_seed) stream: a fresh permutation each epoch, all derived from `seed`.

    `start` skips that many samples without touching the data, which is how resume lands exactly;
    `order`: the EPOCH_ORDER the run began with.
    """

    def __init__(self, size: int, seed: int, start: int = 0, order: int = EPOCH_ORDER):
        if order not in (1, 2):
            raise TextureNetsError(f"unknown data order {order!r} (a checkpoint of a newer texture_nets?)")
        self.size, self.seed, self.start, self.order = size, seed, start, order

    def epoch_seed(self, epoch: int) -> int:
        """The seed of one epoch's permutation."""
        return self.seed + epoch if self.order == 1 else (self.seed * 1_000_003 + epoch) % 2**63

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.size)
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.epoch_seed(epoch)))
            for i in order[offset:].tolist():
                yield i, (self.seed * 1_000_003 + position) % 2**63
                position += 1

    def __len__(self) -> int:  # endless; DataLoader only needs a length for progress estimates
        return 2**62


class ShardedSampler(Sampler):
    """One process's share of a global sample stream (multi-process training's "DistributedSampler").

    The stream of `sampler` is cut into consecutive global batches of `batch_size`; rank r of
    `world_size` yields the r-th contiguous slice (batch_size / world_size samples) of each. Batched
    by a DataLoader at that local size, the processes together see exactly the global batches one
    process would, so the data order stays a function of (seed, global position) and a resume from
    any step lands exactly, whatever the number of processes before and after. PyTorch's own
    `DistributedSampler` cannot do this: it deals out one epoch's indices round-robin and can only
    start at an epoch boundary, not at an arbitrary global position.
    """

    def __init__(self, sampler: Sampler, batch_size: int, rank: int, world_size: int):
        if batch_size % world_size or not 0 <= rank < world_size:
            raise TextureNetsError(f"cannot shard batches of {batch_size} for rank {rank} of {world_size}")
        self.sampler, self.batch_size, self.rank, self.world_size = sampler, batch_size, rank, world_size

    def __iter__(self) -> Iterator:
        local = self.batch_size // self.world_size
        first = self.rank * local
        for position, item in enumerate(self.sampler):  # indices and seeds only: no data is loaded here
            if first <= position % self.batch_size < first + local:
                yield item

    def __len__(self) -> int:
        return len(self.sampler) // self.world_size


def split_validation(files: list[Path], count: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Hold out `count` files (chosen by `seed`) for validation: (train, val). Keeps ≥1 for training."""
    count = max(0, min(count, len(files) - 1))
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:count])
    return [f for i, f in enumerate(files) if i not in held], [files[i] for i in sorted(held)]


def load_validation_batch(files: Sequence[Path], image_size: int,
                          photo_size: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Centre crops (image_size) of the readable validation files resized as for training (shorter side
    photo_size, default image_size), (N,3,S,S), and the names of unreadable ones."""
    images, skipped = [], []
    for path in files:
        try:
            images.append(crop(resize_shorter(load_image(path), max(photo_size or 0, image_size)), image_size, None))
        except TextureNetsError:
            skipped.append(str(path))
    return (torch.stack(images) if images else torch.empty(0, 3, image_size, image_size)), skipped

