"""The residual (Johnson et al.) generator: shapes, checkpoints, and training under the same loss."""

import pytest
import torch

from texture_nets import load_checkpoint, load_generator
from texture_nets.core.residual import ResidualConfig, ResidualNetwork
from texture_nets.training.config import make_config
from texture_nets.training.run import run_training

from .conftest import tiny_overrides


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 16, 16), (1, 3, 5, 7)])
def test_any_size_in_same_size_out(shape):
    net = ResidualNetwork(channels=4, num_residual=2).eval()
    y = net(torch.rand(*shape))
    assert y.shape == shape and 0 <= y.min() and y.max() <= 1


def test_johnson_layout_and_noise_option():
    net = ResidualNetwork()
    assert net.encoder[0][0].kernel_size == (9, 9) and net.encoder[2][0].out_channels == 128
    assert len(net.residuals) == 5 and net.to_rgb.kernel_size == (9, 9)
    noisy = ResidualNetwork(channels=4, num_residual=1, noise_channels=2, noise_factor=1.0).eval()
    x = torch.rand(1, 3, 24, 24)
    a = noisy(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, noisy(x, generator=torch.Generator().manual_seed(1)))
    assert (a - noisy(x, generator=torch.Generator().manual_seed(2))).abs().max() > 1e-4
    with pytest.raises(ValueError):
        ResidualConfig(texture_only=True)


def test_trains_with_arch_residual_and_round_trips(photos_dir, style_path, tmp_path):
    config = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path, arch="residual", num_iterations=4))
    result = run_training(config, log=lambda *_: None)
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint["arch"] == "residual" and checkpoint["model"]["channels"] == 32
    net = load_generator(result.checkpoint)
    assert isinstance(net, ResidualNetwork)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert net(x).shape == x.shape
