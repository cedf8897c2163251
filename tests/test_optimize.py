"""Optimisation-based stylization (Gatys et al.): it lowers the same loss that training uses, keeps
the pixels in 0..1, and refuses bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from texture_nets import TextureNetsError
from texture_nets.losses import PerceptualLoss
from texture_nets.optimize import optimize_image
from texture_nets.vgg import VGG19Features

from .conftest import smooth_image


def as_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1).unsqueeze(0)


@pytest.fixture(scope="module")
def criterion_and_photo():
    rng = np.random.default_rng(11)
    vgg = VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_2"], weights="random")
    criterion = PerceptualLoss(vgg, style_layers=["relu1_1", "relu2_1", "relu3_1"], style_weight=5.0)
    criterion.set_style([as_tensor(smooth_image(rng, 48, 48))])
    return criterion, as_tensor(smooth_image(rng, 40, 32))


def test_optimisation_lowers_the_training_loss_within_bounds(criterion_and_photo):
    criterion, photo = criterion_and_photo
    seen = []
    out = optimize_image(criterion, photo, steps=15, on_step=lambda i, terms: seen.append((i, float(terms.total))))
    with torch.no_grad():
        before, after = criterion(photo, photo), criterion(out, photo)
    assert out.shape == photo.shape and out.min() >= 0 and out.max() <= 1
    assert float(after.total) < 0.5 * float(before.total)  # the style term starts high, content at 0
    assert float(after.style) < float(before.style) and float(after.content) > 0
    assert [i for i, _ in seen] == list(range(1, len(seen) + 1)) and 5 <= len(seen) <= 15


def test_start_from_noise_is_seeded(criterion_and_photo):
    criterion, photo = criterion_and_photo
    a = optimize_image(criterion, photo, steps=2, init="noise", seed=1)
    b = optimize_image(criterion, photo, steps=2, init="noise", seed=1)
    assert torch.equal(a, b) and not torch.allclose(a, photo, atol=0.1)


@pytest.mark.parametrize("kwargs,match", [({"steps": 0}, "steps"), ({"init": "zeros"}, "init"),
                                          ({"init": torch.zeros(1, 3, 4, 4)}, "shape")])
def test_bad_arguments(criterion_and_photo, kwargs, match):
    criterion, photo = criterion_and_photo
    with pytest.raises(TextureNetsError, match=match):
        optimize_image(criterion, photo, **kwargs)
