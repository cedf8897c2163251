"""benchmarks/quality_metrics.py on small synthetic images with known answers (no ../shared needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from texture_nets.core.losses import gram_matrix, relative_mse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import quality_metrics as qm  # noqa: E402


def shapes_image(size: int = 64, seed: int = 0) -> torch.Tensor:
    """1,3,H,W: a few flat-coloured rectangles on a grey ground (strong, known edges)."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 0.5, dtype=np.float32)
    for _ in range(5):
        x0, y0 = rng.integers(0, size - 16, size=2)
        w, h = rng.integers(8, 24, size=2)
        image[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 1, size=3)
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)


def test_identical_images_correlate_perfectly():
    image = shapes_image()
    assert qm.edge_correlation(image, image).item() == pytest.approx(1.0, abs=1e-6)
    assert qm.luminance_correlation(image, image).item() == pytest.approx(1.0, abs=1e-6)


def test_negated_image_keeps_its_edges_but_inverts_its_light():
    image = shapes_image()
    negated = 1 - image
    # |∇(1 − x)| = |∇x|: the same edges; the luminance is mirrored
    assert qm.edge_correlation(image, negated).item() == pytest.approx(1.0, abs=1e-5)
    assert qm.luminance_correlation(image, negated).item() == pytest.approx(-1.0, abs=1e-5)


def test_unrelated_images_correlate_weakly():
    a, b = shapes_image(seed=0), shapes_image(seed=1)
    assert abs(qm.edge_correlation(a, b).item()) < 0.5
    noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert abs(qm.edge_correlation(a, noise).item()) < 0.3


def test_pearson_is_per_image_and_nan_for_a_constant():
    a = torch.arange(12.0).view(2, 1, 2, 3)
    r = qm.pearson(a, torch.stack([a[0] * 3 + 1, -a[1]]))
    assert r.tolist() == pytest.approx([1.0, -1.0])
    assert torch.isnan(qm.pearson(a[:1], torch.ones(1, 1, 2, 3))).all()


def test_blur_keeps_a_flat_image_and_the_mean():
    flat = torch.full((1, 1, 20, 20), 0.3)
    assert torch.allclose(qm.gaussian_blur(flat, 2.0), flat)
    image = shapes_image(32)
    blurred = qm.gaussian_blur(image, 1.5)
    assert blurred.shape == image.shape and blurred.std() < image.std()
    assert torch.equal(qm.gaussian_blur(image, 0), image)


def test_sobel_magnitude_of_a_ramp_and_a_step():
    ramp = torch.arange(10.0).repeat(10, 1).view(1, 1, 10, 10)
    magnitude = qm.sobel_magnitude(ramp)
    assert torch.allclose(magnitude[..., 1:-1, 1:-1], torch.full((1, 1, 8, 8), 8.0))  # slope 1 × Sobel gain 8
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1
    assert qm.sobel_magnitude(step)[0, 0, 4, :3].eq(0).all() and qm.sobel_magnitude(step)[0, 0, 4, 3:5].gt(0).all()


def test_lab_of_known_colours():
    colours = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]).view(3, 3, 1, 1)
    lab = qm.rgb_to_lab(colours)[:, :, 0, 0]
    assert lab[0].tolist() == pytest.approx([100.0, 0.0, 0.0], abs=0.01)
    assert lab[1].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=0.01)
    assert lab[2, 0].item() == pytest.approx(53.39, abs=0.05) and lab[2, 1:].abs().max() < 0.01


def test_lab_matches_scikit_image():
    color = pytest.importorskip("skimage.color")
    image = shapes_image(24)
    ours = qm.rgb_to_lab(image)[0].permute(1, 2, 0).numpy()
    theirs = color.rgb2lab(image[0].permute(1, 2, 0).double().numpy())
    assert np.abs(ours - theirs).max() < 0.05


def test_flat_image_has_no_contrast_and_a_large_colour_distance_from_a_colourful_one():
    style = qm.colour_stats(shapes_image())
    flat = qm.colour_stats(torch.full((1, 3, 32, 32), 0.5))
    assert qm.contrast_ratio(flat, style).item() == pytest.approx(0.0, abs=1e-6)
    assert qm.contrast_ratio(style, style).item() == pytest.approx(1.0)
    assert qm.colour_distance(style, style).item() == pytest.approx(0.0, abs=1e-6)
    assert qm.colour_distance(flat, style).item() > 5
    halved = qm.colour_stats((shapes_image() - 0.5) * 0.5 + 0.5)  # half the contrast around mid-grey
    assert qm.contrast_ratio(halved, style).item() == pytest.approx(0.5, rel=1e-5)
    assert qm.contrast_ratio(style, halved).item() == pytest.approx(2.0, rel=1e-5)


def test_colour_distance_of_a_known_shift():
    a = {"mean": torch.tensor([[50.0, 0.0, 0.0]]), "std": torch.tensor([[10.0, 5.0, 5.0]])}
    b = {"mean": torch.tensor([[56.0, 0.0, 3.0]]), "std": torch.tensor([[10.0, 2.0, 5.0]])}
    assert qm.colour_distance(a, b).item() == pytest.approx((6 + 3 + 3) / 6)


def test_classic_losses():
    torch.manual_seed(0)
    features = {"a": torch.rand(2, 4, 5, 6), "b": torch.rand(2, 8, 3, 3)}
    assert torch.allclose(qm.gram(features["a"]), gram_matrix(features["a"]))  # the package's normalisation
    targets = {k: qm.gram(v[:1]) for k, v in features.items()}
    style = qm.classic_style_loss(features, targets)
    assert style.shape == (2,) and style[0].item() == pytest.approx(0.0, abs=1e-12) and style[1] > 0
    expected = sum((qm.gram(v[1:]) - targets[k]).pow(2).mean() for k, v in features.items())
    assert style[1].item() == pytest.approx(expected.item(), rel=1e-6)
    classic, relative = qm.gram_errors(features, targets)
    assert torch.equal(classic, style)
    expected = sum(relative_mse(gram_matrix(v[1:]), targets[k]) for k, v in features.items())  # the package's
    assert relative[1].item() == pytest.approx(expected.item(), rel=1e-6)
    content = qm.classic_content_loss(features["a"], features["a"] + 0.5)
    assert content.tolist() == pytest.approx([0.25, 0.25])


def test_picture_metrics_of_the_photo_itself():
    photo = shapes_image()
    row = qm.picture_metrics(photo, photo, qm.colour_stats(photo))
    assert row["edge_corr"] == pytest.approx(1.0, abs=1e-6) and row["lum_corr"] == pytest.approx(1.0, abs=1e-6)
    assert row["colour_distance"] == pytest.approx(0.0, abs=1e-5) and row["contrast_ratio"] == pytest.approx(1.0)


# --- quality.py's bookkeeping (pure functions: no VGG, no ../shared) ----------------------------------

def _entry(style_size=512, precision=None, **models):
    entry = {"style_size": style_size, "models": models}
    if precision:
        entry["scored_precision"] = precision
    return entry


def test_update_keeps_peers_only_when_their_figures_still_hold():
    import quality
    before = _entry(ulyanov2016={"style": 0.7}, texture_nets={"style": 0.4})
    assert quality.reusable_peers(before, _entry(), "fp32") == {"ulyanov2016": {"style": 0.7}}  # never ours
    assert quality.reusable_peers(before, _entry(style_size=256), "fp32") == {}  # other style targets
    assert quality.reusable_peers(before, _entry(precision="bf16"), "fp32") == {}  # scored otherwise
    assert quality.reusable_peers(_entry(precision="bf16", p={"style": 1}), _entry(precision="bf16"), "fp32") \
        == {"p": {"style": 1}}
    assert quality.reusable_peers(None, _entry(), "fp32") == {}


def test_models_are_in_one_order_whichever_peers_were_kept():
    import quality
    kept_first = {"mmalotin_mobilenetv2": 1, "ulyanov2016": 2, "texture_nets": 3}
    assert list(quality.in_model_order(kept_first)) == ["texture_nets", "ulyanov2016", "mmalotin_mobilenetv2"]
    assert list(quality.in_model_order({"other": 0, "ulyanov2016": 2})) == ["ulyanov2016", "other"]
    assert quality.in_model_order(kept_first)["ulyanov2016"] == 2  # figures kept with their labels


def test_verdict_needs_both_losses_lower_under_both_metrics():
    import quality
    ours = {"style": 0.4, "content": 1.0, "classic_style": 1e5, "classic_content": 4e5}
    peer = {"style": 0.7, "content": 1.5, "classic_style": 2e5, "classic_content": 5e5}
    assert quality.verdict(ours, peer).endswith("(ours lower on both, both metrics)")
    assert "lower" not in quality.verdict(ours, {**peer, "classic_content": 3e5})  # classic content lost
    assert "lower" not in quality.verdict(ours, {**peer, "content": 1.0})  # a tie is not a win
    old = {"style": 0.7, "content": 1.5}  # measured before the classic metric existed
    assert quality.verdict(ours, old).endswith("(ours lower on both, relative)")


def test_the_readme_tables_are_replaced_in_place_and_nothing_else():
    import quality
    readme = "# Bench\n\n## Quality\n\nHeld-out: 2 photos.\n\n| old | table |\n\nHow to read it:\n- lower is better\n"
    new = quality.replace_tables(readme, "Held-out: 16 photos.\n\n| new | table |\n")
    assert new == "# Bench\n\n## Quality\n\nHeld-out: 16 photos.\n\n| new | table |\n\nHow to read it:\n- lower is better\n"
    with pytest.raises(SystemExit):
        quality.replace_tables("# Bench\nno tables here\n", "Held-out: …")
