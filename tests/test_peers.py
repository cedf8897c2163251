"""benchmarks/ulyanov_t7.py, the reader of the Texture Networks paper's released generators that
benchmarks/quality.py compares the shipped styles with (needs ../shared and `torchfile`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from texture_nets.data import find_images, image_to_tensor, load_image
from texture_nets.losses import PerceptualLoss
from texture_nets.stylize import resize_longer_side
from texture_nets.vgg import VGG19Features

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
