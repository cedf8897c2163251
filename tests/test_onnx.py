"""The ONNX Runtime engine gives the PyTorch picture, and is what the CLI picks on the CPU."""

import os
import warnings

import pytest
import torch
import torch.nn.functional as F

from texture_nets import TextureNetsError
from texture_nets.core.pyramid import TextureNetwork
from texture_nets.core.residual import ResidualNetwork
from texture_nets.inference.engine import prepare_generator, stylize_tensor

pytest.importorskip("onnxruntime")
from texture_nets.inference.onnx_export import OnnxGenerator, export_onnx, optimization_level, upsampled_conv_weights


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    net = TextureNetwork(num_scales=4, channels=4, max_channels=8, noise_factor=0.4).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return net


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 37, 91), (1, 3, 16, 24)])
def test_onnx_runtime_matches_pytorch(net, shape, tmp_path):
    engine = OnnxGenerator(net, cache_dir=tmp_path)
    photos = torch.rand(*shape)
    for factor in (None, 0.0, 1.5):
        ours = stylize_tensor(engine, photos, noise_factor=factor, seed=4)
        reference = stylize_tensor(net, photos, noise_factor=factor, seed=4)
        assert ours.shape == reference.shape
        assert (ours - reference).abs().max() < 1e-4  # float rounding (measured ~1e-5 on 512 px)
    assert (stylize_tensor(engine, photos, seed=5) - stylize_tensor(engine, photos, seed=4)).abs().max() > 1e-3


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (1, 3, 1, 2), (1, 2, 3, 1)])
def test_a_convolution_of_the_upsampled_input_runs_at_low_resolution(shape):
    x, weight, bias = torch.randn(*shape), torch.randn(4, shape[1], 3, 3), torch.randn(4)
    direct = F.conv2d(F.pad(F.interpolate(x, scale_factor=2, mode="nearest"), (1, 1, 1, 1), mode="reflect"), weight, bias)
    low_res = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), upsampled_conv_weights(weight), bias.repeat_interleave(4))
    assert (F.pixel_shuffle(low_res, 2) - direct).abs().max() < 1e-4


def test_the_exported_pyramid_never_upsamples_and_pads_only_for_3x3_convolutions(net):
    onnx = pytest.importorskip("onnx")
    ops = [node.op_type for node in onnx.load_from_string(export_onnx(net)).graph.node]
    scales = net.config.num_scales
    assert "Resize" not in ops
    # two 3x3 convolutions per branch; per join the coarse and fine halves of the first, and the second
    assert ops.count("Pad") == 2 * scales + 3 * (scales - 1)


def test_the_blocked_layout_only_for_layers_a_whole_number_of_blocks_wide():
    assert optimization_level(TextureNetwork(max_channels=16)) == "ALL"
    assert optimization_level(TextureNetwork(max_channels=0)) == "ALL"  # the paper's: 48 at full resolution
    assert optimization_level(TextureNetwork(max_channels=12)) == "EXTENDED"
    assert optimization_level(ResidualNetwork()) == "ALL"
    assert optimization_level(ResidualNetwork(channels=8)) == "EXTENDED"


@pytest.mark.parametrize("make", [lambda: TextureNetwork(num_scales=3, channels=8, max_channels=16, noise_factor=0.3),
                                  lambda: ResidualNetwork(channels=16, num_residual=1)])
def test_the_blocked_layout_gives_the_pytorch_picture_too(make, tmp_path):
    torch.manual_seed(1)
    net = make().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    assert optimization_level(net) == "ALL"
    photos = torch.rand(2, 3, 36, 52)
    ours = stylize_tensor(OnnxGenerator(net, cache_dir=tmp_path), photos, seed=3)
    assert (ours - stylize_tensor(net, photos, seed=3)).abs().max() < 1e-4


def test_residual_generator_runs_in_onnx_runtime_too(tmp_path):
    torch.manual_seed(0)
    net = ResidualNetwork(channels=4, num_residual=1, noise_channels=2, noise_factor=0.5).eval()
    engine = prepare_generator(net, "cpu", onnx_cache=tmp_path)
    assert isinstance(engine, OnnxGenerator)
    photos = torch.rand(2, 3, 30, 42)
    assert (stylize_tensor(engine, photos, seed=2) - stylize_tensor(net, photos, seed=2)).abs().max() < 1e-4
    plain = ResidualNetwork(channels=4, num_residual=1).eval()  # Johnson's: no noise input at all
    engine = prepare_generator(plain, "cpu", onnx_cache=tmp_path)
    assert (stylize_tensor(engine, photos) - stylize_tensor(plain, photos)).abs().max() < 1e-4


def test_export_is_cached_by_weights(net, tmp_path):
    OnnxGenerator(net, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.onnx")
    inode = cached.stat().st_ino  # a new export would be a new file (written aside, then renamed)
    OnnxGenerator(net, cache_dir=tmp_path)
    assert [p.stat().st_ino for p in tmp_path.glob("*.onnx")] == [inode]
    other = TextureNetwork(net.config)
    OnnxGenerator(other, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_the_cache_keeps_the_most_recently_used_exports(net, tmp_path, monkeypatch):
    import texture_nets.inference.onnx_export as onnx_export
    monkeypatch.setattr(onnx_export, "CACHE_FILES", 2)
    old, other, new = net, TextureNetwork(net.config), TextureNetwork(net.config)
    cached = lambda g: tmp_path / f"{onnx_export.weights_digest(g)}.onnx"  # noqa: E731
    for g, minutes_ago in ((old, 2), (other, 1)):
        OnnxGenerator(g, cache_dir=tmp_path)
        stamp = cached(g).stat().st_mtime_ns - minutes_ago * 60 * 10**9
        os.utime(cached(g), ns=(stamp, stamp))
    OnnxGenerator(old, cache_dir=tmp_path)  # a hit: the oldest becomes the most recently used
    OnnxGenerator(new, cache_dir=tmp_path)  # a third export: the least recently used one goes
    assert sorted(tmp_path.glob("*.onnx")) == sorted([cached(old), cached(new)])


def test_engine_choice(net, tmp_path):
    assert isinstance(prepare_generator(net, "cpu", onnx_cache=tmp_path), OnnxGenerator)
    assert prepare_generator(net, "cpu", engine="torch") is net
    texture = TextureNetwork(num_scales=3, channels=4, texture_only=True)
    assert prepare_generator(texture, "cpu") is texture
    with pytest.raises(TextureNetsError, match="ONNX engine"):
        prepare_generator(texture, "cpu", engine="onnx")
    with pytest.raises(TextureNetsError, match="precision"):
        prepare_generator(net, "cpu", precision="fp8")


def test_preparing_never_changes_the_callers_module(net, tmp_path):
    engine = prepare_generator(net, "cpu", engine="torch", precision="bf16")
    assert next(engine.parameters()).dtype == torch.bfloat16
    assert next(net.parameters()).dtype == torch.float32  # a copy was converted, not the caller's network
    assert prepare_generator(net, "cpu", engine="torch", precision="fp32") is net  # nothing to convert
    half = ResidualNetwork(channels=4, num_residual=1).to(torch.bfloat16)
    OnnxGenerator(half, cache_dir=tmp_path)
    assert next(half.parameters()).dtype == torch.bfloat16


def test_an_unwritable_cache_folder_costs_the_cache_not_the_run(net, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    engine = OnnxGenerator(net, cache_dir=blocker / "onnx")
    photos = torch.rand(1, 3, 32, 32)
    assert (stylize_tensor(engine, photos) - stylize_tensor(net, photos)).abs().max() < 1e-4


@pytest.mark.parametrize("damage", [lambda model: b"not an onnx model", lambda model: model[: len(model) // 2]],
                         ids=["garbage", "truncated"])
def test_a_damaged_cached_export_is_exported_again(net, tmp_path, damage):
    """A cached export ONNX Runtime cannot load is replaced, not served (and failed over) on every run."""
    OnnxGenerator(net, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.onnx")
    good = cached.read_bytes()
    cached.write_bytes(damage(good))
    with pytest.warns(UserWarning, match="damaged"):
        engine = prepare_generator(net, "cpu", engine="auto", onnx_cache=tmp_path)
    assert isinstance(engine, OnnxGenerator)  # ONNX Runtime, not the PyTorch fallback
    assert list(tmp_path.glob("*.onnx")) == [cached] and cached.read_bytes() != damage(good)  # replaced...
    photos = torch.rand(1, 3, 32, 32)
    assert (stylize_tensor(engine, photos) - stylize_tensor(net, photos)).abs().max() < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ...by an export ONNX Runtime loads: served from the cache without a word
        assert isinstance(prepare_generator(net, "cpu", onnx_cache=tmp_path), OnnxGenerator)
