"""The multi-scale ("pyramid") texture network of Ulyanov et al.

Texture Networks (Ulyanov, Lebedev, Vedaldi, Lempitsky, ICML 2016, Fig. 2) with the instance
normalisation of Improved Texture Networks (Ulyanov, Vedaldi, Lempitsky, CVPR 2017):

    content ──avgpool 2^k──▶ [image_k ‖ noise_k] ──conv block──▶ branch_k        k = K-1 … 0
    x = branch_{K-1};  for k = K-2 … 0:  x = conv block( up2(norm(x)) ‖ norm(branch_k) )
    output = sigmoid(conv1x1(x))          (RGB in 0..1)

A conv block is 3x3 → 3x3 → 1x1 convolutions, each followed by instance norm and LeakyReLU.
Every join concatenates, so the channel count grows by `channels` per scale (8, 16, … 8K).

Departures from the paper, and why:
- instance instead of batch normalisation (the 2017 paper: much better stylization);
- reflection padding in the 3x3 convolutions (the paper zero-pads), against dark borders;
- a sigmoid maps the last 1x1 convolution to 0..1, so the network's contract is "images in 0..1".

`noise_factor` scales the noise concatenated at every scale. At 0 the output is a deterministic
function of the photo; as it grows the network is fed more randomness, which (for a network trained
with noise) shows as variation between samples in the fine texture of the strokes and, at large
values, as grain and loss of photo detail. Trained at factor f, the network looks best near f.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from texture_nets.core.layers import ConvBlock, Generator, make_norm, photo_shape


@dataclass(frozen=True)
class GeneratorConfig:
    """Constructor arguments of `TextureNetwork` (stored in every checkpoint)."""

    num_scales: int = 6  # K: the photo enters at full, 1/2, … 1/2^(K-1) resolution (paper: 5–6)
    channels: int = 8  # channels of each scale's conv block; joins add them up (paper: 8)
    noise_channels: int = 3  # noise channels concatenated to the image at every scale (paper: 3)
    noise_factor: float = 1.0  # default noise amplitude; the training value, overridable at inference
    texture_only: bool = False  # texture synthesis: noise is the only input, no photo
    max_channels: int = 0  # cap on the joins' width (0: none, the paper's c, 2c, … Kc); the speed knob
    style_names: tuple[str, ...] = ()  # several styles in one network (conditional instance norm); () for one

    def __post_init__(self) -> None:
        if self.num_scales < 1 or self.channels < 1 or self.noise_channels < 0 or self.max_channels < 0:
            raise ValueError(f"invalid generator config {self}")
        if self.texture_only and self.noise_channels == 0:
            raise ValueError("a texture-only generator needs noise_channels > 0")
        object.__setattr__(self, "style_names", tuple(self.style_names))  # a checkpoint stores a list
        if len(set(self.style_names)) != len(self.style_names) or len(self.style_names) == 1 or not all(
                isinstance(name, str) and name.strip() for name in self.style_names):
            raise ValueError(f"style_names must be two or more distinct names, got {self.style_names}")

    @property
    def num_styles(self) -> int:
        """Styles the network holds: each its own scale and shift in every normalisation."""
        return max(1, len(self.style_names))














class TextureNetwork(Generator):
    """Ulyanov's multi-scale generator: photo (+ noise) → stylized photo, or noise → texture.

    `forward` accepts any batch size and any image size: the input is padded (reflect) to a
    multiple of 2^(K-1) and the output cropped back, so output size == input size. Inside, it is
    `scale_inputs` (photo pyramid ‖ scaled noise) then `synthesize`, which ONNX export and tiled
    inference reuse; `synthesize` is itself `branch`, `join` and `head`, scale by scale.
    """

    arch = "pyramid"

    def __init__(self, config: GeneratorConfig | None = None, **kwargs):
        super().__init__()
        self.config = config or GeneratorConfig(**kwargs)
        c, k = self.config.channels, self.config.num_scales
        in_channels = self.config.noise_channels + (0 if self.config.texture_only else 3)
        # branches[i] and norms[i] work at scale K-1-i, i.e. coarsest first.
        self.branches = nn.ModuleList(ConvBlock(in_channels, c, self.config.num_styles) for _ in range(k))
        widths = self.widths
        self.join_norms = nn.ModuleList(
            nn.ModuleDict({"coarse": make_norm(widths[i - 1], self.config.num_styles),
                           "fine": make_norm(c, self.config.num_styles)})
            for i in range(1, k))
        self.join_blocks = nn.ModuleList(ConvBlock(widths[i - 1] + c, widths[i], self.config.num_styles)
                                         for i in range(1, k))
        self.to_rgb = nn.Conv2d(widths[-1], 3, 1)

    @property
    def widths(self) -> list[int]:
        """Channels of x after the coarsest branch and after each join (coarsest first). The paper
        concatenates, giving c, 2c, … Kc; `max_channels` caps the joins, and that is where the time
        goes at full resolution (the finest join's 3x3 convolutions cost ∝ width²)."""
        c, cap = self.config.channels, self.config.max_channels
        return [c] + [min(c * (i + 1), max(cap, c)) if cap else c * (i + 1) for i in range(1, self.config.num_scales)]

    @property
    def multiple(self) -> int:
        """Spatial sizes the network works at internally are multiples of this."""
        return 2 ** (self.config.num_scales - 1)

    def make_noise(self, batch: int, height: int, width: int, *, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> list[torch.Tensor]:
        """Unit Gaussian noise for every scale (finest first); (height, width) from `padded_size`."""
        device = device or self.to_rgb.weight.device
        return [torch.randn(batch, self.config.noise_channels, height >> s, width >> s,
                            generator=generator, device=device)
                for s in range(self.config.num_scales)]

    def check_input(self, content: torch.Tensor | None, size: tuple[int, int] | None,
                    batch_size: int) -> tuple[int, int, int]:
        """(batch, height, width) of the output, or a ValueError for a call that does not fit the mode."""
        if self.config.texture_only:
            if content is not None:
                raise ValueError("this generator synthesizes textures: call it with size=(H, W), not a photo")
            if size is None:
                raise ValueError("texture synthesis needs size=(H, W)")
            return batch_size, size[0], size[1]
        return photo_shape(content)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the network works at for an input of (height, width): each side rounded up to a
        multiple of 2^(K-1), and at least 2 pixels at the coarsest scale (instance norm needs 2)."""
        m = self.multiple
        return max(-(-height // m) * m, 2 * m), max(-(-width // m) * m, 2 * m)

    def image_pyramid(self, padded: torch.Tensor) -> list[torch.Tensor]:
        """The padded photo average-pooled to every scale, finest first."""
        return [padded if s == 0 else F.avg_pool2d(padded, 2 ** s) for s in range(self.config.num_scales)]

    def scale_inputs(self, padded: torch.Tensor | None, noise: list[torch.Tensor] | None,
                     factor: float | torch.Tensor) -> list[torch.Tensor]:
        """Each scale's input, finest first: the photo at that scale ‖ noise × factor."""
        pyramid = None if padded is None else self.image_pyramid(padded)
        inputs = []
        for scale in range(self.config.num_scales):
            parts = [] if pyramid is None else [pyramid[scale]]
            if self.config.noise_channels:
                parts.append(noise[scale].to(self.to_rgb.weight.dtype) * factor)
            inputs.append(torch.cat(parts, dim=1))
        return inputs

    def synthesize(self, inputs: list[torch.Tensor], join=None) -> torch.Tensor:
        """The network proper: per-scale inputs (finest first, padded size) → image in 0..1.
        `join` replaces `self.join` by an equivalent (the ONNX export's faster formulation)."""
        join = join or self.join
        x = self.branches[0](inputs[-1])
        for i in range(1, self.config.num_scales):
            x = join(i, x, self.branches[i](inputs[-1 - i]))
        return self.head(x)

    def join(self, i: int, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """Join number i (1 … K-1): upsample the coarser result, concatenate the branch, conv block."""
        norms = self.join_norms[i - 1]
        up = F.interpolate(norms["coarse"](coarse), scale_factor=2, mode="nearest")
        return self.join_blocks[i - 1](torch.cat([up, norms["fine"](fine)], dim=1))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Last 1x1 convolution to RGB, squashed into 0..1."""
        return torch.sigmoid(self.to_rgb(x))
