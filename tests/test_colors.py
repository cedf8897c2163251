"""Colour preservation: the luminance method keeps the photo's chrominance, colour matching gives
the style the photo's colour statistics, and both refuse what they cannot do."""

import numpy as np
import pytest
import torch

from texture_nets import TextureNetsError
from texture_nets.core import colors

from .conftest import smooth_image, stripes_image


def as_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1).unsqueeze(0)


def test_yiq_round_trip_and_grey_has_no_chrominance():
    images = torch.rand(2, 3, 8, 9, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(colors.yiq_to_rgb(colors.rgb_to_yiq(images)), images, atol=1e-5)
    grey = colors.luminance(images)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.allclose(colors.rgb_to_yiq(grey)[:, 1:], torch.zeros(1), atol=1e-5)


def test_combined_image_has_the_photos_chrominance_and_the_stylized_luminance():
    rng = np.random.default_rng(3)
    photo = as_tensor(smooth_image(rng, 40, 32)) * 0.6 + 0.2  # away from the gamut's edges
    stylized = as_tensor(smooth_image(rng, 40, 32)) * 0.5 + 0.25
    out = colors.combine_luminance(stylized, photo)
    out_yiq, photo_yiq, styl_yiq = (colors.rgb_to_yiq(x) for x in (out, photo, stylized))
    inside = ((colors.yiq_to_rgb(torch.cat([styl_yiq[:, :1], photo_yiq[:, 1:]], 1)) - 0.5).abs() < 0.5).all(1)
    assert inside.float().mean() > 0.9  # the test images leave most pixels in gamut, where equality is exact
    assert (out_yiq[:, 1:] - photo_yiq[:, 1:]).abs().amax(1)[inside].max() < 1e-4
    assert (out_yiq[:, 0] - styl_yiq[:, 0]).abs()[inside].max() < 1e-4
    assert not torch.allclose(out, photo, atol=0.05) and out.min() >= 0 and out.max() <= 1


def test_combined_sizes_must_match():
    with pytest.raises(TextureNetsError, match="one size"):
        colors.combine_luminance(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


def test_matched_luminance_has_the_photos_mean_and_contrast():
    photo = as_tensor(smooth_image(np.random.default_rng(4), 30, 30)) * 0.5
    style = as_tensor(stripes_image(48))
    matched = colors.match_luminance(style, photo)
    target = colors.luminance(photo)
    assert matched.mean() == pytest.approx(float(target.mean()), abs=0.01)
    assert matched.std() == pytest.approx(float(target.std()), rel=0.05)
    assert torch.equal(matched[:, 0], matched[:, 2])  # grey


def test_matched_colors_have_the_photos_mean_and_covariance():
    photo = as_tensor(smooth_image(np.random.default_rng(5), 40, 40)) * 0.5 + 0.25
    style = as_tensor(smooth_image(np.random.default_rng(6), 48, 36)) * 0.8 + 0.1

    def stats(images):
        pixels = images.double().permute(1, 0, 2, 3).reshape(3, -1)
        return pixels.mean(1), torch.cov(pixels, correction=0)

    out_mean, out_cov = stats(colors.match_colors(style, photo))
    photo_mean, photo_cov = stats(photo)
    assert torch.allclose(out_mean, photo_mean, atol=0.01) and torch.allclose(out_cov, photo_cov, atol=2e-3)
    assert not torch.allclose(stats(style)[1], photo_cov, atol=2e-3)  # it did have to change


def test_unknown_method_is_refused():
    assert colors.check_method(None) is None and colors.check_method("") is None
    with pytest.raises(TextureNetsError, match="luminance, match"):
        colors.check_method("yuv")
