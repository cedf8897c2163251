"""Training precision: which autocast dtype each setting gives, and that bf16 training on the CPU
computes the same losses as fp32 (within bf16's rounding), learns as fp32 does and resumes exactly."""

import numpy as np
import pytest
import torch

from texture_nets import TextureNetsError
from texture_nets.core import precision as precision_module
from texture_nets.core.losses import DEFAULT_STYLE_LAYERS, PerceptualLoss, gram_matrix
from texture_nets.core.precision import autocast, autocast_dtype, channels_last_for
from texture_nets.core.settings import upgrade_legacy
from texture_nets.core.vgg import VGG19Features
from texture_nets.training.config import make_config
from texture_nets.training.run import run_training

from .conftest import SHARED_VGG, smooth_image, stripes_image, tiny_overrides

CPU = torch.device("cpu")


def quiet(*_):
    pass


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpus_bf16_capability(monkeypatch, native):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    assert autocast_dtype("auto", CPU) == (torch.bfloat16 if native else None)
    assert autocast_dtype("bf16", CPU) == torch.bfloat16  # asked for explicitly: always
    assert autocast_dtype("fp32", CPU) is None
    assert channels_last_for(CPU, autocast_dtype("auto", CPU), True) == (native, False)
    assert channels_last_for(CPU, torch.bfloat16, False) == (False, False)


def test_cpu_capability_is_read_from_flags_when_torch_has_no_probe(monkeypatch):
    monkeypatch.setattr(torch, "cpu", object())  # no _is_amx_tile_supported / _is_avx512_bf16_supported
    monkeypatch.setattr(precision_module, "_cpuinfo_flags", lambda: {"sse2", "avx512_bf16"})
    precision_module.cpu_has_native_bf16.cache_clear()
    try:
        assert precision_module.cpu_has_native_bf16()
        precision_module.cpu_has_native_bf16.cache_clear()
        monkeypatch.setattr(precision_module, "_cpuinfo_flags", lambda: {"sse2", "avx2"})
        assert not precision_module.cpu_has_native_bf16()
    finally:
        precision_module.cpu_has_native_bf16.cache_clear()


def test_fp16_on_the_cpu_and_unknown_precisions_are_refused():
    with pytest.raises(TextureNetsError, match="fp16 needs CUDA"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(TextureNetsError, match="precision must be one of"):
        autocast_dtype("fp8", CPU)
    with pytest.raises(TextureNetsError, match="precision"):
        make_config({}, {"data_dir": "d", "texture": ["a.jpg"], "precision": "half"})


def test_old_configs_with_amp_still_load():
    assert upgrade_legacy({"amp": False, "seed": 1}) == {"precision": "fp32", "seed": 1}
    assert upgrade_legacy({"amp": True}) == {"precision": "auto"}
    assert make_config({"amp": False}, {"data_dir": "d", "texture": ["a.jpg"]}).precision == "fp32"


def test_channels_last_gram_equals_the_contiguous_one():
    features = torch.randn(2, 16, 9, 7)
    nhwc = features.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gram_matrix(nhwc), gram_matrix(features), rtol=1e-6, atol=1e-6)
    assert gram_matrix(nhwc.to(torch.bfloat16)).dtype == torch.float32


def _losses(dtype, vgg_nhwc: bool, weights: str, style_layers: list[str], content_layer: str) -> dict[str, float]:
    """The perceptual loss of a fixed output against stripes and a smooth photo, at one precision.
    Output, photo and style differ as in early training: losses of order 0.1–1."""
    rng = np.random.default_rng(0)
    as_batch = lambda image: torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None]
    style = as_batch(stripes_image(64))
    photo = torch.cat([as_batch(smooth_image(rng, 64, 64)) for _ in range(2)])
    output = (0.6 * photo + 0.4 * torch.from_numpy(rng.random((2, 3, 64, 64), dtype=np.float32)))
    vgg = VGG19Features(style_layers + [content_layer], weights=weights)
    criterion = PerceptualLoss(vgg, style_layers=style_layers, content_layers=[content_layer])
    if vgg_nhwc:
        vgg.to(memory_format=torch.channels_last)
    criterion.set_style([style])
    with autocast(CPU, dtype):
        terms = criterion(output, photo)
    return terms.as_floats()


@pytest.mark.parametrize("vgg", ["random", pytest.param("caffe", marks=pytest.mark.shared)])
def test_bf16_losses_agree_with_fp32_on_a_fixed_batch(vgg):
    """bf16 keeps 8 significant bits: each activation is rounded by up to 2^-9 ≈ 0.2%. Independent
    roundings average out in the Gram matrices and squared errors, so losses of order 0.1–1 move by
    well under 1% (measured: ≤ 0.04% with the random VGG, ≤ 0.02% with Caffe's). The bound, 2%, leaves
    room for 13 stacked convolutions; a loss computed wrongly in bf16 (a Gram in bf16, say) is off by
    far more. (A random VGG's relu4 features are nearly alike for every image, so its losses there are
    ~1e-5 of rounding noise: the random case stops at relu3_1.)"""
    if vgg == "random":
        setting = dict(weights="random", style_layers=["relu1_1", "relu2_1", "relu3_1"], content_layer="relu2_1")
    else:
        setting = dict(weights=str(SHARED_VGG), style_layers=list(DEFAULT_STYLE_LAYERS), content_layer="relu4_2")
    reference = _losses(None, False, **setting)
    mixed = _losses(torch.bfloat16, True, **setting)
    names = ["content", "style", "total", *(f"style/{layer}" for layer in setting["style_layers"])]
    for name in names:
        assert reference[name] > 0.01, name  # a loss far from zero: not two roundings of nothing
        assert mixed[name] == pytest.approx(reference[name], rel=0.02), name


def test_short_bf16_run_lowers_the_loss_as_fp32_does(photos_dir, style_path, tmp_path):
    finals = {}
    for precision in ("fp32", "bf16"):
        events = []
        config = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / precision, num_iterations=40,
                                                val_every=40, learning_rate=1e-2, precision=precision))
        run_training(config, on_event=events.append, log=quiet)
        first, finals[precision] = events[0].losses["total"], events[-1].val_losses["total"]
        assert finals[precision] < 0.7 * first, precision
    assert finals["bf16"] == pytest.approx(finals["fp32"], rel=0.15)


def test_bf16_gram_is_fp32_and_its_gradient_matches_fp32_to_one_rounding():
    torch.manual_seed(0)
    features = torch.randn(2, 8, 6, 5).contiguous(memory_format=torch.channels_last)
    target = torch.randn(2, 8, 8) * 0.1
    grads = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = features.to(dtype).detach().clone().requires_grad_()
        gram = gram_matrix(x)
        assert gram.dtype == torch.float32
        (gram - target).square().sum().backward()
        grads[dtype] = x.grad.float()
    reference = gram_matrix(features.to(torch.bfloat16).float())  # the same inputs, all in fp32
    torch.testing.assert_close(gram_matrix(features.to(torch.bfloat16)), reference, rtol=1e-6, atol=1e-7)
    error = (grads[torch.bfloat16] - grads[torch.float32]).norm() / grads[torch.float32].norm()
    assert error < 0.01  # bf16 rounds the inputs and the gradient: ~2^-8 relative, not more
