import json

import numpy as np
import pytest
import torch
from PIL import Image

from texture_nets import TextureNetsError
from texture_nets.core.images import find_images, load_image, to_rgb
from texture_nets.training.data import (
    EpochSampler,
    PhotoDataset,
    collate,
    crop,
    load_validation_batch,
    resize_and_crop,
    resize_shorter,
    select_with_annotations,
    split_validation,
)

from .conftest import SHARED_COCO


def test_modes_become_rgb():
    gray = Image.fromarray(np.full((4, 4), 100, np.uint8), "L")
    assert to_rgb(gray).getpixel((0, 0)) == (100, 100, 100)
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red → white background
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    assert to_rgb(half).getpixel((0, 0))[0] in (126, 127)
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    assert to_rgb(cmyk).getpixel((0, 0)) == (255, 0, 0)
    sixteen = Image.fromarray(np.full((4, 4), 65535 // 2, np.uint16))  # mid-grey, not clipped to white
    assert sixteen.mode.startswith("I")
    assert to_rgb(sixteen).getpixel((0, 0))[0] in (127, 128)
    palette = gray.convert("P")
    assert to_rgb(palette).mode == "RGB"


def test_load_image_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(TextureNetsError, match="bad.jpg"):
        load_image(bad)
    with pytest.raises(TextureNetsError, match="not found"):
        load_image(tmp_path / "missing.png")
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(TextureNetsError, match="truncated.jpg"):
        load_image(truncated)


def test_find_images_recursive_and_clear_errors(photos_dir, tmp_path):
    (photos_dir / "notes.txt").write_text("not an image")
    files = find_images(photos_dir)
    assert len(files) == 8 and all(f.suffix in (".jpg", ".png") for f in files)
    assert any("c" in f.parent.name for f in files)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TextureNetsError, match="no images"):
        find_images(tmp_path / "empty")
    with pytest.raises(TextureNetsError, match="not found"):
        find_images(tmp_path / "nowhere")


def test_resize_and_crop_gives_square_crops_in_range():
    image = Image.new("RGB", (50, 30), (255, 0, 0))
    import random
    crop = resize_and_crop(image, 24, random.Random(0))
    assert crop.shape == (3, 24, 24)
    assert crop[0].min() == 1.0 and crop[1].max() == 0.0


def test_unreadable_files_are_skipped_and_reported(photos_dir):
    (photos_dir / "a" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    files = find_images(photos_dir)
    dataset = PhotoDataset(files, 16)
    index = files.index(photos_dir / "a" / "corrupt.jpg")
    image, skipped = dataset[(index, 1)]
    assert image.shape == (3, 16, 16)
    assert skipped == (str(photos_dir / "a" / "corrupt.jpg"),)
    batch = collate([dataset[(index, 1)], dataset[((index + 1) % len(files), 2)]])
    assert batch.images.shape == (2, 3, 16, 16) and len(batch.skipped) == 1


def test_sampler_resumes_exactly_and_reshuffles_each_epoch():
    full = EpochSampler(5, seed=3)
    stream = [x for _, x in zip(range(17), full)]
    resumed = [x for _, x in zip(range(10), EpochSampler(5, seed=3, start=7))]
    assert resumed == stream[7:]
    epochs = [[i for i, _ in stream[k:k + 5]] for k in (0, 5, 10)]
    assert all(sorted(e) == list(range(5)) for e in epochs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
    assert len({seed for _, seed in stream}) == len(stream)


def test_runs_with_neighbouring_seeds_never_share_an_epochs_order():
    """Seeds k and k+1 (a user's second try) give unrelated streams, not one shifted by an epoch."""
    size = 50
    streams = {seed: [i for _, (i, _) in zip(range(3 * size), EpochSampler(size, seed=seed))] for seed in (0, 1, 2)}
    for seed in (0, 1):
        for epoch in (0, 1):
            assert streams[seed][(epoch + 1) * size:(epoch + 2) * size] != streams[seed + 1][epoch * size:(epoch + 1) * size]


def test_crops_depend_on_the_seed_not_the_worker(photos_dir):
    dataset = PhotoDataset(find_images(photos_dir), 24)
    assert torch.equal(dataset[(0, 11)][0], dataset[(0, 11)][0])
    crops = {tuple(dataset[(7, seed)][0].flatten()[:200].tolist()) for seed in range(10)}
    assert len(crops) > 1


def test_validation_split_is_disjoint_and_seeded(photos_dir):
    files = find_images(photos_dir)
    train, val = split_validation(files, 3, seed=1)
    assert len(val) == 3 and len(train) == 5 and not set(train) & set(val)
    assert split_validation(files, 3, seed=1) == (train, val)
    assert split_validation(files, 100, seed=1)[0]  # always leaves something to train on


def write_coco(path, files):
    """A minimal COCO instances file: image 0 shows a dog, image 1 a cat, the rest are unlisted."""
    data = {"images": [{"id": i, "file_name": f.name, "width": 40, "height": 36} for i, f in enumerate(files[:2])],
            "annotations": [{"id": 1, "image_id": 0, "category_id": 18, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 17, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0}],
            "categories": [{"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}]}
    path.write_text(json.dumps(data))


def test_coco_annotations_select_images(photos_dir, tmp_path):
    files = find_images(photos_dir)
    ann = tmp_path / "instances.json"
    write_coco(ann, files)
    assert select_with_annotations(files, ann) == sorted(files[:2])
    assert select_with_annotations(files, ann, ["dog"]) == [files[0]]
    with pytest.raises(TextureNetsError, match="unknown COCO categories"):
        select_with_annotations(files, ann, ["unicorn"])
    ann.write_text("{not json")
    with pytest.raises(TextureNetsError, match="instances.json"):
        select_with_annotations(files, ann)


@pytest.mark.shared
def test_real_coco_annotations_select_real_photos():
    files = find_images(SHARED_COCO / "train2017")
    people = select_with_annotations(files, SHARED_COCO / "annotations" / "instances_train2017.json", ["person"])
    assert 0 < len(people) < len(files)
    image = load_image(people[0])
    assert image.mode == "RGB" and min(image.size) > 100


def test_resized_cache_gives_the_same_crops_and_survives_damage(photos_dir, tmp_path):
    files = find_images(photos_dir)
    plain = PhotoDataset(files, 24)
    cached = PhotoDataset(files, 24, cache_dir=tmp_path / "cache")
    items = [(i, 1000 + i) for i in range(len(files))] + [(0, None)]
    first = [cached[item][0] for item in items]  # fills the cache
    assert len(list((tmp_path / "cache").glob("*.npy"))) == len(files)
    for item, from_cache in zip(items, first):
        assert torch.equal(plain[item][0], from_cache)
        assert torch.equal(cached[item][0], from_cache)  # now read from the .npy files
    for entry in (tmp_path / "cache").glob("*.npy"):
        entry.write_bytes(b"damaged")
    assert torch.equal(cached[items[0]][0], first[0])
    # an edited photo is decoded again, not served stale
    Image.new("RGB", (40, 40), (255, 0, 0)).save(files[0])
    red = cached[(0, None)][0]
    assert red[0].min() > 0.95 and red[1].max() < 0.05


def test_with_a_cache_a_vanished_photo_is_skipped_like_without(photos_dir, tmp_path):
    files = find_images(photos_dir)
    files[0].unlink()
    for cache in (None, tmp_path / "cache"):
        image, skipped = PhotoDataset(files, 24, cache_dir=cache)[(0, 7)]
        assert image.shape == (3, 24, 24) and skipped == (str(files[0]),)


def test_photo_size_crops_at_the_photos_detail_scale(tmp_path):
    """photo_size resizes the shorter side before cropping: a crop then shows part of the photo at
    that scale (the same pixels as cropping the resized photo), in the cache as without it."""
    import random
    y, x = np.mgrid[0:60, 0:90]
    Image.fromarray(np.stack([x * 2, y * 4, (x + y) % 256], -1).astype(np.uint8)).save(tmp_path / "p.png")
    whole = PhotoDataset([tmp_path / "p.png"], 16)[(0, None)][0]
    scaled = PhotoDataset([tmp_path / "p.png"], 16, photo_size=48)[(0, 7)][0]
    cached = PhotoDataset([tmp_path / "p.png"], 16, tmp_path / "cache", photo_size=48)[(0, 7)][0]
    expected = crop(resize_shorter(load_image(tmp_path / "p.png"), 48), 16, random.Random(7))
    assert torch.equal(scaled, expected) and torch.equal(cached, expected)
    assert whole.shape == scaled.shape == (3, 16, 16)
    # the crop of the 48-px photo spans a third of its height: its rows change less than the whole photo's
    assert (scaled[1, -1] - scaled[1, 0]).abs().mean() < 0.6 * (whole[1, -1] - whole[1, 0]).abs().mean()
    val, _ = load_validation_batch([tmp_path / "p.png"], 16, photo_size=48)
    assert torch.equal(val[0], crop(resize_shorter(load_image(tmp_path / "p.png"), 48), 16, None))
