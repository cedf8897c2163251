"""Stylize images too large to hold the generator's activations in memory: exact tiled inference.

Tiling a network with instance normalisation naively leaves seams: each tile would be normalised
with its own statistics. Here the statistics are those of the whole image, so the tiled result is
the untiled one up to float rounding:

- The coarse scales of the pyramid are small (1/4 resolution and below hold 1/16 of the pixels):
  they run whole, exactly as in `TextureNetwork.synthesize`.
- Each larger scale (branch + join, the "stage") runs tile by tile, with a halo wide enough for its
  convolutions. Its instance norms are resolved one at a time, in execution order: a pass over all
  tiles computes the stage up to the next unresolved norm and accumulates that norm's per-channel
  sums over the tiles' centres (float64); later passes normalise with the whole-image mean and
  variance. A last pass computes the stage's output. A stage with n norms costs n + 1 passes, each
  stopping at its norm, but never holds more than a tile of activations.
- The noise field is drawn once for the whole image, by the same calls as the untiled path, so the
  same seed gives the same picture tiled or not.
- The whole-image statistics reach the norms through a context variable (`norms_overridden`), not
  through the modules: a generator shared between threads (the web app's, or stylize's fallback after
  running out of memory) can be tiled in one thread while others run it in one pass.

Memory: the padded photo, its noise, each streamed scale's output (widths × pixels at that scale)
and the output image, plus one tile's activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.layers import InstanceNorm, norms_overridden
from texture_nets.core.pyramid import TextureNetwork

HALO = 8  # pixels of context around a tile, at its stage's scale: a stage's 3x3 convolutions reach 4


class _Collected(Exception):
    """Raised by the norm being measured, to stop a collecting pass as soon as it has its input."""


@dataclass
class _Window:
    """One tile at a stage's scale: the extended region it computes and the centre it keeps."""

    top: int  # extended region (with halo), in the stage's pixels
    bottom: int
    left: int
    right: int
    crop: tuple[int, int, int, int]  # centre, relative to the extended region: top, bottom, left, right


def windows(height: int, width: int, tile: int, halo: int = HALO) -> list[_Window]:
    """Tiles of at most tile × tile covering height × width; all coordinates even (so that the
    coarser scale's half-size windows line up with them)."""
    result = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            ext_top, ext_left = max(top - halo, 0), max(left - halo, 0)
            ext_bottom, ext_right = min(bottom + halo, height), min(right + halo, width)
            result.append(_Window(ext_top, ext_bottom, ext_left, ext_right,
                                  (top - ext_top, bottom - ext_top, left - ext_left, right - ext_left)))
    return result


class _StageNorms:
    """The override of a stage's instance norms (`norms_overridden`): frozen whole-image statistics
    for the resolved ones, accumulation (then _Collected) for the one being measured."""

    def __init__(self):
        self.stats: dict[InstanceNorm, tuple[torch.Tensor, torch.Tensor]] = {}
        self.measuring: InstanceNorm | None = None
        self.sums: torch.Tensor | None = None
        self.window: _Window | None = None

    def __call__(self, norm: InstanceNorm, x: torch.Tensor) -> torch.Tensor:
        if norm in self.stats:  # in float32 whatever the activations' precision (fp16 on CUDA)
            mean, invstd = self.stats[norm]
            weight, bias = norm.scale_shift()  # a style blend's, for a network of several styles
            scale = invstd * weight.float().view(1, -1, 1, 1)
            shift = bias.float().view(1, -1, 1, 1) - mean * scale
            return (x.float() * scale + shift).to(x.dtype)
        if norm is not self.measuring:
            raise RuntimeError("tiled inference reached an instance norm out of order")
        self._accumulate(x)
        raise _Collected

    def _accumulate(self, x: torch.Tensor) -> None:
        """Add this tile's centre to the running (count, Σx, Σx²) of the norm being measured."""
        ratio = (self.window.bottom - self.window.top) // x.shape[2]  # 2 for the coarser scale's x
        top, bottom, left, right = (c // ratio for c in self.window.crop)
        centre = x[:, :, top:bottom, left:right].double()
        sums = torch.stack([torch.full_like(centre[0, :, 0, 0], centre[0, 0].numel()),
                            centre.sum(dim=(0, 2, 3)), centre.square().sum(dim=(0, 2, 3))])
        self.sums = sums if self.sums is None else self.sums + sums

    def resolve(self) -> None:
        """Turn the accumulated sums of the measured norm into its mean and 1/std."""
        count, total, squares = self.sums
        mean = total / count
        var = (squares / count - mean.square()).clamp_min(0)
        norm = self.measuring
        self.stats[norm] = ((mean.view(1, -1, 1, 1)).float(),
                            torch.rsqrt(var + norm.eps).view(1, -1, 1, 1).float())
        self.measuring, self.sums = None, None


def activation_bytes_per_pixel(generator) -> int:
    """Rough peak bytes per working pixel of a one-pass run of `generator`'s finest scale (measured:
    563 at width 16, 1248 at the paper's 48; this errs high). A module without `widths` counts as 128 wide."""
    widths = getattr(generator, "widths", [128])
    return 4 * (9 * widths[-1] + 16)


def tiled_bytes(generator: TextureNetwork, height: int, width: int, tile: int) -> int:
    """Rough peak memory of `synthesize_tiled` on a height × width picture in tiles of `tile` pixels:
    the whole-image tensors of the module docstring (the photo and its padded copy, pyramid and
    noise, the streamed scales' outputs, the output and its 8-bit conversion) and one tile's
    activations. Measured at the paper's width: 3.4 GB for 12 megapixels in 1024-pixel tiles; this errs high."""
    padded_h, padded_w = generator.padded_size(height, width)
    k, widths = generator.config.num_scales, generator.widths
    streamed = sum(widths[i] / 4 ** (k - 1 - i) for i in range(1, k - 1))  # stages below the finest
    whole = 3 + 3 + 1 + generator.config.noise_channels * 4 / 3 + streamed + 3 + 3  # floats per pixel
    tile_h, tile_w = min(tile, padded_h) + 2 * HALO, min(tile, padded_w) + 2 * HALO  # a tile never exceeds the picture
    return int(4 * whole * padded_h * padded_w + activation_bytes_per_pixel(generator) * tile_h * tile_w)


def tileable(generator) -> bool:
    """Whether `generator` can be run tile by tile: a pyramid generator that stylizes photos."""
    return isinstance(generator, TextureNetwork) and not generator.config.texture_only


def stage_norms(generator: TextureNetwork, i: int) -> list[InstanceNorm]:
    """The instance norms of stage i (branch i, then join i) in the order `synthesize` runs them."""
    branch = [m for m in generator.branches[i] if isinstance(m, InstanceNorm)]
    joins = generator.join_norms[i - 1]
    block = [m for m in generator.join_blocks[i - 1] if isinstance(m, InstanceNorm)]
    return branch + [joins["coarse"], joins["fine"]] + block


@torch.no_grad()
def synthesize_tiled(generator: TextureNetwork, padded: torch.Tensor, noise: list[torch.Tensor] | None,
                     factor: float, tile: int) -> torch.Tensor:
    """`generator.synthesize(generator.scale_inputs(padded, noise, factor))`, one image, with every
    scale larger than `tile` pixels (on a side, at that scale) computed tile by tile."""
    if not tileable(generator):
        raise TextureNetsError("tiled inference works with the multi-scale (pyramid) stylization generator")
    if padded.shape[0] != 1:
        raise ValueError("tiled inference takes one image at a time")
    tile = max(2 * HALO, tile - tile % 2)
    k = generator.config.num_scales
    pyramid = generator.image_pyramid(padded)
    noise = noise or [None] * k

    def scale_input(s: int, w: _Window | None = None) -> torch.Tensor:
        crop = (slice(None), slice(None)) if w is None else (slice(w.top, w.bottom), slice(w.left, w.right))
        parts = [pyramid[s][:, :, crop[0], crop[1]]]
        if generator.config.noise_channels:
            parts.append(noise[s][:, :, crop[0], crop[1]].to(padded.dtype) * factor)
        return torch.cat(parts, dim=1)

    x = generator.branches[0](scale_input(k - 1))
    for i in range(1, k):
        s = k - 1 - i
        height, width = pyramid[s].shape[2:]
        if max(height, width) <= tile:
            x = generator.join(i, x, generator.branches[i](scale_input(s)))
        else:
            x = _run_stage(generator, i, x, lambda w, s=s: scale_input(s, w), height, width, tile)
    return x if k > 1 and max(pyramid[0].shape[2:]) > tile else generator.head(x)


def _run_stage(generator: TextureNetwork, i: int, coarse: torch.Tensor, tile_input, height: int, width: int,
               tile: int) -> torch.Tensor:
    """Stage i (branch + join, and the head if it is the finest) over tiles, with whole-image norms."""
    finest = i == generator.config.num_scales - 1
    norms, override = stage_norms(generator, i), _StageNorms()
    tiles = windows(height, width, tile)

    def run(w: _Window) -> torch.Tensor:
        override.window = w
        half = coarse[:, :, w.top // 2:w.bottom // 2, w.left // 2:w.right // 2]
        x = generator.join(i, half, generator.branches[i](tile_input(w)))
        return generator.head(x) if finest else x

    with norms_overridden(override):  # this thread's passes only: the module itself is not changed
        for norm in norms:
            override.measuring = norm
            for w in tiles:
                try:
                    run(w)
                except _Collected:
                    pass
            override.resolve()
        out = None
        for w in tiles:
            top, bottom, left, right = w.crop
            result = run(w)[:, :, top:bottom, left:right]
            if out is None:
                out = result.new_empty(result.shape[0], result.shape[1], height, width)
            out[:, :, w.top + top:w.top + bottom, w.left + left:w.left + right] = result
        return out
