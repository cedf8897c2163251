"""The residual "transformer" generator of Johnson, Alahi & Fei-Fei (ECCV 2016), for comparison.

The original texture_nets code shipped it next to the multi-scale generator; here it trains under
the same loss and settings (`train.py --arch residual`) so that the benchmarks can put the two side
by side. Layout (Johnson's supplementary material, with Ulyanov's instance normalisation):

    9x9 conv 32 → 3x3/2 conv 64 → 3x3/2 conv 128 → 5 residual blocks (two 3x3 convs, 128)
      → nearest ×2 + 3x3 conv 64 → nearest ×2 + 3x3 conv 32 → 9x9 conv 3 → sigmoid

Each conv but the last is followed by instance norm and ReLU (the residual blocks' second conv by
instance norm only). Departures: upsampling by nearest ×2 + conv instead of strided transposed
convolutions (no checkerboard artefacts, as in PyTorch's fast_neural_style), reflection padding,
and a sigmoid output so that the contract matches the pyramid: images in 0..1.

Optional noise channels (default none: Johnson's network is deterministic) are concatenated to the
photo at full resolution, so `noise_factor` means the same thing for both architectures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from texture_nets.core.layers import Generator, InstanceNorm


@dataclass(frozen=True)
class ResidualConfig:
    """Constructor arguments of `ResidualNetwork` (stored in every checkpoint)."""

    channels: int = 32  # width of the first layer; the two downsamplings double it twice (Johnson: 32)
    num_residual: int = 5  # residual blocks at 1/4 resolution (Johnson: 5)
    noise_channels: int = 0  # noise channels concatenated to the photo (0: deterministic, as Johnson)
    noise_factor: float = 0.0  # default noise amplitude
    texture_only: bool = False  # always False: this network needs a photo

    def __post_init__(self) -> None:
        if self.channels < 1 or self.num_residual < 0 or self.noise_channels < 0:
            raise ValueError(f"invalid residual generator config {self}")
        if self.texture_only:
            raise ValueError("the residual generator stylizes photos; use the pyramid for texture synthesis")


def conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """A convolution with reflection padding that keeps the size (divided by the stride)."""
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, padding_mode="reflect")


def conv_norm_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(conv(in_channels, out_channels, kernel, stride), InstanceNorm(out_channels, affine=True),
                         nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))) — Johnson's residual block without the final ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_norm_relu(channels, channels, 3), conv(channels, channels, 3),
                                  InstanceNorm(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Sequential):
    """Nearest-neighbour ×2, then conv + instance norm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), conv_norm_relu(in_channels, out_channels, 3))


class ResidualNetwork(Generator):
    """Photo (+ optional noise) → stylized photo, same calling convention as `TextureNetwork`."""

    arch = "residual"

    def __init__(self, config: ResidualConfig | None = None, **kwargs):
        super().__init__()
        self.config = config or ResidualConfig(**kwargs)
        c = self.config.channels
        self.encoder = nn.Sequential(conv_norm_relu(3 + self.config.noise_channels, c, 9),
                                     conv_norm_relu(c, 2 * c, 3, stride=2), conv_norm_relu(2 * c, 4 * c, 3, stride=2))
        self.residuals = nn.Sequential(*(ResidualBlock(4 * c) for _ in range(self.config.num_residual)))
        self.decoder = nn.Sequential(Upsample(4 * c, 2 * c), Upsample(2 * c, c))
        self.to_rgb = conv(c, 3, 9)

    multiple = 4  # two stride-2 convolutions

    def make_noise(self, batch: int, height: int, width: int, *, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> list[torch.Tensor]:
        """Unit Gaussian noise at full resolution (a one-element list, like the pyramid's per-scale list)."""
        device = device or self.to_rgb.weight.device
        return [torch.randn(batch, self.config.noise_channels, height, width, generator=generator, device=device)]

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """Each side rounded up to a multiple of 4 (and at least 8, so 1/4 resolution has 2 pixels)."""
        return max(-(-height // 4) * 4, 8), max(-(-width // 4) * 4, 8)

    def scale_inputs(self, padded: torch.Tensor, noise: list[torch.Tensor] | None,
                     factor: float | torch.Tensor) -> list[torch.Tensor]:
        """The network's one input (a list, as the pyramid's per-scale inputs): photo ‖ noise × factor."""
        if not self.config.noise_channels:
            return [padded]
        return [torch.cat([padded, noise[0].to(padded.dtype) * factor], dim=1)]

    def synthesize(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """The network proper: padded input → image in 0..1."""
        return torch.sigmoid(self.to_rgb(self.decoder(self.residuals(self.encoder(inputs[0])))))
