"""Optimisation-based stylization (Gatys et al.): it lowers the same loss that training uses, keeps
the pixels in 0..1, and refuses bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from texture_nets import TextureNetsError
from texture_nets.core import colors
from texture_nets.core.losses import PerceptualLoss
from texture_nets.core.vgg import VGG19Features
from texture_nets.inference.optimize import optimize_image, stylize_optimized

from .conftest import smooth_image, stripes_image


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
    out = optimize_image(criterion, photo, steps=15, on_step=lambda i, terms, image: seen.append((i, float(terms.total))))
    with torch.no_grad():
        before, after = criterion(photo, photo), criterion(out, photo)
    assert out.shape == photo.shape and out.min() >= 0 and out.max() <= 1
    assert float(after.total) < 0.5 * float(before.total)  # the style term starts high, content at 0
    assert float(after.style) < float(before.style) and float(after.content) > 0
    assert [i for i, _ in seen] == list(range(1, len(seen) + 1)) and 5 <= len(seen) <= 15


def test_bf16_runs_the_criterion_in_bf16_and_lowers_the_loss_as_fp32_does(criterion_and_photo):
    criterion, photo = criterion_and_photo
    dtypes = []
    hook = criterion.vgg.register_forward_hook(lambda module, args, out: dtypes.append(next(iter(out.values())).dtype))
    try:
        half = optimize_image(criterion, photo, steps=15, precision="bf16")
        seen_bf16, dtypes[:] = set(dtypes), []
        full = optimize_image(criterion, photo, steps=15, precision="fp32")
    finally:
        hook.remove()
    assert seen_bf16 == {torch.bfloat16} and set(dtypes) == {torch.float32}
    assert half.dtype == torch.float32 and half.min() >= 0 and half.max() <= 1
    with torch.no_grad():  # both scored in fp32
        before, after_half, after_full = (float(criterion(x, photo).total) for x in (photo, half, full))
    assert after_half < 0.5 * before and after_half < 1.5 * after_full


def test_start_from_noise_is_seeded(criterion_and_photo):
    criterion, photo = criterion_and_photo
    a = optimize_image(criterion, photo, steps=2, init="noise", seed=1)
    b = optimize_image(criterion, photo, steps=2, init="noise", seed=1)
    assert torch.equal(a, b) and not torch.allclose(a, photo, atol=0.1)


def test_adam_lowers_the_loss_too_and_callbacks_see_each_image(criterion_and_photo):
    criterion, photo = criterion_and_photo
    images = []
    out = optimize_image(criterion, photo, steps=12, optimizer="adam", learning_rate=0.05,
                         on_step=lambda i, terms, image: images.append(image.clone()))
    with torch.no_grad():
        before, after = criterion(photo, photo), criterion(out, photo)
    assert float(after.total) < 0.7 * float(before.total) and out.min() >= 0 and out.max() <= 1
    assert len(images) == 12 and torch.equal(images[-1], out) and not torch.equal(images[0], images[-1])


def test_two_style_blend_weights_pull_toward_their_style():
    """A 0.9/0.1 blend ends closer to the first style's statistics than a 0.1/0.9 blend, and vice versa."""
    rng = np.random.default_rng(12)
    vgg = VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_2"], weights="random")
    criterion = PerceptualLoss(vgg, style_layers=["relu1_1", "relu2_1", "relu3_1"], style_weight=5.0)
    a, b = as_tensor(smooth_image(rng, 48, 48)), as_tensor(stripes_image(48))
    photo = as_tensor(smooth_image(rng, 40, 32))
    def distances(blend):
        out = stylize_optimized(criterion, photo, [a, b], blend, steps=15)
        with torch.no_grad():
            criterion.set_style([a])
            to_a = float(criterion(out).style)
            criterion.set_style([b])
            return to_a, float(criterion(out).style)

    near_a, near_b = distances([0.9, 0.1]), distances([0.1, 0.9])
    assert near_a[0] < near_b[0] and near_b[1] < near_a[1]  # the weights move the result toward their style


@pytest.mark.parametrize("method", ["luminance", "match"])
def test_preserved_colors(criterion_and_photo, method):
    """Luminance: the output's chrominance is the photo's. Match: the style image is recoloured, so
    the output's colours move toward the photo's rather than the style's."""
    criterion, photo = criterion_and_photo
    style = as_tensor(stripes_image(48))  # saturated red, yellow, blue
    plain = stylize_optimized(criterion, photo, [style], steps=10)
    kept = stylize_optimized(criterion, photo, [style], steps=10, preserve_colors=method)
    chroma = lambda x: colors.rgb_to_yiq(x)[:, 1:]  # noqa: E731
    if method == "luminance":
        assert (chroma(kept) - chroma(photo)).abs().mean() < 0.01
        assert (colors.rgb_to_yiq(kept)[:, 0] - colors.rgb_to_yiq(photo)[:, 0]).abs().mean() > 0.005
    assert (chroma(kept) - chroma(photo)).abs().mean() < (chroma(plain) - chroma(photo)).abs().mean()


@pytest.mark.parametrize("kwargs,match", [({"steps": 0}, "steps"), ({"init": "zeros"}, "init"),
                                          ({"init": torch.zeros(1, 3, 4, 4)}, "shape"),
                                          ({"optimizer": "sgd"}, "optimizer"),
                                          ({"optimizer": "adam", "learning_rate": 0.0}, "learning_rate")])
def test_bad_arguments(criterion_and_photo, kwargs, match):
    criterion, photo = criterion_and_photo
    with pytest.raises(TextureNetsError, match=match):
        optimize_image(criterion, photo, **kwargs)


def test_one_call_api_returns_the_picture(tmp_path):
    from PIL import Image

    from texture_nets import optimize
    rng = np.random.default_rng(13)
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    smooth_image(rng, 80, 60).save(photo)
    stripes_image(48).save(style)
    picture = optimize(photo, style, size=40, steps=3, vgg_weights="random", style_layers=["relu1_1"],
                       content_layers=["relu2_1"], preserve_colors="luminance")
    assert isinstance(picture, Image.Image) and picture.size == (40, 30)
    with pytest.raises(TextureNetsError, match="unknown config option 'steps_'"):
        optimize(photo, [style], steps_=3)
    thin = tmp_path / "thin.png"
    smooth_image(rng, 400, 6).save(thin)
    with pytest.raises(TextureNetsError, match="the photo is 40x1 pixels: VGG-19 needs at least 2 pixels"):
        optimize(thin, style, size=40, steps=1, vgg_weights="random", style_layers=["relu1_1"],
                 content_layers=["relu2_1"])
