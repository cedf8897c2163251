"""On a CUDA GPU (marked `cuda`: skipped where PyTorch sees none; benchmarks/gpu_check.py runs them on
a lent GPU): training steps under bf16 and fp16 autocast, channels_last, resuming an interrupted run,
fp16 inference against fp32 in 8-bit levels, tiled stylization and the fall-back to tiles when the GPU
runs out of memory. Tiny sizes and a randomly initialised VGG.

Tolerances. CUDA is not bit-reproducible here (atomics in the upsampling's backward, cuDNN's choice of
algorithm), so where the CPU tests ask for equality these ask for a bound, each set by the size of
the mistake it is there to catch, not yet by a measured GPU figure (the tests print what they measure;
`pytest -rA` shows it):
- resume: the resumed generator's outputs within RESUME_ATOL of the uninterrupted run's, and at most
  a fifth of the gap that losing the optimizer state on resume opens (a planted mistake, measured in
  the same test: 0.56 in fp32 and 0.43 in bf16 with this test on the CPU, where the resume is exact);
- fp16 against fp32 (TF32 off), every shipped style on 192×256 photos: on average at most
  FP16_MEAN_LEVELS 8-bit levels, FP16_P99_LEVELS at the 99th percentile, FP16_MAX_LEVELS anywhere.
  fp16 keeps 11 significant bits; the CPU's fp16 gave a mean of 0.03–0.10 level, a 99th percentile
  of 1 and a worst pixel of 1–13 levels (udnie; at 96×128 its worst was 76, where instance norms over
  a few coarse pixels amplify the rounding), so the bounds are twice what was seen there; an
  overflow or a norm computed in fp16 gives tens of levels on most pixels;
- tiled against one pass: float rounding only (the CPU: 6e-6 in fp32, 3e-3 in fp16); a seam
  (per-tile statistics) is ≫ 1e-2, see test_tiling.py.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from texture_nets import load_generator
from texture_nets.core.checkpoint import SHIPPED_DIR
from texture_nets.core.precision import autocast_dtype
from texture_nets.core.pyramid import GeneratorConfig, TextureNetwork
from texture_nets.inference.engine import DEFAULT_TILE, prepare_generator, stylize_tensor
from texture_nets.training.config import TrainConfig, make_config
from texture_nets.training.loop import Trainer
from texture_nets.training.run import build_criterion, make_generator, place_for_precision, run_training

from .conftest import smooth_image, tiny_overrides, whole_and_resumed_runs

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")
RESUME_ATOL = {"fp32": 2e-3, "bf16": 2e-2}
FP16_MEAN_LEVELS, FP16_P99_LEVELS, FP16_MAX_LEVELS = 0.25, 2, 32
TILED_ATOL = {"fp32": 5e-4, "fp16": 1e-2}


def quiet(*_):
    pass


@pytest.fixture
def no_tf32(monkeypatch):
    """fp32 convolutions and matrix products in true fp32 (TF32 rounds to 11 bits)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def photo_batch(batch: int, height: int, width: int) -> torch.Tensor:
    """Photo-like pictures (smooth gradients and blobs), N,3,H,W in 0..1, on the CPU."""
    rng = np.random.default_rng(0)
    pictures = [np.asarray(smooth_image(rng, width, height), np.float32) / 255 for _ in range(batch)]
    return torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).contiguous()


def trained_like(seed: int = 0, **config) -> TextureNetwork:
    """A random generator whose norms' affine parameters are not the identity (so statistics matter)."""
    torch.manual_seed(seed)
    net = TextureNetwork(GeneratorConfig(**config)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return net


def cuda_trainer(config: TrainConfig) -> tuple[Trainer, nn.Module, nn.Module]:
    """The trainer run_training builds, on CUDA: (trainer, generator, VGG)."""
    torch.manual_seed(config.seed)
    generator = make_generator(config).to(CUDA).train()
    criterion, _ = build_criterion(config, CUDA)
    place_for_precision(generator, criterion, config, CUDA)
    optimizer = torch.optim.Adam(generator.parameters(), lr=config.learning_rate)
    return Trainer(generator, criterion, optimizer, config, CUDA), generator, criterion.vgg


def cuda_config(photos_dir, style_path, folder, **extra) -> TrainConfig:
    return make_config({}, tiny_overrides(photos_dir, style_path, folder, device="cuda", **extra))


def fixed_images(config: TrainConfig) -> torch.Tensor:
    return photo_batch(config.batch_size, config.image_size, config.image_size).to(CUDA)


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_training_steps_in_autocast_lower_the_loss_and_keep_fp32_weights(photos_dir, style_path, tmp_path,
                                                                          precision, dtype):
    config = cuda_config(photos_dir, style_path, tmp_path, precision=precision)
    trainer, generator, _ = cuda_trainer(config)
    assert trainer.amp_dtype == dtype and trainer.scaler.is_enabled() == (dtype == torch.float16)
    images = fixed_images(config)
    losses = [trainer.step(step, images).total for step in range(20)]
    losses = [loss.item() for loss in losses]
    print(f"{precision}: total loss {losses[0]:.4f} → {losses[-1]:.4f}")
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < 0.9 * losses[0]  # CPU bf16: 0.78
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in generator.parameters())
    assert autocast_dtype("auto", CUDA) == (torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8
                                           else torch.float16)


def is_channels_last(module: nn.Module) -> bool:
    """Whether every convolution with a spatial kernel and several input channels is stored NHWC."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.in_channels > 1 and m.kernel_size[0] > 1]
    return bool(convs) and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_channels_last_steps_match_the_contiguous_ones(photos_dir, style_path, tmp_path):
    losses = {}
    for nhwc in (True, False):
        config = cuda_config(photos_dir, style_path, tmp_path / str(nhwc), precision="bf16", channels_last=nhwc)
        trainer, generator, vgg = cuda_trainer(config)
        assert is_channels_last(generator) == nhwc and is_channels_last(vgg) == nhwc
        images = fixed_images(config)
        losses[nhwc] = [trainer.step(step, images).total.item() for step in range(3)]
    print(f"channels_last {losses[True]} vs contiguous {losses[False]}")
    assert losses[True][0] == pytest.approx(losses[False][0], rel=1e-2)  # bf16 rounding, other kernels
    assert losses[True] == pytest.approx(losses[False], rel=5e-2)


def output_difference(a, b) -> float:
    """Largest difference between two checkpoints' outputs on fixed photos and noise (CPU, fp32)."""
    photos = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = [load_generator(path)(photos, generator=torch.Generator().manual_seed(2)) for path in (a, b)]
    return (outputs[0] - outputs[1]).abs().max().item()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_interrupt_then_resume_on_cuda_follows_the_uninterrupted_run(photos_dir, style_path, tmp_path, monkeypatch,
                                                                     precision):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # leaves the atomics' rounding only
    overrides = tiny_overrides(photos_dir, style_path, tmp_path / "whole", device="cuda", num_iterations=6,
                               checkpoint_every=0, precision=precision)
    whole, resumed, saved = whole_and_resumed_runs(overrides, tmp_path)
    # the planted mistake: resuming without the optimizer state
    forgetful = make_config({}, {**overrides, "checkpoint_dir": str(tmp_path / "forgetful")})
    fresh_optimizer = run_training(forgetful, resume={**saved, "resume": {}}, log=quiet)
    gap, planted = output_difference(whole.checkpoint, resumed.checkpoint), \
        output_difference(whole.checkpoint, fresh_optimizer.checkpoint)
    print(f"{precision}: resumed vs uninterrupted {gap:.2e}; with a fresh optimizer {planted:.2e}")
    assert resumed.step == 6 and gap < RESUME_ATOL[precision] and gap < planted / 5


def shipped_checkpoints() -> list:
    """The trained styles shipped with the repository (realistic activations), else one random generator."""
    return sorted(p for p in SHIPPED_DIR.glob("*.pt") if not p.name.endswith(".resume.pt")) or [None]


@pytest.mark.parametrize("checkpoint", shipped_checkpoints(), ids=lambda p: p.stem if p else "random")
def test_fp16_inference_is_within_a_few_levels_of_fp32(no_tf32, checkpoint):
    net = load_generator(checkpoint) if checkpoint else trained_like(num_scales=6, max_channels=16)
    photos = photo_batch(2, 192, 256)
    reference = stylize_tensor(prepare_generator(net, CUDA, engine="torch", precision="fp32"), photos, seed=0)
    half = stylize_tensor(prepare_generator(net, CUDA, engine="torch", precision="fp16"), photos, seed=0)
    assert half.dtype == torch.float16 and half.device.type == "cuda" and torch.isfinite(half).all()
    levels = (half.float().mul(255).round() - reference.float().mul(255).round()).abs().flatten()
    p99, mean, worst = levels.quantile(0.99).item(), levels.mean().item(), levels.max().item()
    print(f"fp16 vs fp32: mean {mean:.3f} levels, 99th percentile {p99:.0f}, max {worst:.0f}")
    assert mean <= FP16_MEAN_LEVELS and p99 <= FP16_P99_LEVELS and worst <= FP16_MAX_LEVELS


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tiled_stylization_on_cuda_equals_one_pass(no_tf32, precision):
    engine = prepare_generator(trained_like(num_scales=5, channels=4, noise_factor=0.5), CUDA, engine="torch",
                               precision=precision)
    photos = photo_batch(2, 70, 100)
    whole = stylize_tensor(engine, photos, seed=11)
    tiled = stylize_tensor(engine, photos, seed=11, tile=48)
    other_seed = stylize_tensor(engine, photos, seed=12, tile=48)
    difference = (tiled.float() - whole.float()).abs().max().item()
    print(f"{precision}: tiled vs one pass {difference:.2e}")
    assert tiled.device.type == "cuda" and tiled.dtype == whole.dtype == engine.to_rgb.weight.dtype
    assert difference < TILED_ATOL[precision] and (other_seed.float() - whole.float()).abs().max() > 1e-3


def peak_bytes(call) -> tuple[int, torch.Tensor]:
    """The GPU memory `call` allocates at its peak, above what was allocated before, and its result (CPU)."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = call().float().cpu()
    return torch.cuda.max_memory_allocated() - before, result


def test_running_out_of_gpu_memory_falls_back_to_tiles(no_tf32):
    """A real CUDA out-of-memory error: the process is capped between the tiled and the one-pass
    peak, so the one-pass attempt fails and the tiled one fits."""
    engine = prepare_generator(trained_like(num_scales=6, max_channels=16), CUDA, engine="torch", precision="fp32")
    photo = torch.rand(1, 3, 3072, 4096, generator=torch.Generator().manual_seed(0))
    whole_peak, reference = peak_bytes(lambda: stylize_tensor(engine, photo, seed=1))
    tiled_peak, _ = peak_bytes(lambda: stylize_tensor(engine, photo, seed=1, tile=DEFAULT_TILE))
    print(f"one pass {whole_peak / 2**20:.0f} MiB, tiled {tiled_peak / 2**20:.0f} MiB")
    assert whole_peak > 2 * tiled_peak  # the premise: tiles need much less
    torch.cuda.empty_cache()
    cap = torch.cuda.memory_reserved() + (whole_peak + tiled_peak) // 2
    torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(CUDA).total_memory)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            recovered = stylize_tensor(engine, photo, seed=1).float().cpu()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert any("out of memory" in str(w.message) for w in caught)
    assert (recovered - reference).abs().max() < TILED_ATOL["fp32"]
