"""Tiled stylization gives the one-pass picture (whole-image statistics, one noise field)."""

import importlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from texture_nets import TextureNetsError
from texture_nets.core.layers import _norm_override
from texture_nets.core.pyramid import TextureNetwork
from texture_nets.core.residual import ResidualNetwork
from texture_nets.inference import tiling
from texture_nets.inference.engine import stylize_tensor
from texture_nets.inference.tiling import synthesize_tiled, windows

stylize_module = importlib.import_module("texture_nets.inference.engine")  # the package's `stylize` is the function


def trained_like(seed: int = 0, **config) -> TextureNetwork:
    """A random generator whose norms' affine parameters are not the identity (so statistics matter)."""
    torch.manual_seed(seed)
    net = TextureNetwork(**config).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return net


@pytest.mark.parametrize("height,width", [(96, 128), (70, 45), (130, 200)])
def test_windows_partition_the_image_with_even_coordinates(height, width):
    covered = torch.zeros(height, width, dtype=torch.int32)
    for w in windows(height, width, 40):
        top, bottom, left, right = w.crop
        covered[w.top + top:w.top + bottom, w.left + left:w.left + right] += 1
        assert w.top % 2 == 0 and w.left % 2 == 0 and top >= 0 and bottom <= w.bottom - w.top
    assert torch.equal(covered, torch.ones_like(covered))


@pytest.mark.parametrize("config", [dict(num_scales=6, max_channels=16), dict(num_scales=4, channels=4),
                                    dict(num_scales=5, channels=8)])
@pytest.mark.parametrize("tile", [32, 50])
def test_tiled_synthesis_equals_one_pass(config, tile):
    net = trained_like(**config)
    x = torch.rand(1, 3, 90, 140)
    padded_h, padded_w = net.padded_size(90, 140)
    padded = net.pad(x, padded_h, padded_w)
    noise = net.make_noise(1, padded_h, padded_w, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = net.synthesize(net.scale_inputs(padded, noise, 0.7))
        tiled = synthesize_tiled(net, padded, noise, 0.7, tile)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-4  # float rounding only (measured ≈ 2e-6); a seam would be ≫ 1e-2
    assert _norm_override.get() is None  # the whole-image statistics are gone after the call


def test_tiling_leaves_a_shared_module_to_other_threads(monkeypatch):
    """A generator shared between threads (the web app's; stylize's fallback after running out of
    memory tiles the shared module): one-pass stylizations run in another thread while the tiling
    thread is half-way through a stage, with some norms resolved. Both get their pictures."""
    net = trained_like(num_scales=4, channels=4)
    large, small = torch.rand(1, 3, 96, 128), torch.rand(2, 3, 40, 56)
    tiled_alone, one_pass_alone = stylize_tensor(net, large, seed=5, tile=32), stylize_tensor(net, small, seed=6)
    mid_stage, others_done = threading.Event(), threading.Event()
    real_resolve = tiling._StageNorms.resolve

    def resolve(self):  # the first norm of the first tiled stage resolved: let the other thread run
        real_resolve(self)
        if not mid_stage.is_set():
            mid_stage.set()
            assert others_done.wait(60)

    def one_pass_runs():
        assert mid_stage.wait(60)
        try:
            return [stylize_tensor(net, small, seed=6) for _ in range(3)]
        finally:
            others_done.set()

    monkeypatch.setattr(tiling._StageNorms, "resolve", resolve)
    with ThreadPoolExecutor(2) as pool:
        others = pool.submit(one_pass_runs)
        tiled = pool.submit(stylize_tensor, net, large, seed=5, tile=32).result(timeout=120)
        one_passes = others.result(timeout=120)
    assert (tiled - tiled_alone).abs().max() < 1e-6
    assert all((out - one_pass_alone).abs().max() < 1e-6 for out in one_passes)


def test_naive_tiling_would_show_seams():
    """The check above can fail: stylizing two halves separately (per-tile statistics) differs a lot."""
    net = trained_like(num_scales=4, channels=4)
    x = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        whole = net(x, noise_factor=0.0)
        halves = torch.cat([net(x[..., :64], noise_factor=0.0), net(x[..., 64:], noise_factor=0.0)], dim=3)
    assert (whole - halves).abs().max() > 1e-2


def test_stylize_tensor_tiles_on_request_same_seed_same_picture():
    net = trained_like(num_scales=5, channels=4, noise_factor=0.5)
    photos = torch.rand(2, 3, 70, 100)
    whole = stylize_tensor(net, photos, seed=11)
    tiled = stylize_tensor(net, photos, seed=11, tile=48)
    other_seed = stylize_tensor(net, photos, seed=12, tile=48)
    assert (tiled - whole).abs().max() < 1e-4
    assert (other_seed - whole).abs().max() > 1e-3


def test_memory_limit_and_out_of_memory_switch_to_tiles(monkeypatch):
    calls = []
    real = stylize_module.synthesize_tiled
    monkeypatch.setattr(stylize_module, "synthesize_tiled", lambda *a: calls.append(a[-1]) or real(*a))
    net = trained_like(num_scales=4, channels=4)
    photo = torch.rand(1, 3, 64, 80)
    reference = stylize_tensor(net, photo, seed=1)
    assert not calls
    limited = stylize_tensor(net, photo, seed=1, memory_limit=1000)
    assert calls == [stylize_module.DEFAULT_TILE] and (limited - reference).abs().max() < 1e-4

    class RunsOutOfMemory(TextureNetwork):
        def forward(self, *args, **kwargs):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")
    failing = RunsOutOfMemory(net.config).eval()
    failing.load_state_dict(net.state_dict())
    with pytest.warns(UserWarning, match="out of memory"):
        recovered = stylize_tensor(failing, photo, seed=1)
    assert len(calls) == 2 and (recovered - reference).abs().max() < 1e-4


def test_tiling_refuses_other_generators_and_tiny_tiles():
    with pytest.raises(TextureNetsError, match="pyramid"):
        stylize_tensor(ResidualNetwork(channels=4, num_residual=1), torch.rand(1, 3, 32, 32), tile=64)
    with pytest.raises(TextureNetsError, match="at least 32"):
        stylize_tensor(trained_like(num_scales=3, channels=4), torch.rand(1, 3, 32, 32), tile=8)


def test_tiling_in_half_precision_keeps_the_dtype_and_the_picture():
    net = trained_like(num_scales=4, channels=4).to(torch.bfloat16)  # the CPU stand-in for CUDA's fp16
    photo = torch.rand(1, 3, 64, 96)
    whole = stylize_tensor(net, photo, seed=3)
    tiled = stylize_tensor(net, photo, seed=3, tile=32)
    assert tiled.dtype == torch.bfloat16
    assert (tiled.float() - whole.float()).abs().max() < 0.05  # bf16 rounding (8 bits of mantissa)
