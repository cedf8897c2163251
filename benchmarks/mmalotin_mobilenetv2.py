"""mmalotin's pytorch-fast-neural-style-mobilenetV2 generators (Johnson et al.'s transformer network
with MobileNetV2 inverted-residual blocks), rebuilt from their state_dicts, for side-by-side
comparison only (benchmarks/quality.py). Files: ../shared/peers/mmalotin_mobilenetv2/<style>.pth
(mosaic, candy, picasso), saved from CUDA; loaded here on the CPU.

The layout, read from the tensors' names and shapes (no bias anywhere; every norm is an affine
instance norm, without running statistics):

- conv1: 9×9, 3 → 32, reflection padding 4, instance norm, ReLU;
- conv2, conv3: inverted-residual blocks that halve the resolution (32 → 64 → 128 channels);
- res1 … res5: inverted-residual blocks at 128 channels, with the identity shortcut;
- upconv1, upconv2: nearest-neighbour ×2 upsampling, an inverted-residual block (128 → 64 → 32),
  then a ReLU;
- conv4: 9×9, 32 → 3, reflection padding 4, no norm, no activation.

An inverted-residual block (the `conv1`/`conv2`/`conv3` triple inside each): 1×1 expansion
(by `expansion` = conv1's out/in channels, 1 in these files), instance norm, ReLU6; 3×3 depthwise
convolution after reflection padding 1 (stride 2 in the downsampling blocks), instance norm, ReLU6;
1×1 linear projection, instance norm; plus the input where stride is 1 and the widths agree.

Pixels: RGB in 0..255 in and out (the network was trained on photos ×255, its output clamped to
0..255). `MobileNetV2Style.photo` takes and returns RGB 0..1. Two downsamplings mean a side that is
not a multiple of 4 comes back larger; the photo is reflect-padded to the next multiple of 4 and the
result cropped, so the output has the photo's size.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
PEER_DIR = SHARED / "peers" / "mmalotin_mobilenetv2"
STYLES = ("mosaic", "candy", "picasso")


class InvertedResidual(nn.Module):
    """1×1 expand → IN → ReLU6 → reflect-pad, 3×3 depthwise (stride) → IN → ReLU6 → 1×1 project → IN
    (+ input when the shapes agree)."""

    def __init__(self, in_channels: int, out_channels: int, expanded: int, stride: int):
        super().__init__()
        self.stride = stride
        self.shortcut = stride == 1 and in_channels == out_channels
        self.conv1 = nn.Conv2d(in_channels, expanded, 1, bias=False)
        self.in1 = nn.InstanceNorm2d(expanded, affine=True)
        self.conv2 = nn.Conv2d(expanded, expanded, 3, stride=stride, groups=expanded, bias=False)
        self.in2 = nn.InstanceNorm2d(expanded, affine=True)
        self.conv3 = nn.Conv2d(expanded, out_channels, 1, bias=False)
        self.in3 = nn.InstanceNorm2d(out_channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.in1(self.conv1(x)))
        y = F.relu6(self.in2(self.conv2(F.pad(y, (1, 1, 1, 1), mode="reflect"))))
        y = self.in3(self.conv3(y))
        return x + y if self.shortcut else y


class Upsample(nn.Module):
    """Nearest ×2, an inverted-residual block, ReLU."""

    def __init__(self, block: InvertedResidual):
        super().__init__()
        self.conv1 = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv1(F.interpolate(x, scale_factor=2, mode="nearest")))


def _block(state: dict[str, torch.Tensor], prefix: str, stride: int) -> InvertedResidual:
    """An inverted-residual block sized by its tensors `prefix`conv1/conv3.weight."""
    expand, project = state[f"{prefix}conv1.weight"], state[f"{prefix}conv3.weight"]
    return InvertedResidual(expand.shape[1], project.shape[0], expand.shape[0], stride)


class MobileNetV2Style(nn.Module):
    """One of mmalotin's per-style networks: N,3,H,W RGB 0..255 → N,3,H',W' RGB (unclamped)."""

    multiple = 4

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        first, last = state["conv1.weight"], state["conv4.weight"]
        self.conv1 = nn.Conv2d(first.shape[1], first.shape[0], first.shape[2], bias=False)
        self.in1 = nn.InstanceNorm2d(first.shape[0], affine=True)
        self.conv2 = _block(state, "conv2.", 2)
        self.conv3 = _block(state, "conv3.", 2)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (_block(state, f"res{i}.", 1) for i in range(1, 6))
        self.upconv1 = Upsample(_block(state, "upconv1.conv1.", 1))
        self.upconv2 = Upsample(_block(state, "upconv2.conv1.", 1))
        self.conv4 = nn.Conv2d(last.shape[1], last.shape[0], last.shape[2], bias=False)
        self.load_state_dict(state)  # strict: every tensor used, none missing
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.conv1.kernel_size[0] // 2
        y = F.relu(self.in1(self.conv1(F.pad(x, (pad,) * 4, mode="reflect"))))
        for block in (self.conv2, self.conv3, self.res1, self.res2, self.res3, self.res4, self.res5,
                      self.upconv1, self.upconv2):
            y = block(y)
        pad = self.conv4.kernel_size[0] // 2
        return self.conv4(F.pad(y, (pad,) * 4, mode="reflect"))

    @torch.no_grad()
    def photo(self, photos: torch.Tensor) -> torch.Tensor:
        """N,3,H,W RGB photos in 0..1 → stylized N,3,H,W RGB in 0..1 (any H, W ≥ 5)."""
        h, w = photos.shape[2:]
        ph, pw = math.ceil(h / self.multiple) * self.multiple, math.ceil(w / self.multiple) * self.multiple
        x = photos.float() * 255.0
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h), mode="reflect")
        return (self(x)[:, :, :h, :w] / 255.0).clamp(0, 1)


def load(path_or_style: str | Path) -> MobileNetV2Style:
    """A network from a .pth state_dict, or by style name from ../shared/peers/mmalotin_mobilenetv2."""
    path = Path(path_or_style)
    if not path.suffix:
        path = PEER_DIR / f"{path_or_style}.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    return MobileNetV2Style({k: v.float() for k, v in state.items()})


def stylize(network: MobileNetV2Style, photos: torch.Tensor) -> torch.Tensor:
    """photo (N,3,H,W, 0..1) → picture (N,3,H,W, 0..1)."""
    return network.photo(photos)
