import pytest
import torch

from texture_nets.core.pyramid import GeneratorConfig, TextureNetwork


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return TextureNetwork(num_scales=4, channels=4).eval()


@pytest.mark.parametrize("batch,height,width", [(1, 37, 53), (3, 16, 16), (2, 64, 40), (1, 5, 7), (1, 1, 1),
                                                (1, 130, 17)])
def test_output_size_equals_input_size_any_shape(net, batch, height, width):
    x = torch.rand(batch, 3, height, width)
    y = net(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == (batch, 3, height, width)
    assert y.min() >= 0 and y.max() <= 1


def test_paper_layout_channels_grow_by_join():
    net = TextureNetwork(num_scales=6, channels=8)
    assert [block[0].out_channels for block in net.join_blocks] == [16, 24, 32, 40, 48]
    assert net.to_rgb.in_channels == 48 and net.to_rgb.out_channels == 3
    assert isinstance(net.branches[0][1], torch.nn.InstanceNorm2d)
    assert net.branches[0][0].in_channels == 3 + 3  # photo + noise


def test_noise_factor_zero_is_deterministic_and_noise_changes_output(net):
    x = torch.rand(1, 3, 32, 32)
    a = net(x, noise_factor=0.0, generator=torch.Generator().manual_seed(1))
    b = net(x, noise_factor=0.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = net(x, noise_factor=1.0, generator=torch.Generator().manual_seed(1))
    d = net(x, noise_factor=1.0, generator=torch.Generator().manual_seed(1))
    e = net(x, noise_factor=1.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(c, d)
    assert (c - e).abs().max() > 1e-4
    assert (a - c).abs().max() > 1e-4


def test_noise_amplitude_moves_the_output_more_when_larger(net):
    x = torch.rand(1, 3, 32, 32)
    base = net(x, noise_factor=0.0)
    small = net(x, noise_factor=0.1, generator=torch.Generator().manual_seed(3))
    large = net(x, noise_factor=2.0, generator=torch.Generator().manual_seed(3))
    assert (large - base).abs().mean() > (small - base).abs().mean()


def test_explicit_noise_overrides_generator(net):
    x = torch.rand(2, 3, 20, 40)
    assert net.padded_size(20, 40) == (24, 40)
    noise = net.make_noise(2, 24, 40, generator=torch.Generator().manual_seed(5))
    assert [tuple(n.shape) for n in noise] == [(2, 3, 24 >> s, 40 >> s) for s in range(4)]
    a = net(x, noise=noise, generator=torch.Generator().manual_seed(1))
    b = net(x, noise=noise, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


def test_texture_only_mode_synthesizes_from_noise():
    net = TextureNetwork(GeneratorConfig(num_scales=3, channels=4, texture_only=True))
    assert net.branches[0][0].in_channels == 3
    y = net(size=(20, 30), batch_size=2, generator=torch.Generator().manual_seed(0))
    assert y.shape == (2, 3, 20, 30)
    with pytest.raises(ValueError):
        net(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError):
        net()
    with pytest.raises(ValueError):
        GeneratorConfig(texture_only=True, noise_channels=0)


def test_wrong_input_shape_is_refused(net):
    with pytest.raises(ValueError):
        net(torch.rand(3, 32, 32))
    with pytest.raises(ValueError):
        net(torch.rand(1, 4, 32, 32))


def test_every_parameter_gets_a_gradient():
    net = TextureNetwork(num_scales=3, channels=4)
    net(torch.rand(2, 3, 24, 24), generator=torch.Generator().manual_seed(0)).mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
