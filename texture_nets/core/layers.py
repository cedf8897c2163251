"""Layers the generators share, and their common interface (`Generator`)."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


def photo_shape(content: torch.Tensor | None) -> tuple[int, int, int]:
    """(batch, height, width) of an N,3,H,W photo batch, or a ValueError naming the shape it got."""
    if content is None or content.dim() != 4 or content.shape[1] != 3:
        raise ValueError(f"expected content of shape (N, 3, H, W), got "
                         f"{None if content is None else tuple(content.shape)}")
    return content.shape[0], content.shape[2], content.shape[3]


def pad_photo(x: torch.Tensor, padded_h: int, padded_w: int) -> torch.Tensor:
    """x padded on the bottom and right to padded_h × padded_w: reflected where the padding is
    smaller than the image (no dark border), replicated where it is not (tiny images)."""
    pad_h, pad_w = padded_h - x.shape[2], padded_w - x.shape[3]
    if not (pad_h or pad_w):
        return x
    reflectable = pad_h < x.shape[2] and pad_w < x.shape[3]
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if reflectable else "replicate")


NormOverride = Callable[["InstanceNorm", torch.Tensor], torch.Tensor]


_norm_override: ContextVar[NormOverride | None] = ContextVar("texture_nets_norm_override", default=None)


@contextmanager
def norms_overridden(override: NormOverride) -> Iterator[None]:
    """Inside the block, in this thread (or task) only, every `InstanceNorm` calls override(norm, x)
    instead of normalising x itself. A context variable, not an attribute of the modules: a generator
    shared between threads (the web app's) keeps running untouched in the others meanwhile."""
    token = _norm_override.set(override)
    try:
        yield
    finally:
        _norm_override.reset(token)


class InstanceNorm(nn.InstanceNorm2d):
    """Affine instance normalisation whose statistics an outside party may supply.

    Tiled inference (tiling.py) needs every tile normalised with the statistics of the *whole*
    image, not of the tile: it runs its passes inside `norms_overridden`. Outside one (always, in
    training and ordinary inference), this is nn.InstanceNorm2d exactly, with the same state_dict.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        override = _norm_override.get()
        if override is not None:
            return override(self, x)
        return super().forward(x)

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale γ, shift β), each of C values, that this norm applies after normalising."""
        return self.weight, self.bias


_style_blend: ContextVar[torch.Tensor | None] = ContextVar("texture_nets_style_blend", default=None)


@contextmanager
def styles_blended(weights: torch.Tensor) -> Iterator[None]:
    """Inside the block, in this thread (or task) only, every `ConditionalInstanceNorm` scales and
    shifts with the `weights`-combination of its styles' own (one weight per style, summing to 1)."""
    token = _style_blend.set(weights)
    try:
        yield
    finally:
        _style_blend.reset(token)


def current_style_blend() -> torch.Tensor | None:
    """The style weights `styles_blended` set in this thread, None outside it."""
    return _style_blend.get()


class ConditionalInstanceNorm(InstanceNorm):
    """Instance normalisation with a scale and shift per style: Dumoulin, Shlens & Kudlur 2017 ("A
    Learned Representation for Artistic Style"), conditional instance normalisation. A network's other
    weights are shared by all its styles; a blend of styles normalises with the convex combination of
    their (γ, β), the same for every picture of the batch (`styles_blended`)."""

    def __init__(self, num_features: int, num_styles: int):
        super().__init__(num_features, affine=False)
        self.style_weight = nn.Parameter(torch.ones(num_styles, num_features))  # γ of each style
        self.style_bias = nn.Parameter(torch.zeros(num_styles, num_features))  # β of each style

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        weights = _style_blend.get()
        if weights is None:
            raise ValueError("a network of several styles needs the style to use: style=<one weight per style>")
        weights = weights.to(self.style_weight)
        return weights @ self.style_weight, weights @ self.style_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        override = _norm_override.get()
        if override is not None:
            return override(self, x)
        scale, shift = self.scale_shift()
        return F.instance_norm(x, weight=scale.to(x.dtype), bias=shift.to(x.dtype), eps=self.eps)


def make_norm(num_features: int, num_styles: int = 1) -> InstanceNorm:
    """The normalisation of a generator of `num_styles` styles: affine instance norm for one,
    conditional instance norm (a scale and shift per style) for several."""
    if num_styles == 1:
        return InstanceNorm(num_features, affine=True)
    return ConditionalInstanceNorm(num_features, num_styles)


class ConvBlock(nn.Sequential):
    """3x3 → 3x3 → 1x1 convolutions, each followed by instance norm and LeakyReLU (paper, Fig. 2)."""

    def __init__(self, in_channels: int, out_channels: int, num_styles: int = 1):
        layers: list[nn.Module] = []
        for i, kernel in enumerate((3, 3, 1)):
            # reflection padding for the 3x3s; none at all for the 1x1 (a "reflect" 1x1 pads by 0, which
            # still costs a full copy of its input per call: 3-4 % of a 512² stylization)
            layers += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, kernel,
                          padding=kernel // 2, padding_mode="reflect" if kernel > 1 else "zeros"),
                make_norm(out_channels, num_styles),
                nn.LeakyReLU(0.01, inplace=True),
            ]
        super().__init__(*layers)


class Generator(nn.Module):
    """What every generator architecture is: photo (+ noise) → stylized photo in 0..1, any batch and
    any size. Subclasses (pyramid.py, residual.py) say how big a picture they work at
    (`padded_size`), what noise they take (`make_noise`), how photo and noise enter
    (`scale_inputs`) and what the network computes (`synthesize`); ONNX export and tiled inference
    reuse those steps. Each has `arch` (its name in checkpoints) and `config` (its constructor
    arguments, a dataclass)."""

    arch: str

    @property
    def style_names(self) -> tuple[str, ...]:
        """The styles of a network of several (conditional instance norm); () for a network of one."""
        return getattr(self.config, "style_names", ())

    @property
    def num_styles(self) -> int:
        """How many styles the network holds."""
        return max(1, len(self.style_names))

    def forward(self, content: torch.Tensor | None = None, *, noise_factor: float | None = None,
                generator: torch.Generator | None = None, noise: list[torch.Tensor] | None = None,
                size: tuple[int, int] | None = None, batch_size: int = 1,
                style: torch.Tensor | None = None) -> torch.Tensor:
        """Stylize `content` (N,3,H,W in 0..1) or, for a texture-only network, synthesize a
        (batch_size,3,*size) texture; returns N,3,H,W in 0..1, the input's size.

        noise_factor: amplitude of the noise (default: the config's); generator: seeds the noise;
        noise: explicit unit noise from `make_noise` (overrides generator); style: for a network of
        several styles, the weight of each (summing to 1: `blend_weights`)."""
        if style is not None:
            with styles_blended(style):
                return self.forward(content, noise_factor=noise_factor, generator=generator, noise=noise,
                                    size=size, batch_size=batch_size)
        batch, height, width = self.check_input(content, size, batch_size)
        padded_h, padded_w = self.padded_size(height, width)
        if noise is None and self.config.noise_channels:
            noise = self.make_noise(batch, padded_h, padded_w, generator=generator, device=self.to_rgb.weight.device)
        factor = self.config.noise_factor if noise_factor is None else noise_factor
        padded = None if content is None else self.pad(content, padded_h, padded_w)
        return self.synthesize(self.scale_inputs(padded, noise, factor))[:, :, :height, :width]

    def check_input(self, content: torch.Tensor | None, size: tuple[int, int] | None,
                    batch_size: int) -> tuple[int, int, int]:
        """(batch, height, width) of the output, or a ValueError if `content` is not N,3,H,W."""
        return photo_shape(content)

    def pad(self, content: torch.Tensor, padded_h: int, padded_w: int) -> torch.Tensor:
        """The photo padded on the bottom and right to the working size, in the weights' dtype."""
        return pad_photo(content.to(self.to_rgb.weight.dtype), padded_h, padded_w)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the network works at for an input of (height, width)."""
        raise NotImplementedError

    def make_noise(self, batch: int, height: int, width: int, *, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> list[torch.Tensor]:
        """Unit Gaussian noise for the network's inputs at the padded size (a list, one per input)."""
        raise NotImplementedError

    def scale_inputs(self, padded: torch.Tensor | None, noise: list[torch.Tensor] | None,
                     factor: float | torch.Tensor) -> list[torch.Tensor]:
        """The network's inputs (photo ‖ noise × factor), as the list `synthesize` takes."""
        raise NotImplementedError

    def synthesize(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """The network proper: the inputs at the padded size → image in 0..1."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def blend_weights(style_names: tuple[str, ...], blend: dict[str, float]) -> torch.Tensor:
    """The weight of each of a network's styles for `blend` ({name: weight}), scaled to sum to 1
    (a convex combination, Dumoulin et al.), or a ValueError naming what is wrong: an unknown style,
    a negative or non-finite weight, or no weight at all."""
    unknown = [name for name in blend if name not in style_names]
    if unknown:
        raise ValueError(f"unknown style {unknown[0]!r} (this network has {', '.join(style_names)})")
    bad = [f"{name}={weight}" for name, weight in blend.items() if not 0 <= weight < float("inf")]
    if bad:
        raise ValueError(f"style weights must be finite and ≥ 0, got {bad[0]}")
    total = sum(blend.values())
    if not total > 0:
        raise ValueError("the style weights are all 0: give at least one style a positive weight")
    if total == float("inf"):
        raise ValueError("the style weights' sum overflows: give weights such as 0.7 and 0.3")
    return torch.tensor([blend.get(name, 0.0) / total for name in style_names], dtype=torch.float32)
