"""The "what does the network see" view: activation grids and Gram heat maps, library and command."""

import numpy as np
import pytest
import torch
from PIL import Image

from texture_nets.cli import main
from texture_nets.core import vgg
from texture_nets.core.vgg import VGG19Features, smallest_side
from texture_nets.inference.features import activation_grid, colormap, gram_heatmaps, strongest_channels

from .conftest import smooth_image


def test_colormap_is_dark_to_bright_and_monotone_in_brightness():
    ramp = colormap(np.linspace(0, 1, 50)[None, :])[0].astype(float)
    brightness = ramp @ np.array([0.299, 0.587, 0.114])
    assert ramp.shape == (50, 3) and brightness[0] < 10 and brightness[-1] > 230
    assert (np.diff(brightness) > -1e-9).all()


def test_strongest_channels_are_ordered_by_mean_activation():
    activations = torch.zeros(1, 5, 4, 4)
    activations[0, 3] = 2.0
    activations[0, 1] = 1.0
    activations[0, 4, 0, 0] = 0.5
    assert strongest_channels(activations, 3) == [3, 1, 4]


def test_grid_has_one_row_per_layer_and_maps_follow_the_activations():
    feats = {"relu1_1": torch.zeros(1, 16, 32, 32), "relu3_1": torch.rand(1, 32, 8, 8)}
    feats["relu1_1"][0, 5, :, 16:] = 1.0  # right half lit in channel 5 only
    grid = np.asarray(activation_grid(feats, top=4, cell=64)).astype(float)
    assert grid.shape[1] == 4 * 64 + 3 * 4  # four tiles a row with three gaps
    first = grid[14:14 + 64, :64]  # first tile under the first label: channel 5
    assert first[:, 40:].mean() > 150 and first[:, :24].mean() < 20


def test_gram_heat_map_per_layer():
    feats = {"relu1_1": torch.rand(1, 16, 16, 16), "relu2_1": torch.rand(1, 100, 8, 8)}
    sheet = gram_heatmaps(feats, channels=64, cell=96)
    assert sheet.size == (2 * 96 + 8, 14 + 96)
    heat = np.asarray(sheet)[14:, :96].astype(float).sum(2)
    assert heat[0, 0] == heat.max()  # strongest channel first: its diagonal entry is the largest


def test_features_command_writes_both_pictures(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    smooth_image(np.random.default_rng(0), 60, 40).save(photo)
    out = tmp_path / "see" / "f.png"
    code = main(["features", "--input", str(photo), "--layers", "relu1_1,relu3_1,relu5_1", "--output", str(out),
                 "--vgg_weights", "random", "--top", "3", "--size", "64"])
    assert code == 0
    assert capsys.readouterr().out.split() == [str(out), str(out.with_name("f_gram.png"))]
    with Image.open(out) as grid, Image.open(out.with_name("f_gram.png")) as gram:
        assert grid.height > 3 * 100 and gram.width > 3 * 256  # three rows; three heat maps


@pytest.mark.parametrize("argv,match", [(["--layers", "relu9_9"], "relu9_9"), (["--top", "0"], "--top"),
                                        (["--input", "missing.png"], "not found")])
def test_features_bad_input_is_one_line(tmp_path, capsys, argv, match):
    photo = tmp_path / "photo.png"
    smooth_image(np.random.default_rng(0), 40, 40).save(photo)
    code = main(["features", "--input", str(photo), "--vgg_weights", "random", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and match in err


def test_smallest_side_is_what_vgg_takes():
    """The formula against VGG itself: the smallest side passes, one pixel less fails in a pooling."""
    extractor = VGG19Features(["pool5"], weights="random")
    for layer, side in [("relu1_1", 1), ("relu2_1", 2), ("relu3_1", 4), ("relu5_1", 16), ("pool5", 32)]:
        assert smallest_side(["relu1_1", layer]) == side
        extractor(torch.rand(1, 3, side, 3 * side), layers=[layer])
        if side > 1:
            with pytest.raises(RuntimeError, match="too small"):
                extractor(torch.rand(1, 3, 3 * side, side - 1), layers=[layer])


@pytest.mark.parametrize("layers,size,message", [
    ("relu1_1,relu5_1", "64", "is 64x1 pixels: VGG-19 needs at least 16 pixels on each side to reach relu5_1"),
    ("relu1_1,relu4_1", "400", "is 400x6 pixels: VGG-19 needs at least 8 pixels on each side to reach relu4_1"),
])
def test_features_of_a_picture_too_thin_for_the_layers_is_one_line_before_vgg(tmp_path, capsys, monkeypatch,
                                                                               layers, size, message):
    photo = tmp_path / "thin.png"
    smooth_image(np.random.default_rng(0), 400, 6).save(photo)
    monkeypatch.setattr(vgg, "load_vgg19_weights", lambda weights: pytest.fail("VGG was loaded"))
    code = main(["features", "--input", str(photo), "--vgg_weights", "random", "--layers", layers, "--size", size])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"texture-nets features: error: {photo} {message}; pass a larger --size or crop the picture"
    assert list(tmp_path.iterdir()) == [photo]


def test_umbrella_command_lists_its_tools(capsys):
    assert main([]) == 2 and "features" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "stylize" in capsys.readouterr().out


def test_features_of_a_real_photo_with_real_weights(tmp_path):
    """Deep layers of the real VGG respond sparsely (few strong channels), early ones broadly."""
    from .conftest import SHARED_VGG
    if not SHARED_VGG.is_file():
        pytest.skip("needs ../shared's VGG-19 weights")
    from skimage import data
    photo = torch.from_numpy(data.chelsea()[::2, ::2].copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    feats = VGG19Features(["relu1_1", "relu5_1"], weights=str(SHARED_VGG))(photo)
    active = {k: float((v > 0).float().mean()) for k, v in feats.items()}
    assert active["relu5_1"] < active["relu1_1"]
