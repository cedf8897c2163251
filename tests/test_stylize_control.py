"""stylize.py's control options end to end: --optimize with one or several styles, --preserve_colors
in both modes, and the errors and warnings of bad style input."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from texture_nets.cli import stylize_main, train_main
from texture_nets.core import colors

from .conftest import as_argv, smooth_image, stripes_image, tiny_overrides

FAST = ["--vgg_weights", "random", "--style_layers", "relu1_1,relu2_1", "--content_layers", "relu2_1",
        "--size", "48", "--style_size", "48"]


def yiq(path) -> torch.Tensor:
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return colors.rgb_to_yiq(torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0))


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    smooth_image(np.random.default_rng(1), 60, 45).save(path)
    return path


@pytest.fixture
def second_style(tmp_path) -> Path:
    path = tmp_path / "blobs.png"
    smooth_image(np.random.default_rng(2), 48, 48).save(path)
    return path


def test_optimize_writes_the_picture_and_intermediates(photo, style_path, tmp_path, capsys):
    out = tmp_path / "out" / "gatys.png"
    code = stylize_main(["--optimize", "--input", str(photo), "--style", str(style_path), "--output", str(out),
                         "--steps", "4", "--save_every", "2", *FAST])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.parent.iterdir()) == ["gatys.png", "gatys_0002.png"]
    with Image.open(out) as image, Image.open(photo) as source:
        assert image.size == (48, 36)  # --size is the longer side
        result = np.asarray(image, dtype=float)
        assert np.abs(result - np.asarray(source.resize((48, 36)), dtype=float)).mean() > 1  # it moved
    assert capsys.readouterr().out.strip() == str(out)


def test_optimize_blend_names_its_output_after_the_styles_and_adam_runs(photo, style_path, second_style, tmp_path,
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = stylize_main(["--optimize", "--input", str(photo), "--style", str(style_path), "--style", str(second_style),
                         "--style_blend", "0.7,0.3", "--optimizer", "adam", "--init", "noise", "--steps", "3", *FAST])
    assert code == 0 and (tmp_path / "photo_stripes+blobs.png").is_file()


@pytest.mark.parametrize("method", ["luminance", "match"])
def test_optimize_preserve_colors(photo, style_path, tmp_path, method):
    out = tmp_path / f"{method}.png"
    assert stylize_main(["--optimize", "--input", str(photo), "--style", str(style_path), "--output", str(out),
                         "--steps", "4", "--preserve_colors", method, *FAST]) == 0
    with Image.open(photo) as image:
        image.resize((48, 36), Image.Resampling.BICUBIC, reducing_gap=3.0).save(tmp_path / "src.png")
    plain = tmp_path / "plain.png"
    assert stylize_main(["--optimize", "--input", str(photo), "--style", str(style_path), "--output", str(plain),
                         "--steps", "4", *FAST]) == 0
    source = yiq(tmp_path / "src.png")[:, 1:]
    error, plain_error = ((yiq(path)[:, 1:] - source).abs().mean() for path in (out, plain))
    assert error < plain_error  # colours closer to the photo's than without the option
    if method == "luminance":
        assert error < 0.02  # and equal to them, up to 8-bit rounding and the gamut's edges


@pytest.fixture
def trained(photos_dir, style_path, tmp_path):
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck")
    values.pop("device")
    assert train_main(as_argv(values) + ["--name", "stripes"]) == 0
    return tmp_path / "ck" / "stripes.pt"


def test_feed_forward_preserve_colors_keeps_the_photos_chrominance(trained, photo, tmp_path):
    plain, kept = tmp_path / "plain.png", tmp_path / "kept.png"
    common = ["--model", str(trained), "--input", str(photo), "--engine", "torch"]
    assert stylize_main(common + ["--output", str(plain)]) == 0
    assert stylize_main(common + ["--output", str(kept), "--preserve_colors"]) == 0
    photo_yiq, plain_yiq, kept_yiq = yiq(photo), yiq(plain), yiq(kept)
    assert (kept_yiq[:, 1:] - photo_yiq[:, 1:]).abs().mean() < 0.01  # 8-bit rounding and the gamut's edges
    assert (plain_yiq[:, 1:] - photo_yiq[:, 1:]).abs().mean() > 0.03
    assert (kept_yiq[:, 0] - plain_yiq[:, 0]).abs().mean() < 0.01  # the style's luminance


def test_blend_training_records_the_blend(photos_dir, style_path, second_style, tmp_path):
    from texture_nets import load_checkpoint
    values = tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=2)
    values.pop("device")
    argv = as_argv(values) + ["--texture", str(second_style), "--style_blend", "3,1", "--name", "mix"]
    assert train_main(argv) == 0
    style = load_checkpoint(tmp_path / "ck" / "mix.pt")["style"]
    assert style["blend"] == [0.75, 0.25] and [i["name"] for i in style["images"]] == ["stripes.png", "blobs.png"]


def write_style(tmp_path, size) -> str:
    path = tmp_path / f"style_{size[0]}x{size[1]}.png"
    Image.fromarray(np.asarray(stripes_image(max(size)))[:size[1], :size[0]]).save(path)
    return str(path)


@pytest.mark.parametrize("case,match", [
    ("blend_count", "2 style_blend weights for 1 --style"),
    ("negative_blend", "≥ 0 and not all zero"),
    ("zero_blend", "≥ 0 and not all zero"),
    ("unknown_layer", "relu6_1"),
    ("tiny_style", "at least 32 pixels"),
    ("no_style", "no style image"),
    ("missing_style", "image not found"),
    ("loss_flag_without_optimize", "--style_weight applies to optimisation"),
    ("model_with_optimize", "--model is for a trained network"),
    ("no_model", "pass --model"),
    ("bad_steps", "steps must be ≥ 1"),
])
def test_control_bad_input_is_one_line_and_writes_nothing(photo, style_path, tmp_path, capsys, case, match):
    out = tmp_path / "out" / "x.png"
    argv = ["--optimize", "--input", str(photo), "--output", str(out), "--steps", "2", *FAST]
    styles = ["--style", str(style_path)]
    extra = {"blend_count": ["--style_blend", "0.7,0.3"], "negative_blend": ["--style_blend", "-1"],
             "zero_blend": ["--style_blend", "0"], "unknown_layer": ["--style_layers", "relu1_1,relu6_1"],
             "bad_steps": ["--steps", "0"], "model_with_optimize": ["--model", "mosaic"]}.get(case, [])
    if case == "tiny_style":
        styles = ["--style", write_style(tmp_path, (16, 16))]
    elif case == "no_style":
        styles = []
    elif case == "missing_style":
        styles = ["--style", str(tmp_path / "none.jpg")]
    elif case == "loss_flag_without_optimize":
        argv = ["--model", "mosaic", "--input", str(photo), "--style_weight", "2"]
        styles = []
    elif case == "no_model":
        argv, styles = ["--input", str(photo)], []
    code = stylize_main(argv + styles + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and match in err, err
    assert not out.parent.exists()


def test_optimize_refuses_a_picture_too_thin_for_vgg_before_loading_it(style_path, tmp_path, capsys, monkeypatch):
    from texture_nets.core import vgg
    thin = tmp_path / "thin.png"
    smooth_image(np.random.default_rng(1), 400, 6).save(thin)
    monkeypatch.setattr(vgg, "load_vgg19_weights", lambda weights: pytest.fail("VGG was loaded"))
    code = stylize_main(["--optimize", "--input", str(thin), "--style", str(style_path), "--output",
                         str(tmp_path / "out" / "x.png"), "--vgg_weights", "random", "--size", "64"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"stylize.py: error: {thin} is 64x1 pixels: VGG-19 needs at least 16 pixels on each "
                                 f"side to reach relu5_1; pass a larger --size or crop the picture")
    assert not (tmp_path / "out").exists()


def test_feed_forward_refuses_color_matching(trained, photo, tmp_path, capsys):
    out = tmp_path / "x.png"
    code = stylize_main(["--model", str(trained), "--input", str(photo), "--output", str(out),
                         "--preserve_colors", "match"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "luminance" in err and len(err.splitlines()) == 1 and not out.exists()


def test_huge_style_image_is_downscaled_with_a_warning(photo, tmp_path, capsys):
    huge = tmp_path / "huge.png"
    Image.new("RGB", (12000, 3000), (200, 30, 40)).save(huge)
    out = tmp_path / "x.png"
    code = stylize_main(["--optimize", "--input", str(photo), "--style", str(huge), "--output", str(out),
                         "--steps", "1", *FAST[:6], "--size", "48", "--style_size", "256"])
    err = capsys.readouterr().err
    assert code == 0 and out.is_file()
    assert "warning: huge.png is 12000x3000 pixels: downscaled to 256x64 (style_size 256)" in err


def test_style_image_checks_in_the_library(tmp_path):
    from texture_nets import TextureNetsError
    from texture_nets.core.images import load_style_image
    path = tmp_path / "style.png"
    Image.new("RGB", (5000, 1000), (200, 30, 40)).save(path)
    with pytest.warns(UserWarning, match="5000x1000 pixels: downscaled to 512x102"):
        image, info = load_style_image(path, 512)
    assert image.shape == (1, 3, 102, 512) and info["size"] == [5000, 1000] and info["used_size"] == [512, 102]
    with pytest.raises(TextureNetsError, match="512x26 pixels at style_size 512"), pytest.warns(UserWarning):
        Image.new("RGB", (5000, 250)).save(path)
        load_style_image(path, 512)
    with pytest.raises(TextureNetsError, match="16x40 pixels"):
        Image.new("RGB", (16, 40)).save(path)
        load_style_image(path, 512)


def test_style_scale_sets_the_size_of_the_style_features(tmp_path, photos_dir, style_path, capsys):
    """style_scale resizes the fitted style image (Gatys et al.'s style scale), is refused outside its
    range, and a run trained with it says so in its checkpoint (settings and the style image's used size)."""
    from texture_nets import TextureNetsError, load_checkpoint
    from texture_nets.core.images import load_style_image
    path = tmp_path / "style.png"
    stripes_image(100).resize((100, 60)).save(path)
    image, info = load_style_image(path, 512, 2.0)
    assert image.shape == (1, 3, 120, 200) and info["used_size"] == [200, 120]
    assert load_style_image(path, 50, 1.5)[1]["used_size"] == [75, 45]  # fitted to 50, then scaled
    with pytest.raises(TextureNetsError, match="at style_size 64 and style_scale 0.5"):
        load_style_image(path, 64, 0.5)
    for value, size in (("0", 48), ("nan", 48), ("5", 48), ("2", 8000)):
        argv = as_argv(tiny_overrides(photos_dir, style_path, tmp_path / "bad", style_scale=value, style_size=size))
        assert train_main(argv) == 2 and "style_scale must" in capsys.readouterr().err
    assert train_main(as_argv(tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=2,
                                             style_scale=1.5))) == 0
    checkpoint = load_checkpoint(tmp_path / "ck" / "stripes.pt")
    assert checkpoint["train"]["style_scale"] == 1.5 and checkpoint["style"]["images"][0]["used_size"] == [72, 72]
