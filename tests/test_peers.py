"""The peers benchmarks/quality.py compares the shipped styles with (needs ../shared): the Texture
Networks paper's released generators (benchmarks/ulyanov_t7.py, needs `torchfile`) and mmalotin's
MobileNetV2 fast-neural-style networks (benchmarks/mmalotin_mobilenetv2.py); and quality.py's scorer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from texture_nets.core.images import find_images, image_to_tensor, load_image, resize_longer_side
from texture_nets.core.losses import PerceptualLoss
from texture_nets.core.vgg import VGG19Features

from .conftest import SHARED, SHARED_COCO, SHARED_STYLES, SHARED_VGG

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
PEER = SHARED / "peers" / "ulyanov2016_t7" / "stylization_models" / "mosaic_style.t7"
pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def peer():
    pytest.importorskip("torchfile")
    if not PEER.is_file():
        pytest.skip(f"{PEER} is absent")
    from ulyanov_t7 import UlyanovT7
    return UlyanovT7(PEER)


def test_flat_parameters_follow_torch7_order(peer):
    from ulyanov_t7 import flat_parameters, leaves_with_parameters, load_t7
    root = load_t7(PEER)
    flat, offsets = flat_parameters(root)
    leaves = leaves_with_parameters(root)
    sizes = [np.size(leaf._obj[b"weight"]) + np.size(leaf._obj[b"bias"]) for leaf in leaves]
    assert flat.size == sum(sizes)
    for leaf in leaves:  # weight, then bias, at the module's offset
        w = np.asarray(leaf._obj[b"weight"], dtype=np.float32).ravel()
        b = np.asarray(leaf._obj[b"bias"], dtype=np.float32).ravel()
        assert np.array_equal(flat[offsets[id(leaf)]:offsets[id(leaf)] + w.size], w)
        assert np.array_equal(flat[offsets[id(leaf)] + w.size:offsets[id(leaf)] + w.size + b.size], b)


def test_released_generator_stylizes_a_real_photo(peer):
    photo = image_to_tensor(resize_longer_side(load_image(find_images(SHARED_COCO / "val2017")[0]), 160)).unsqueeze(0)
    out = peer(photo, seed=0)
    assert out.shape == photo.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, peer(photo, seed=0)) and not torch.equal(out, peer(photo, seed=1))
    vgg = VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2"], weights=str(SHARED_VGG))
    loss = PerceptualLoss(vgg, style_layers=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
    loss.set_style([image_to_tensor(load_image(SHARED_STYLES / "ulyanov_mosaic.jpg")).unsqueeze(0)])
    with torch.no_grad():
        stylized, untouched = loss(out, photo), loss(photo, photo)
    # read correctly, the network moves the photo far toward its style and keeps its layout
    assert float(stylized.style) < 0.5 * float(untouched.style)
    assert float(stylized.content) < 2.0


MMALOTIN = SHARED / "peers" / "mmalotin_mobilenetv2"


@pytest.mark.parametrize("style", ["mosaic", "candy", "picasso"])
def test_mmalotin_networks_load_and_stylize(style):
    """benchmarks/mmalotin_mobilenetv2.py: every file loads strictly into the rebuilt network, and a
    photo of a size that is no multiple of 4 comes back its own size, changed, in 0..1."""
    if not (MMALOTIN / f"{style}.pth").is_file():
        pytest.skip(f"{MMALOTIN / style}.pth is absent")
    from mmalotin_mobilenetv2 import load
    network = load(style)
    photo = image_to_tensor(resize_longer_side(load_image(find_images(SHARED_COCO / "val2017")[0]), 130)).unsqueeze(0)
    assert photo.shape[2] % 4 and photo.shape[3] % 4 == 2  # 87x130: the padding path
    out = network.photo(photo)
    assert out.shape == photo.shape and out.min() >= 0 and out.max() <= 1
    assert (out - photo).abs().mean() > 0.05  # not the photo back
    assert torch.equal(out, network.photo(photo))  # no noise: deterministic
    # keeps the layout: its luminance follows the photo's
    from quality_metrics import luminance_correlation
    assert luminance_correlation(photo, out).item() > 0.3


def test_mmalotin_mosaic_moves_toward_its_style():
    if not (MMALOTIN / "mosaic.pth").is_file():
        pytest.skip("mmalotin's mosaic.pth is absent")
    from mmalotin_mobilenetv2 import load
    photo = image_to_tensor(resize_longer_side(load_image(find_images(SHARED_COCO / "val2017")[1]), 160)).unsqueeze(0)
    out = load("mosaic").photo(photo)
    vgg = VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2"], weights=str(SHARED_VGG))
    loss = PerceptualLoss(vgg, style_layers=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
    loss.set_style([image_to_tensor(resize_longer_side(load_image(SHARED_STYLES / "mosaic.jpg"), 256)).unsqueeze(0)])
    with torch.no_grad():
        stylized, untouched = loss(out, photo), loss(photo, photo)
    assert float(stylized.style) < 0.7 * float(untouched.style)


def test_quality_scorer_gives_the_training_loss():
    """benchmarks/quality.py's one-pass Scorer: its relative figures are the training loss's."""
    import quality
    photo = image_to_tensor(resize_longer_side(load_image(find_images(SHARED_COCO / "val2017")[0]), 96)).unsqueeze(0)
    picture = (photo * 0.7 + 0.2 * torch.rand(photo.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    scorer = quality.Scorer("ulyanov_mosaic", 128)
    row, reference = scorer(picture, photo), quality.score(scorer.criterion, picture, photo)
    assert row["style"] == pytest.approx(reference["style"], rel=1e-5)
    assert row["content"] == pytest.approx(reference["content"], rel=1e-5)
    assert row["classic_style"] > 0 and row["classic_content"] > 0
    assert -1 <= row["edge_corr"] <= 1 and row["contrast_ratio"] > 0
