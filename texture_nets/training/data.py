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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output
from texture_nets.core.images import load_image


def select_with_annotations(files: list[Path], annotations: str | os.PathLike,
                            categories: Sequence[str] = ()) -> list[Path]:
    """Keep the files that a COCO annotation file lists (and that show one of `categories`, if given)."""
    path = Path(annotations)
    if not path.is_file():
        raise TextureNetsError(f"annotation file not found: {path}")
    from pycocotools.coco import COCO  # pycocotools: loaded only with --annotations
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

