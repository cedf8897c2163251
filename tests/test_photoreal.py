"""Photorealism's maths: the matrix-free matting Laplacian equals Levin et al.'s matrix built entry by
entry; a picture that is an affine function of the photo's colours has (near) zero energy, strokes a
large one; its gradient matches finite differences; the guided filter makes a stylized picture
locally affine in the photo, keeps a global colour change as it is, and refuses absurd settings; the
fast path gives the filtered picture back the stylized picture's colours; `--optimize --photorealistic`
starts from the photo in the style's colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from texture_nets import TextureNetsError
from texture_nets.inference.photoreal import MattingLaplacian, guided_filter, photographic


def explicit_laplacian(photo: np.ndarray, eps: float) -> np.ndarray:
    """Levin et al. 2008's matting Laplacian (3×3 windows inside the image), entry by entry."""
    h, w, _ = photo.shape
    n = h * w
    laplacian = np.zeros((n, n))
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            index = [(y + dy) * w + (x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            window = photo[y - 1:y + 2, x - 1:x + 2].reshape(9, 3)
            mean = window.mean(0)
            sigma = (window - mean).T @ (window - mean) / 9
            inverse = np.linalg.inv(sigma + eps / 9 * np.eye(3))
            centred = window - mean
            block = np.eye(9) - (1 + centred @ inverse @ centred.T) / 9
            laplacian[np.ix_(index, index)] += block
    return laplacian


@pytest.fixture
def photo() -> torch.Tensor:
    return torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_the_matrix_free_product_equals_the_explicit_matting_laplacian(photo):
    eps = 1e-3
    v = torch.rand(2, 6, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    laplacian = explicit_laplacian(photo[0].permute(1, 2, 0).numpy(), eps)
    expected = np.stack([laplacian @ channel.reshape(-1) for channel in v.numpy()]).reshape(2, 6, 7)
    got = MattingLaplacian(photo, eps=eps).product(v).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_an_affine_function_of_the_photos_colours_has_near_zero_energy(photo):
    big = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    laplacian = MattingLaplacian(big)
    matrix = torch.tensor([[0.8, 0.1, 0.0], [0.2, 0.5, 0.1], [0.0, 0.3, 0.9]], dtype=torch.float64)
    recoloured = torch.einsum("ij,njhw->nihw", matrix, big) + torch.tensor([0.05, -0.02, 0.1]).view(1, 3, 1, 1)
    strokes = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert laplacian.energy(recoloured) < 1e-6
    assert laplacian.energy(strokes) > 1e4 * max(float(laplacian.energy(recoloured)), 1e-12)


def test_the_energys_gradient_matches_finite_differences(photo):
    laplacian = MattingLaplacian(photo, eps=1e-3)
    v = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(4), dtype=torch.float64, requires_grad=True)
    laplacian.energy(v).backward()
    step, numeric = 1e-6, torch.zeros_like(v)
    for index in [(0, 0, 0, 0), (0, 1, 2, 3), (0, 2, 5, 6), (0, 0, 3, 1)]:
        bumped = v.detach().clone()
        bumped[index] += step
        lowered = v.detach().clone()
        lowered[index] -= step
        numeric[index] = (laplacian.energy(bumped) - laplacian.energy(lowered)) / (2 * step)
        assert abs(float(numeric[index]) - float(v.grad[index])) < 1e-6 * max(1.0, abs(float(v.grad[index])))


def test_the_guided_filter_makes_strokes_locally_affine_and_keeps_a_global_colour_change():
    generator = torch.Generator().manual_seed(5)
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    photo = torch.stack([x, y, (x * y) ** 0.5]).unsqueeze(0)  # smooth colours
    photo[:, :, 30:60, 40:90] *= 0.4  # and a sharp edge
    stylized = (photo + 0.3 * torch.rand(photo.shape, generator=generator)).clamp(0, 1)  # strokes
    smoothed = guided_filter(photo, stylized, radius=8, eps=1e-3)
    laplacian = MattingLaplacian(photo)
    assert laplacian.energy(smoothed) < 0.2 * laplacian.energy(stylized)
    recoloured = (0.7 * photo + 0.1).clamp(0, 1)
    assert (guided_filter(photo, recoloured, radius=8, eps=1e-4) - recoloured).abs().max() < 0.02


def colour_moments(pictures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = pictures.double().permute(1, 0, 2, 3).reshape(3, -1)
    return pixels.mean(1), torch.cov(pixels)


def test_the_fast_path_keeps_the_stylized_colours_and_stays_locally_affine():
    generator = torch.Generator().manual_seed(6)
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    photo = torch.stack([x, y, (x * y) ** 0.5]).unsqueeze(0)
    photo[:, :, 30:60, 40:90] *= 0.4
    tint = torch.tensor([0.9, 0.3, 0.2]).view(1, 3, 1, 1)  # a warm, contrasty style of its own colours
    stylized = (tint * photo.mean(1, keepdim=True) * 1.4 + 0.6 * torch.rand(photo.shape, generator=generator) ** 3)
    stylized = torch.cat([stylized, stylized.flip(3)]).clamp(0, 1)  # two pictures: fitted one by one
    photos = torch.cat([photo, photo.flip(3)])
    filtered, fast = guided_filter(photos, stylized, radius=8), photographic(photos, stylized, radius=8)
    for index in range(2):
        target_mean, target_cov = colour_moments(stylized[index:index + 1])
        mean, cov = colour_moments(fast[index:index + 1])
        filtered_mean, filtered_cov = colour_moments(filtered[index:index + 1])
        assert (mean - target_mean).abs().max() < 0.01
        # clamping to 0..1 keeps a little of the difference
        assert (cov - target_cov).abs().max() < 0.25 * (filtered_cov - target_cov).abs().max()
        laplacian = MattingLaplacian(photos[index:index + 1])
        assert laplacian.energy(fast[index:index + 1]) < 0.2 * laplacian.energy(stylized[index:index + 1])


@pytest.mark.parametrize("radius,eps,words", [(0, 1e-2, "radius"), (10**6, 1e-2, "radius"),
                                              (8, 0.0, "eps"), (8, float("nan"), "eps"), (8, -1.0, "eps")])
def test_absurd_guided_filter_settings_are_refused(radius, eps, words):
    with pytest.raises(TextureNetsError, match=words):
        guided_filter(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), radius=radius, eps=eps)


def energy_of(path, photo: torch.Tensor) -> float:
    from PIL import Image

    from texture_nets.core.images import image_to_tensor
    picture = image_to_tensor(Image.open(path).convert("RGB")).unsqueeze(0)
    return float(MattingLaplacian(photo).energy(picture))


@pytest.fixture
def chelsea(tmp_path):
    from texture_nets.core.images import photo_batch
    from texture_nets.inference.engine import SAMPLE_PHOTO
    return SAMPLE_PHOTO, photo_batch(SAMPLE_PHOTO, 256)


def test_stylize_photorealistic_keeps_the_style_and_drops_the_strokes(chelsea, tmp_path):
    from texture_nets.cli import stylize_main
    source, photo = chelsea
    plain, real = tmp_path / "plain.png", tmp_path / "real.png"
    assert stylize_main(["--model", "candy", "--input", str(source), "--output", str(plain), "--size", "256"]) == 0
    assert stylize_main(["--model", "candy", "--input", str(source), "--output", str(real), "--size", "256",
                         "--photorealistic"]) == 0
    assert energy_of(real, photo) < 0.2 * energy_of(plain, photo)
    tiled = tmp_path / "tiled.png"
    assert stylize_main(["--model", "candy", "--input", str(source), "--output", str(tiled), "--size", "256",
                         "--photorealistic", "--tile", "64"]) == 0
    from PIL import Image
    difference = np.abs(np.asarray(Image.open(tiled), int) - np.asarray(Image.open(real), int))
    assert difference.mean() < 1.0  # tiles: the same picture, then the same fit


@pytest.mark.parametrize("flags,words", [(["--photoreal_radius", "0"], "photoreal_radius"),
                                         (["--photoreal_eps", "nan"], "photoreal_eps"),
                                         (["--photoreal_eps", "-1"], "photoreal_eps")])
def test_absurd_photorealistic_flags_are_one_line(chelsea, tmp_path, capsys, flags, words):
    from texture_nets.cli import stylize_main
    source, _ = chelsea
    out = tmp_path / "out.png"
    assert stylize_main(["--model", "candy", "--input", str(source), "--output", str(out), "--photorealistic",
                         *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and not out.exists()


def test_the_optimisation_with_the_regulariser_is_more_locally_affine(tmp_path):
    from texture_nets.core.losses import PerceptualLoss
    from texture_nets.core.vgg import VGG19Features
    from texture_nets.inference.optimize import stylize_optimized
    generator = torch.Generator().manual_seed(6)
    photo = torch.rand(1, 3, 32, 32, generator=generator)
    style = torch.rand(1, 3, 32, 32, generator=generator)
    results = {}
    for weight in (0.0, 1e3):
        torch.manual_seed(0)
        criterion = PerceptualLoss(VGG19Features(["relu1_1", "relu2_1"], weights="random"),
                                   style_layers=["relu1_1", "relu2_1"], content_layers=["relu2_1"])
        results[weight] = stylize_optimized(criterion, photo, [style], steps=15, photoreal_weight=weight, init="noise")
    laplacian = MattingLaplacian(photo)
    assert float(laplacian.energy(results[1e3])) < 0.5 * float(laplacian.energy(results[0.0]))


def test_the_web_app_stylizes_photorealistically_on_request(chelsea, tmp_path):
    pytest.importorskip("fastapi")
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from texture_nets.web import WebConfig, create_app
    source, photo = chelsea
    config = WebConfig(checkpoint_dir=str(tmp_path), data_root=str(tmp_path), engine="torch")
    with TestClient(create_app(config)) as client:
        pictures = {}
        for real in (False, True):
            response = client.post("/api/stylize", data={"model": "candy", "size": "256",
                                                         "photorealistic": str(real).lower()},
                                   files={"file": ("c.jpg", source.read_bytes(), "image/jpeg")})
            assert response.status_code == 200
            pictures[real] = tmp_path / f"{real}.png"
            Image.open(io.BytesIO(response.content)).save(pictures[real])
    assert energy_of(pictures[True], photo) < 0.2 * energy_of(pictures[False], photo)


def test_starting_from_the_styles_colours_is_a_global_colour_change_of_the_photo():
    from texture_nets.core import colors
    from texture_nets.core.losses import PerceptualLoss
    from texture_nets.core.vgg import VGG19Features
    from texture_nets.inference.optimize import stylize_optimized
    generator = torch.Generator().manual_seed(8)
    photo = torch.rand(1, 3, 32, 32, generator=generator) * 0.5
    style = 0.5 + 0.5 * torch.rand(1, 3, 40, 40, generator=generator) * torch.tensor([1.0, 0.4, 0.1]).view(1, 3, 1, 1)
    criterion = PerceptualLoss(VGG19Features(["relu1_1"], weights="random"), style_layers=["relu1_1"],
                               content_layers=["relu1_1"])
    start = stylize_optimized(criterion, photo, [style], init="colors", steps=1, optimizer="adam", learning_rate=1e-6)
    assert torch.allclose(start, colors.match_colors(photo, style), atol=1e-4)  # one tiny step from there
    assert (start.mean((2, 3)) - style.mean((2, 3))).abs().max() < 0.01  # the style's palette
    laplacian = MattingLaplacian(photo.double())
    assert float(laplacian.energy(start)) < 1e-3 * float(laplacian.energy(torch.rand(1, 3, 32, 32)))
    with pytest.raises(TextureNetsError, match="colors"):
        from texture_nets.inference.optimize import optimize_image
        optimize_image(criterion, photo, init="colors", steps=1)


def test_optimize_photorealistic_starts_from_the_styles_colours_unless_told(tmp_path, monkeypatch):
    from texture_nets.cli import stylize as stylize_cli
    from texture_nets.cli import stylize_main
    from texture_nets.inference.options import PHOTOREAL_OPTIMIZE
    seen = []

    def spy(criterion, photo, styles, blend=None, **options):
        seen.append(options)
        return photo
    monkeypatch.setattr(stylize_cli, "stylize_optimized", spy)
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    from PIL import Image
    Image.fromarray((np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)).save(photo)
    Image.fromarray((np.random.default_rng(1).random((40, 48, 3)) * 255).astype(np.uint8)).save(style)
    common = ["--optimize", "--input", str(photo), "--style", str(style), "--vgg_weights", "random", "--size", "48",
              "--style_layers", "relu1_1", "--content_layers", "relu1_1"]
    for extra in ([], ["--photorealistic"], ["--photorealistic", "--steps", "7", "--init", "content"]):
        assert stylize_main([*common, *extra, "--output", str(tmp_path / f"{len(extra)}.png")]) == 0
    plain, real, told = seen
    assert (plain["init"], plain["steps"], plain["photoreal_weight"]) == ("content", 300, 0.0)
    assert {key: real[key] for key in PHOTOREAL_OPTIMIZE} == PHOTOREAL_OPTIMIZE
    weight = PHOTOREAL_OPTIMIZE["photoreal_weight"]
    assert (told["init"], told["steps"], told["photoreal_weight"]) == ("content", 7, weight)


@pytest.mark.parametrize("case,words", [("grey", "grayscale"), ("grey_rgb", "grayscale"),
                                        ("weight_nan", "photoreal_weight"), ("weight_negative", "photoreal_weight")])
def test_bad_optimize_photorealistic_input_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, case, words):
    from PIL import Image

    from texture_nets.cli import stylize as stylize_cli
    from texture_nets.cli import stylize_main
    monkeypatch.setattr(stylize_cli, "load_objective", lambda *a, **k: pytest.fail("work began"))
    rng = np.random.default_rng(3)
    photo, style = tmp_path / "photo.png", tmp_path / "style.jpg"
    Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(photo)
    grey = (rng.random((40, 48)) * 255).astype(np.uint8)
    if case == "grey":
        Image.fromarray(grey).save(style)
    elif case == "grey_rgb":  # stored as colour, holding none
        Image.fromarray(np.stack([grey] * 3, axis=2)).save(style, quality=95)
    else:
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(style)
    weight = {"weight_nan": ["--photoreal_weight", "nan"],
              "weight_negative": ["--photoreal_weight", "-1"]}.get(case, [])
    out = tmp_path / "out.png"
    assert stylize_main(["--optimize", "--photorealistic", "--input", str(photo), "--style", str(style),
                         "--vgg_weights", "random", "--output", str(out), *weight]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and not out.exists()


def test_a_colour_style_photo_is_not_taken_for_grayscale(tmp_path):
    from PIL import Image

    from texture_nets.core.images import is_grayscale
    path = tmp_path / "sepia.jpg"
    grey = np.linspace(0, 255, 48 * 40).reshape(40, 48)
    Image.fromarray(np.stack([grey, grey * 0.8, grey * 0.6], axis=2).astype(np.uint8)).save(path)
    assert not is_grayscale(path)
